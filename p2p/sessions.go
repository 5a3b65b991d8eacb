package p2p

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/p2pcompat/p2pcompat/session"
)

// SessionInfo is a snapshot of one session, for debugging and monitoring:
// what GetP2PSessionState reports and everything behind it. It holds
// copies only; nothing in it changes after Sessions returns.
//
// In JSON (see MarshalJSON) the fields have the lowercase names in their
// tags; the durations, whose tags are "-", appear as numbers of
// microseconds under the names given in their comments, with up to three
// decimals so that they keep nanosecond precision.
type SessionInfo struct {
	// Remote is the peer; a string in JSON, since Steam IDs exceed the
	// integers a JSON number holds exactly in many decoders.
	Remote SteamID `json:"steamid,string"`
	// State is "lookup" (asking the rendezvous for the peer),
	// "connecting" (keys known, probing, maybe waiting for an accept),
	// "established" or "failed" (kept until closed; see LastError).
	State string `json:"state"`
	// Path is "direct", "relay" (through a TURN relay, ours or the
	// peer's), or "" while no pair of addresses has answered yet. A
	// failed session has none.
	Path string `json:"path"`
	// LocalAddr is the address of our socket, which every packet of
	// every session leaves from (also toward a relay).
	LocalAddr netip.AddrPort `json:"local_addr"`
	// RemoteAddr is the peer's end of the path: where our packets go and
	// the peer's come from. On a path through our own TURN allocation it
	// is the peer's address as the relay sees it; on a path to the
	// peer's allocation it is the peer's relayed address. Zero without a
	// path.
	RemoteAddr netip.AddrPort `json:"remote_addr"`
	// RelayServer is our TURN server when the path goes through our own
	// allocation; zero on a direct path and on one from our socket to the
	// peer's relayed address (whose server's port we do not know).
	RelayServer netip.AddrPort `json:"relay_server"`

	// RTT is the smoothed round-trip time, RTTVar its mean deviation,
	// MinRTT the least sample: RFC 9002 estimates from acknowledged
	// packets. All three are 0 until the first sample (the engine's
	// initial guess is not reported). JSON: rtt_us, rttvar_us,
	// min_rtt_us.
	RTT    time.Duration `json:"-"`
	RTTVar time.Duration `json:"-"`
	MinRTT time.Duration `json:"-"`
	// Loss is PacketsLost / PacketsSent, from 0 to 1; 0 before anything
	// was sent.
	Loss float64 `json:"loss"`
	// PacketsSent and PacketsRecv count data packets, keepalives and
	// ACKs included, handshake messages not; PacketsLost counts those
	// declared lost (and sent again, for reliable data). BytesSent and
	// BytesRecv count their payloads: the plaintext, frame headers
	// included, without the packet header and encryption overhead. They
	// count from when the session was accepted, and from zero again
	// after a failed session starts over.
	PacketsSent uint64 `json:"packets_sent"`
	PacketsLost uint64 `json:"packets_lost"`
	PacketsRecv uint64 `json:"packets_recv"`
	BytesSent   uint64 `json:"bytes_sent"`
	BytesRecv   uint64 `json:"bytes_recv"`
	// QueuedBytes and QueuedPackets are what waits in the send queue:
	// reliable messages not yet acknowledged and unreliable ones not yet
	// sent (as in P2PSessionState's BytesQueuedForSend and
	// PacketsQueuedForSend).
	QueuedBytes   int `json:"queued_bytes"`
	QueuedPackets int `json:"queued_packets"`
	// Cwnd is the congestion window and BytesInFlight what is sent and
	// not yet acknowledged or lost, in bytes.
	Cwnd          int `json:"cwnd"`
	BytesInFlight int `json:"bytes_in_flight"`
	// InRate and OutRate are bytes per second of payload (as BytesRecv
	// and BytesSent) over the last RateWindow. The library samples the
	// byte counters at most once a second, from its timers while the
	// session is established and at every snapshot, and measures a rate
	// from the newest sample at least a second old to the snapshot: the
	// window is one to two seconds under steady polling, and at most
	// about two keepalive intervals otherwise. It is never shorter than a
	// second: until a sample is that old, RateWindow is 0 and the rates
	// with it. That is a second after the first sample, which the
	// session's timers take at their first run once it is established
	// (at the latest its first keepalive), or a snapshot that comes
	// first. JSON: in_bytes_per_sec, out_bytes_per_sec, rate_window_us.
	InRate     float64       `json:"in_bytes_per_sec"`
	OutRate    float64       `json:"out_bytes_per_sec"`
	RateWindow time.Duration `json:"-"`
	// Channels are the channels open with the peer, ascending: those we
	// sent on or received on, less those CloseP2PChannelWithUser closed.
	Channels []int `json:"channels"`
	// Accepted says we accepted the session (AcceptP2PSessionWithUser,
	// or by sending to the peer); RemoteAccepted that the peer said it
	// accepts us.
	Accepted       bool `json:"accepted"`
	RemoteAccepted bool `json:"remote_accepted"`
	// Age is the time since the session began (a retry after a failure
	// continues it). Idle is the time since we last heard from the peer:
	// its last authenticated packet, or an offer the rendezvous
	// forwarded from it; a new connect attempt restarts it. JSON: age_us,
	// idle_us.
	Age  time.Duration `json:"-"`
	Idle time.Duration `json:"-"`
	// LastError is why the session failed, P2PSessionErrorNone if it did
	// not; LastErrorName is its name ("None", "NotRunningApp",
	// "NoRightsToApp", "DestinationNotLoggedOn", "Timeout").
	LastError     P2PSessionError `json:"last_error"`
	LastErrorName string          `json:"last_error_name"`
	// Candidates are the peer addresses we know; Pairs the pairs of our
	// socket or TURN allocation and a peer address that have answered
	// us at least once, the path among them.
	Candidates []PeerCandidate `json:"candidates"`
	Pairs      []PathPair      `json:"pairs"`
}

// PeerCandidate is one address of the peer.
type PeerCandidate struct {
	Addr netip.AddrPort `json:"addr"`
	// Kind is how we learned it: "host" (an address the peer bound),
	// "srflx" (where the rendezvous saw the peer), "relay" (the peer's
	// TURN allocation) or "prflx" (where an authenticated packet of the
	// peer came from, unannounced).
	Kind string `json:"kind"`
}

// PathPair is a pair of our end and a peer address that proved to work
// both ways.
type PathPair struct {
	// Via is our end: "socket" or "turn" (our TURN allocation).
	Via  string         `json:"via"`
	Addr netip.AddrPort `json:"addr"`
	Kind string         `json:"kind"` // of Addr, as in PeerCandidate
	// Heard is how long ago the pair last proved to work; heard_us in
	// JSON.
	Heard time.Duration `json:"-"`
	// Active says the pair is the session's path.
	Active bool `json:"active"`
}

// Sessions returns a snapshot of every session, ascending by SteamID, all
// taken at one moment under the session table's lock. It is cheap enough
// to call once a second, and safe from any goroutine; each call also
// records the byte counters the rates are measured against.
func (n *Networking) Sessions() []SessionInfo {
	snaps := n.mgr.Snapshot()
	local := n.localAddrPort()
	out := make([]SessionInfo, len(snaps))
	for i, s := range snaps {
		out[i] = sessionInfo(s, local)
	}
	return out
}

// sessionInfoOf is the SessionInfo of the session with remote.
func (n *Networking) sessionInfoOf(remote SteamID) (SessionInfo, bool) {
	s, ok := n.mgr.SnapshotOf(remote)
	if !ok {
		return SessionInfo{}, false
	}
	return sessionInfo(s, n.localAddrPort()), true
}

// DumpSessions writes every session as an aligned table, one line each
// under a header (or "no sessions"): the SteamID, state, path, the peer's
// address on it, smoothed RTT, loss, bytes queued to send, bytes per
// second in and out, open channels, age, time since we last heard from
// the peer, and the last session error. SessionInfo explains each.
func (n *Networking) DumpSessions(w io.Writer) error {
	return writeTable(w, n.Sessions())
}

// DetailedStatus describes the session with remote in full, one labelled
// field per line, as GameNetworkingSockets' GetDetailedConnectionStatus
// does: every field of SessionInfo, the peer's addresses and the pairs
// that answered. It returns false if there is no such session.
func (n *Networking) DetailedStatus(remote SteamID) (string, bool) {
	info, ok := n.sessionInfoOf(remote)
	if !ok {
		return "", false
	}
	var b strings.Builder
	writeDetail(&b, info) // a strings.Builder does not fail
	return b.String(), true
}

func (n *Networking) localAddrPort() netip.AddrPort {
	switch a := n.conn.LocalAddr().(type) {
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	default:
		ap, _ := netip.ParseAddrPort(a.String())
		return ap
	}
}

func sessionInfo(s session.SessionSnapshot, local netip.AddrPort) SessionInfo {
	st := s.Stats
	info := SessionInfo{
		Remote:         s.Remote,
		State:          s.State,
		Path:           s.Path,
		LocalAddr:      local,
		RemoteAddr:     s.RemoteAddr,
		RelayServer:    s.RelayServer,
		RTT:            st.SmoothedRTT,
		RTTVar:         st.RTTVar,
		MinRTT:         st.MinRTT,
		PacketsSent:    st.PacketsSent,
		PacketsLost:    st.PacketsLost,
		PacketsRecv:    st.PacketsRecv,
		BytesSent:      st.BytesSent,
		BytesRecv:      st.BytesRecv,
		QueuedBytes:    s.QueuedBytes,
		QueuedPackets:  s.QueuedPackets,
		Cwnd:           st.Cwnd,
		BytesInFlight:  st.BytesInFlight,
		InRate:         s.InRate,
		OutRate:        s.OutRate,
		RateWindow:     s.RateWindow,
		Channels:       s.Channels,
		Accepted:       s.Accepted,
		RemoteAccepted: s.RemoteAccepted,
		Age:            s.Age,
		Idle:           s.Idle,
		LastError:      s.LastError,
		LastErrorName:  s.LastError.String(),
	}
	if st.PacketsSent > 0 {
		info.Loss = min(1, float64(st.PacketsLost)/float64(st.PacketsSent))
	}
	if len(s.Candidates) > 0 {
		info.Candidates = make([]PeerCandidate, len(s.Candidates))
		for i, c := range s.Candidates {
			info.Candidates[i] = PeerCandidate{Addr: c.Addr, Kind: c.Kind}
		}
	}
	if len(s.Pairs) > 0 {
		info.Pairs = make([]PathPair, len(s.Pairs))
		for i, p := range s.Pairs {
			info.Pairs[i] = PathPair{Via: p.Via, Addr: p.Addr, Kind: p.Kind, Heard: p.Heard, Active: p.Active}
		}
	}
	return info
}

// sessionInfoJSON is SessionInfo on the wire: its own fields by their tags
// (sessionInfoFields has no methods, so no recursion), the durations as
// microseconds.
type sessionInfoFields SessionInfo

type sessionInfoJSON struct {
	sessionInfoFields
	RTT        micros `json:"rtt_us"`
	RTTVar     micros `json:"rttvar_us"`
	MinRTT     micros `json:"min_rtt_us"`
	RateWindow micros `json:"rate_window_us"`
	Age        micros `json:"age_us"`
	Idle       micros `json:"idle_us"`
}

// MarshalJSON encodes s with the field names of its tags, durations as
// microseconds (see SessionInfo).
func (s SessionInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionInfoJSON{sessionInfoFields(s),
		micros(s.RTT), micros(s.RTTVar), micros(s.MinRTT), micros(s.RateWindow), micros(s.Age), micros(s.Idle)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (s *SessionInfo) UnmarshalJSON(b []byte) error {
	var v sessionInfoJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = SessionInfo(v.sessionInfoFields)
	s.RTT, s.RTTVar, s.MinRTT = time.Duration(v.RTT), time.Duration(v.RTTVar), time.Duration(v.MinRTT)
	s.RateWindow, s.Age, s.Idle = time.Duration(v.RateWindow), time.Duration(v.Age), time.Duration(v.Idle)
	return nil
}

// MarshalJSON encodes p with the field names of its tags, Heard as
// heard_us in microseconds.
func (p PathPair) MarshalJSON() ([]byte, error) {
	type plain PathPair
	return json.Marshal(struct {
		plain
		Heard micros `json:"heard_us"`
	}{plain(p), micros(p.Heard)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (p *PathPair) UnmarshalJSON(b []byte) error {
	type plain PathPair
	var v struct {
		plain
		Heard micros `json:"heard_us"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = PathPair(v.plain)
	p.Heard = time.Duration(v.Heard)
	return nil
}

// micros is a duration that is a JSON number of microseconds, written as
// an exact decimal: 1234.5 for 1.2345 ms.
type micros time.Duration

func (d micros) MarshalJSON() ([]byte, error) {
	u := uint64(d)
	var b []byte
	if d < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1000, 10)
	if f := u % 1000; f != 0 {
		b = append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b, nil
}

func (d *micros) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if ns, ok := parseMicros(s); ok {
		*d = micros(ns)
		return nil
	}
	// Any other JSON number, through a float.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("p2p: duration in microseconds: %w", err)
	}
	ns := math.Round(f * 1e3)
	if ns >= 1<<63 || ns < -(1<<63) {
		return fmt.Errorf("p2p: duration of %s µs out of range", s)
	}
	*d = micros(ns)
	return nil
}

// parseMicros reads the exact form MarshalJSON writes, [-]digits[.ddd],
// into nanoseconds.
func parseMicros(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if len(frac) > 3 || strings.Trim(frac, "0123456789") != "" {
		return 0, false
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || w > math.MaxInt64/1000 {
		return 0, false
	}
	f, _ := strconv.ParseUint(frac+"000"[len(frac):], 10, 64)
	ns, limit := w*1000+f, uint64(math.MaxInt64)
	if neg {
		limit++ // math.MinInt64
	}
	if ns > limit {
		return 0, false
	}
	if neg {
		return int64(-ns), true
	}
	return int64(ns), true
}

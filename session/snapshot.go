package session

import (
	"net/netip"
	"slices"
	"time"

	"github.com/p2pcompat/p2pcompat/channels"
)

// Snapshots copy the session table for debugging and monitoring: values
// only, taken under the lock in one go, so that nothing of the live state
// escapes and every session in one snapshot is seen at the same moment.

// SessionSnapshot is one session as Snapshot saw it.
type SessionSnapshot struct {
	Remote SteamID
	// State is "lookup", "connecting", "established" or "failed".
	State string
	// Path is "direct", "relay", or "" while no pair has answered (and
	// for a failed session, which has none in use).
	Path string
	// RemoteAddr is the peer address of the path: where our packets go
	// and the peer's come from. Through our own TURN allocation it is
	// the peer's address as the relay sees it; to the peer's allocation
	// it is the peer's relayed address. Zero without a path.
	RemoteAddr netip.AddrPort
	// RelayServer is our TURN server when the path goes through our own
	// allocation; zero otherwise (a direct path, or one from our socket
	// to the peer's relayed address, whose server we do not know).
	RelayServer netip.AddrPort
	// Stats are the engine's counters and estimates, zero while the
	// session has no engine (not accepted yet, or failed). RTT fields are
	// zero until the first RTT sample: the engine's initial guess is not
	// a measurement.
	Stats channels.Stats
	// QueuedBytes and QueuedPackets are what waits to be sent or
	// acknowledged (channels.Engine.Queued).
	QueuedBytes, QueuedPackets int
	// InRate and OutRate are bytes per second of engine payload, received
	// and sent, over RateWindow: from the newest rate sample at least a
	// second old to the snapshot. RateWindow is zero, and the rates with
	// it, until such a sample exists. See rateWindow.
	InRate, OutRate float64
	RateWindow      time.Duration
	// Channels are the open channels, ascending.
	Channels []int
	// Accepted: we accepted (AcceptP2PSessionWithUser, or by sending).
	// RemoteAccepted: the peer said it accepts us.
	Accepted, RemoteAccepted bool
	// Age is the time since the table entry was made; a retry after a
	// failure keeps it. Idle is the time since we last heard from the
	// peer: its last authenticated packet, or an offer the rendezvous
	// forwarded from it (a new attempt starts it again).
	Age, Idle time.Duration
	// LastError is why the session failed, ErrorNone if it did not.
	LastError SessionError
	// Candidates are the peer addresses we know, in the order we learned
	// them; Pairs are the pairs that have answered us at least once.
	Candidates []CandidateSnapshot
	Pairs      []PairSnapshot
}

// CandidateSnapshot is one address of the peer.
type CandidateSnapshot struct {
	Addr netip.AddrPort
	// Kind is how we learned it: "host" (an address the peer bound),
	// "srflx" (where the rendezvous saw the peer), "relay" (the peer's
	// TURN allocation) or "prflx" (where an authenticated packet came
	// from, unannounced).
	Kind string
}

// PairSnapshot is one pair that has proved to work both ways.
type PairSnapshot struct {
	// Via is our end: "socket" (our UDP socket) or "turn" (our TURN
	// allocation).
	Via  string
	Addr netip.AddrPort // the peer's end
	Kind string         // the peer address's kind, as in CandidateSnapshot
	// Heard is how long ago the pair last proved to work.
	Heard time.Duration
	// Active says the pair is the session's path.
	Active bool
}

var (
	kindNames = [...]string{candHost: "host", candSrflx: "srflx", candRelay: "relay", candPrflx: "prflx"}
	sideNames = [...]string{sideDirect: "socket", sideRelay: "turn"}
)

// Snapshot copies every session in the table, ascending by SteamID. It
// also records a rate sample for each session (see rateWindow), which is
// all it changes.
func (m *Manager) Snapshot() []SessionSnapshot {
	m.lock()
	defer m.unlock()
	ss := m.tab.lru.Values()
	out := make([]SessionSnapshot, 0, len(ss))
	for _, s := range ss {
		out = append(out, m.snapshot(s, m.now))
	}
	slices.SortFunc(out, func(a, b SessionSnapshot) int {
		switch {
		case a.Remote < b.Remote:
			return -1
		case a.Remote > b.Remote:
			return 1
		}
		return 0
	})
	return out
}

// SnapshotOf is Snapshot of the session with remote alone; false if
// there is none.
func (m *Manager) SnapshotOf(remote SteamID) (SessionSnapshot, bool) {
	m.lock()
	defer m.unlock()
	s, ok := m.tab.lru.Peek(remote)
	if !ok {
		return SessionSnapshot{}, false
	}
	return m.snapshot(s, m.now), true
}

// snapshot copies s; the lock is held.
func (m *Manager) snapshot(s *session, now time.Time) SessionSnapshot {
	since := func(t stamp) time.Duration { return max(0, m.at.Sub(t)) }
	out := SessionSnapshot{
		Remote:         s.remote,
		State:          s.phase.String(),
		Accepted:       s.localAccepted,
		RemoteAccepted: s.remoteAccepted,
		Age:            since(s.created),
		Idle:           since(s.lastHeard),
		LastError:      s.lastError,
		Channels:       s.channels.sorted(),
	}
	if s.path.valid() && s.phase != phaseFailed {
		out.Path = "direct"
		if s.path.relayed() {
			out.Path = "relay"
		}
		out.RemoteAddr = s.path.addr
		if s.path.side == sideRelay {
			out.RelayServer = m.env.RelayServer()
		}
	}
	if e := s.engine; e != nil {
		st := e.Stats()
		if st.MinRTT == 0 {
			// No sample yet: what the engine holds is its initial guess.
			st.SmoothedRTT, st.RTTVar = 0, 0
		}
		out.Stats = st
		out.QueuedBytes, out.QueuedPackets = e.Queued()
		if s.rates.engine != e {
			s.rates = rateWindow{engine: e} // a new engine counts from zero
		}
		out.InRate, out.OutRate, out.RateWindow = s.rates.rate(now, st.BytesRecv, st.BytesSent)
		s.rates.record(now, st.BytesRecv, st.BytesSent)
	}
	if len(s.candidates) > 0 {
		out.Candidates = make([]CandidateSnapshot, len(s.candidates))
		for i, c := range s.candidates {
			out.Candidates[i] = CandidateSnapshot{Addr: c.addr, Kind: kindNames[c.kind]}
		}
	}
	if len(s.pairs) > 0 {
		out.Pairs = make([]PairSnapshot, len(s.pairs))
		for i, p := range s.pairs {
			out.Pairs[i] = PairSnapshot{
				Via:    sideNames[p.side],
				Addr:   p.addr,
				Kind:   kindNames[p.kind],
				Heard:  since(p.heard),
				Active: out.Path != "" && p.side == s.path.side && p.addr == s.path.addr,
			}
		}
	}
	return out
}

// rateSpacing is the least time between two rate samples, and the window
// a rate is measured over once samples that old exist.
const rateSpacing = time.Second

// rateSample is an engine's byte counters at one moment.
type rateSample struct {
	at         time.Time
	recv, sent uint64
}

// rateWindow holds the two newest rate samples of one engine, taken at
// least rateSpacing apart: by the timer path (tick, while established)
// and by every snapshot. A rate is measured from the newest sample at
// least rateSpacing old to now, never over a shorter window, where a few
// bytes would read as a torrent. Since samples are that far apart, that
// sample is always last or prev, so two are all it needs.
type rateWindow struct {
	engine     *channels.Engine // whose counters the samples hold
	prev, last rateSample       // zero at: none
}

// observe samples e's counters if the last sample is rateSpacing old.
// The timer path calls it; it costs a comparison until a sample is due.
func (w *rateWindow) observe(now time.Time, e *channels.Engine) {
	if e == nil || w.engine == e && !w.last.at.IsZero() && now.Sub(w.last.at) < rateSpacing {
		return
	}
	if w.engine != e {
		*w = rateWindow{engine: e}
	}
	st := e.Stats()
	w.record(now, st.BytesRecv, st.BytesSent)
}

// record adds a sample unless the last one is younger than rateSpacing.
func (w *rateWindow) record(now time.Time, recv, sent uint64) {
	if !w.last.at.IsZero() && now.Sub(w.last.at) < rateSpacing {
		return
	}
	w.prev, w.last = w.last, rateSample{at: now, recv: recv, sent: sent}
}

// rate is the bytes per second received and sent between the base sample
// and now, when the counters read recv and sent, and the window that was
// measured over; all zero while no sample is rateSpacing old.
func (w *rateWindow) rate(now time.Time, recv, sent uint64) (in, out float64, window time.Duration) {
	base := w.last
	if now.Sub(base.at) < rateSpacing {
		base = w.prev
	}
	if base.at.IsZero() || now.Sub(base.at) < rateSpacing || recv < base.recv || sent < base.sent {
		return 0, 0, 0
	}
	window = now.Sub(base.at)
	secs := window.Seconds()
	return float64(recv-base.recv) / secs, float64(sent-base.sent) / secs, window
}

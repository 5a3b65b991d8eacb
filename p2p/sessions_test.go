package p2p_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// Big Steam IDs, as real ones are: beyond what a float64 holds exactly.
const idBase = 76561198000000000

// startBig is start with SteamIDs idBase+1 and idBase+2.
func startBig(t *testing.T) (a, b *p2p.Networking) {
	t.Helper()
	_, a, b = start(t, func(c *p2p.Config) { c.SteamID += idBase })
	return a, b
}

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		t.Fatalf("local address %v is not UDP", a)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// awaitSessions polls n.Sessions until check accepts them (returns ""),
// and fails with check's last complaint and the table after 10 s.
func awaitSessions(t *testing.T, n *p2p.Networking, check func([]p2p.SessionInfo) string) []p2p.SessionInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss := n.Sessions()
		why := check(ss)
		if why == "" {
			return ss
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			n.DumpSessions(&b)
			t.Fatalf("sessions never became right: %s\n%s", why, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exchangeReliable has a and b each send count reliable messages on ch
// and receive the other's.
func exchangeReliable(t *testing.T, a, b *p2p.Networking, aID, bID p2p.SteamID, ch, count int) {
	t.Helper()
	a.AcceptP2PSessionWithUser(bID)
	b.AcceptP2PSessionWithUser(aID)
	for i := range count {
		if err := a.Send(bID, []byte(fmt.Sprint("a", i)), p2p.P2PSendReliable, ch); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		if p := receive(t, b, ch); string(p.Data) != fmt.Sprint("a", i) || p.Remote != aID {
			t.Fatalf("b got %q from %d", p.Data, p.Remote)
		}
		if err := b.Send(aID, []byte(fmt.Sprint("b", i)), p2p.P2PSendReliable, ch); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		if p := receive(t, a, ch); string(p.Data) != fmt.Sprint("b", i) || p.Remote != bID {
			t.Fatalf("a got %q from %d", p.Data, p.Remote)
		}
	}
}

// checkEstablished is an awaitSessions check: one established direct
// session with remote at remoteAddr, measured and used on ch.
func checkEstablished(remote p2p.SteamID, local, remoteAddr netip.AddrPort, ch int) func([]p2p.SessionInfo) string {
	return func(ss []p2p.SessionInfo) string {
		if len(ss) != 1 {
			return fmt.Sprintf("%d sessions, want 1", len(ss))
		}
		s := ss[0]
		switch {
		case s.Remote != remote:
			return fmt.Sprintf("session with %d, want %d", s.Remote, remote)
		case s.State != "established" || s.Path != "direct":
			return fmt.Sprintf("state %q path %q", s.State, s.Path)
		case s.RemoteAddr != remoteAddr || s.LocalAddr != local:
			return fmt.Sprintf("addresses %v -> %v, want %v -> %v", s.LocalAddr, s.RemoteAddr, local, remoteAddr)
		case s.RelayServer.IsValid():
			return fmt.Sprintf("a direct session names relay server %v", s.RelayServer)
		case s.RTT <= 0 || s.MinRTT <= 0:
			return fmt.Sprintf("no RTT measured yet (%v, min %v)", s.RTT, s.MinRTT)
		case s.BytesSent == 0 || s.BytesRecv == 0 || s.PacketsSent == 0 || s.PacketsRecv == 0:
			return fmt.Sprintf("counters %d/%d bytes, %d/%d packets", s.BytesSent, s.BytesRecv, s.PacketsSent, s.PacketsRecv)
		case !slices.Contains(s.Channels, ch):
			return fmt.Sprintf("channels %v lack %d", s.Channels, ch)
		case !s.Accepted || !s.RemoteAccepted:
			return fmt.Sprintf("accepted %v, by the peer %v", s.Accepted, s.RemoteAccepted)
		case s.LastError != p2p.P2PSessionErrorNone || s.LastErrorName != "None":
			return fmt.Sprintf("last error %d %q", s.LastError, s.LastErrorName)
		case s.Loss < 0 || s.Loss > 1:
			return fmt.Sprintf("loss %v", s.Loss)
		case s.Cwnd <= 0:
			return fmt.Sprintf("congestion window %d", s.Cwnd)
		}
		active := 0
		for _, p := range s.Pairs {
			if p.Active {
				active++
				if p.Via != "socket" || p.Addr != remoteAddr {
					return fmt.Sprintf("the active pair is %+v", p)
				}
			}
		}
		if active != 1 {
			return fmt.Sprintf("%d active pairs in %+v", active, s.Pairs)
		}
		return ""
	}
}

// Two real peers on 127.0.0.1 see one established direct session each,
// with the other's address, a measured RTT, traffic and the channel used.
func TestSessionsEndToEnd(t *testing.T) {
	a, b := startBig(t)
	aID, bID := p2p.SteamID(idBase+1), p2p.SteamID(idBase+2)
	aAddr, bAddr := addrPort(t, a.LocalAddr()), addrPort(t, b.LocalAddr())
	if ss := a.Sessions(); len(ss) != 0 {
		t.Fatalf("sessions before any traffic: %+v", ss)
	}
	var buf bytes.Buffer
	if err := a.DumpSessions(&buf); err != nil || buf.String() != "no sessions\n" {
		t.Fatalf("empty dump %q, %v", buf.String(), err)
	}

	const ch = 5
	exchangeReliable(t, a, b, aID, bID, ch, 20)
	awaitSessions(t, a, checkEstablished(bID, aAddr, bAddr, ch))
	awaitSessions(t, b, checkEstablished(aID, bAddr, aAddr, ch))

	for _, c := range []struct {
		n      *p2p.Networking
		remote p2p.SteamID
	}{{a, bID}, {b, aID}} {
		buf.Reset()
		if err := c.n.DumpSessions(&buf); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "STEAMID") {
			t.Fatalf("dump:\n%s", buf.String())
		}
		f := strings.Fields(lines[1])
		if f[0] != strconv.FormatUint(uint64(c.remote), 10) || f[1] != "established" || f[2] != "direct" {
			t.Fatalf("dump line %q", lines[1])
		}
		d, ok := c.n.DetailedStatus(c.remote)
		if !ok || !strings.Contains(d, fmt.Sprint("Session:", strings.Repeat(" ", 11), uint64(c.remote))) ||
			!strings.Contains(d, "State:") || !strings.Contains(d, "established") {
			t.Fatalf("detailed status %v:\n%s", ok, d)
		}
	}
	if d, ok := a.DetailedStatus(12345); ok || d != "" {
		t.Fatalf("detailed status of no session: %q, %v", d, ok)
	}

	// A closed session is gone from the snapshot.
	a.CloseP2PSessionWithUser(bID)
	if ss := a.Sessions(); len(ss) != 0 {
		t.Fatalf("sessions after close: %+v", ss)
	}
}

// The rates are bytes over a measured window of at least a second: once
// the timers or earlier snapshots have sampled that long ago, the window
// is set and the rates follow from the counters.
func TestSessionsRates(t *testing.T) {
	t.Parallel()
	a, b := startBig(t)
	aID, bID := p2p.SteamID(idBase+1), p2p.SteamID(idBase+2)
	exchangeReliable(t, a, b, aID, bID, 0, 5)
	ss := awaitSessions(t, a, func(ss []p2p.SessionInfo) string {
		if len(ss) != 1 || ss[0].RateWindow <= 0 {
			return "no rate window yet"
		}
		return ""
	})
	s := ss[0]
	if s.RateWindow < time.Second {
		t.Fatalf("a rate over %v, less than a second", s.RateWindow)
	}
	if s.InRate < 0 || s.OutRate < 0 {
		t.Fatalf("rates %v in, %v out", s.InRate, s.OutRate)
	}
	// A rate times its window is at most what the counters hold.
	secs := s.RateWindow.Seconds()
	if s.InRate*secs > float64(s.BytesRecv)+1e-6 || s.OutRate*secs > float64(s.BytesSent)+1e-6 {
		t.Fatalf("rates exceed the counters: %+v", s)
	}
}

// On a relayed session the snapshot names the relay: a player who hides
// its address goes through its own allocation.
func TestSessionsRelayed(t *testing.T) {
	l := vnetlab.New(t, true, rendezvous.ServerConfig{})
	playerNet := l.Site(vnetlab.FullCone, 1)[0]
	peerNet := l.Site(vnetlab.FullCone, 1)[0]
	player, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: vnetlab.ServerAddr, Net: playerNet, ForceRelay: true, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { player.Close() })
	peer, err := p2p.New(p2p.Config{SteamID: 2, AppID: 480, RendezvousAddr: vnetlab.ServerAddr, Net: peerNet, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	exchangeReliable(t, peer, player, 2, 1, 0, 3)

	ss := awaitSessions(t, player, func(ss []p2p.SessionInfo) string {
		if len(ss) != 1 || ss[0].State != "established" || ss[0].Path != "relay" {
			return fmt.Sprintf("want one established relayed session, got %+v", ss)
		}
		return ""
	})
	s := ss[0]
	if s.RelayServer.Addr() != netip.MustParseAddr(vnetlab.ServerIP) {
		t.Fatalf("relay server %v, want one on %s", s.RelayServer, vnetlab.ServerIP)
	}
	if !s.RemoteAddr.IsValid() {
		t.Fatal("no remote address on the relayed path")
	}
	var active []p2p.PathPair
	for _, p := range s.Pairs {
		if p.Active {
			active = append(active, p)
		}
	}
	if len(active) != 1 || active[0].Via != "turn" || active[0].Addr != s.RemoteAddr {
		t.Fatalf("a player under ForceRelay: active pairs %+v, remote %v", active, s.RemoteAddr)
	}
	known := false
	for _, c := range s.Candidates {
		known = known || c.Addr == s.RemoteAddr
	}
	if !known {
		t.Fatalf("remote %v is none of the candidates %+v", s.RemoteAddr, s.Candidates)
	}
	ps := awaitSessions(t, peer, func(ss []p2p.SessionInfo) string {
		if len(ss) != 1 || ss[0].State != "established" || ss[0].Path != "relay" {
			return fmt.Sprintf("want one established relayed session, got %+v", ss)
		}
		return ""
	})
	if !ps[0].RemoteAddr.IsValid() {
		t.Fatal("the peer's relayed session has no remote address")
	}
}

func TestDebugHandler(t *testing.T) {
	a, b := startBig(t)
	aID, bID := p2p.SteamID(idBase+1), p2p.SteamID(idBase+2)
	exchangeReliable(t, a, b, aID, bID, 3, 3)
	awaitSessions(t, a, func(ss []p2p.SessionInfo) string {
		if len(ss) != 1 || ss[0].State != "established" {
			return "not established"
		}
		return ""
	})
	mux := http.NewServeMux()
	mux.Handle("/debug/p2p", p2p.DebugHandler(a))
	do := func(method, target, accept string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	bIDs := strconv.FormatUint(uint64(bID), 10)
	decodeList := func(t *testing.T, rec *httptest.ResponseRecorder) []p2p.SessionInfo {
		t.Helper()
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var ss []p2p.SessionInfo
		if err := json.Unmarshal(rec.Body.Bytes(), &ss); err != nil {
			t.Fatal(err)
		}
		if len(ss) != 1 || ss[0].Remote != bID || ss[0].State != "established" || !slices.Contains(ss[0].Channels, 3) {
			t.Fatalf("JSON sessions %+v", ss)
		}
		if !bytes.Contains(rec.Body.Bytes(), []byte(`"steamid": "`+bIDs+`"`)) {
			t.Fatalf("the SteamID is not a JSON string:\n%s", rec.Body)
		}
		return ss
	}

	t.Run("text", func(t *testing.T) {
		rec := do("GET", "/debug/p2p", "text/html,*/*;q=0.8")
		body := rec.Body.String()
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") ||
			!strings.HasPrefix(body, "STEAMID") || !strings.Contains(body, bIDs) || !strings.Contains(body, "established") {
			t.Fatalf("%d %q:\n%s", rec.Code, rec.Header().Get("Content-Type"), body)
		}
	})
	t.Run("json by query", func(t *testing.T) { decodeList(t, do("GET", "/debug/p2p?format=json", "")) })
	t.Run("json by Accept", func(t *testing.T) { decodeList(t, do("GET", "/debug/p2p", "application/json")) })
	t.Run("text by query over Accept", func(t *testing.T) {
		rec := do("GET", "/debug/p2p?format=text", "application/json")
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "STEAMID") {
			t.Fatalf("%d:\n%s", rec.Code, rec.Body)
		}
	})
	t.Run("remote", func(t *testing.T) {
		rec := do("GET", "/debug/p2p?remote="+bIDs, "")
		body := rec.Body.String()
		if rec.Code != http.StatusOK || !strings.HasPrefix(body, "Session:") || !strings.Contains(body, bIDs) ||
			!strings.Contains(body, "Remote address:") {
			t.Fatalf("%d:\n%s", rec.Code, body)
		}
	})
	t.Run("remote json", func(t *testing.T) {
		rec := do("GET", "/debug/p2p?format=json&remote="+bIDs, "")
		var s p2p.SessionInfo
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || rec.Code != http.StatusOK || s.Remote != bID {
			t.Fatalf("%d %v %+v:\n%s", rec.Code, err, s, rec.Body)
		}
	})
	for _, c := range []struct {
		name, method, target string
		code                 int
	}{
		{"no such session", "GET", "/debug/p2p?remote=12345", http.StatusNotFound},
		{"not a number", "GET", "/debug/p2p?remote=bob", http.StatusBadRequest},
		{"negative", "GET", "/debug/p2p?remote=-2", http.StatusBadRequest},
		{"empty remote", "GET", "/debug/p2p?remote=", http.StatusBadRequest},
		{"unknown format", "GET", "/debug/p2p?format=xml", http.StatusBadRequest},
		{"POST", "POST", "/debug/p2p", http.StatusMethodNotAllowed},
		{"DELETE", "DELETE", "/debug/p2p?remote=" + bIDs, http.StatusMethodNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := do(c.method, c.target, "")
			if rec.Code != c.code {
				t.Fatalf("%s %s: %d, want %d:\n%s", c.method, c.target, rec.Code, c.code, rec.Body)
			}
			if c.code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("Allow %q", rec.Header().Get("Allow"))
			}
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		rec := do("HEAD", "/debug/p2p", "")
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
			t.Fatalf("%d, %d bytes, length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
		}
	})
}

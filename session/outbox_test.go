package session

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/callbacks"
	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/seal"
)

// A bulk transfer leaves in runs of datagrams (one SegmentWriter call
// each), and a flush that finds the outbox full resumes when a writer has
// emptied it: with an outbox of a few packets, 20 messages of 30 KB arrive whole
// and in order.
func TestOutboxRunsAndStarvedFlushes(t *testing.T) {
	defer func(c int) { outboxCap = c }(outboxCap)
	outboxCap = 8 << 10
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "open")
	w.advance(100*time.Millisecond, 10*time.Millisecond)
	if got := b.read(); got != "open" {
		t.Fatalf("read %q", got)
	}
	const count = 20
	msg := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("%04d", i)), 7500) }
	for i := 0; i < count; i++ {
		if err := a.m.Send(2, msg(i), channels.Reliable, 0); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	got := 0
	for step := 0; got < count && step < 10000; step++ {
		w.pump()
		for {
			d, _, ok := b.m.Read(0)
			if !ok {
				break
			}
			if !bytes.Equal(d, msg(got)) {
				t.Fatalf("message %d: got %q...", got, d[:8])
			}
			got++
		}
		w.advance(time.Millisecond, time.Millisecond)
	}
	if got != count {
		t.Fatalf("%d of %d messages arrived", got, count)
	}
	if a.runs == 0 {
		t.Fatal("no run of datagrams was written in one call")
	}
	if len(a.m.starved) != 0 || len(a.m.out.ents) != 0 {
		t.Fatalf("left behind: %d starved sessions, %d outbox entries", len(a.m.starved), len(a.m.out.ents))
	}
}

// With DeferWrites, data sent while earlier data is in flight is left to
// the writer goroutine (Output fires, WriteOutput writes it); data on an
// idle path is written by Send itself.
func TestDeferWritesLeavesBusyDataToTheWriter(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{DeferWrites: true}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "open")
	for i := 0; i < 20 && b.read() != "open"; i++ {
		w.pump()
		a.m.WriteOutput()
		w.advance(10*time.Millisecond, 10*time.Millisecond)
	}
	w.advance(100*time.Millisecond, 10*time.Millisecond) // everything acked: the path is idle
	select {
	case <-a.m.Output():
	default:
	}
	before := a.sent
	a.send(2, "first")
	if a.sent != before+1 {
		t.Fatalf("on an idle path Send wrote %d datagrams, want 1", a.sent-before)
	}
	a.send(2, "second")
	if a.sent != before+1 {
		t.Fatal("Send wrote while its first packet was in flight")
	}
	select {
	case <-a.m.Output():
	default:
		t.Fatal("Output did not fire for the deferred packet")
	}
	a.m.WriteOutput()
	if a.sent != before+2 {
		t.Fatalf("WriteOutput wrote %d datagrams, want 1", a.sent-before-1)
	}
	w.pump()
	if got := b.read() + "," + b.read(); got != "first,second" {
		t.Fatalf("read %q", got)
	}
}

// A quiet session costs one ping and one answer per keepalive interval:
// the side with the lower SteamID pings, the other only answers, and
// both stay established.
func TestQuietSessionKeepaliveTraffic(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "open")
	w.advance(time.Second, 10*time.Millisecond)
	if got := b.read(); got != "open" {
		t.Fatalf("read %q", got)
	}
	const intervals = 10
	k := a.m.cfg.KeepaliveInterval
	sa, sb := a.sent, b.sent
	w.advance(intervals*k, 50*time.Millisecond)
	pa, pb := a.sent-sa, b.sent-sb
	if pa < intervals-1 || pa > intervals+2 || pb < intervals-1 || pb > intervals+2 {
		t.Fatalf("over %d intervals: %d datagrams from the lower SteamID, %d from the higher; want about %d each", intervals, pa, pb, intervals)
	}
	for _, n := range []*node{a, b} {
		if st, _ := n.m.State(3 - n.id); !st.ConnectionActive {
			t.Fatalf("session of %d not active: %+v", n.id, st)
		}
	}
}

// relayEnv is a node with a relay allocation that records, in order, what
// reaches the relay: datagrams and permission changes.
type relayEnv struct {
	*node
	log []string
}

func (e *relayEnv) HasRelay() bool              { return true }
func (e *relayEnv) RelayServer() netip.AddrPort { return netip.MustParseAddrPort("198.18.9.9:3478") }
func (e *relayEnv) RelayTo(b []byte, to netip.AddrPort) bool {
	e.log = append(e.log, "relay "+to.String())
	return true
}
func (e *relayEnv) Permit(a []netip.AddrPort) { e.log = append(e.log, fmt.Sprint("permit ", a)) }
func (e *relayEnv) Revoke(a []netip.AddrPort) { e.log = append(e.log, fmt.Sprint("revoke ", a)) }

// Closing a session relayed through our allocation says goodbye through
// the relay before the permission for the peer's address is withdrawn: a
// relay client that finds no permission for a datagram would install one
// again, and keep it.
func TestGoodbyeThroughRelayBeforeRevoke(t *testing.T) {
	kp, err := seal.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	peerKP, err := seal.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	env := &relayEnv{node: &node{w: w, id: 1}}
	m, err := NewManager(Config{SteamID: 1, PrivateKey: kp.Private, Clock: func() time.Time { return w.now }}, env, callbacks.New(0))
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort("198.18.0.7:4000")

	m.lock()
	s := m.newSession(2)
	s.pair, err = seal.NewPairKey(kp, peerKP.Public, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.remoteID = 99
	s.localAccepted = true
	s.candidates = []candidate{{addr: peer, kind: candSrflx}}
	s.path = pair{side: sideRelay, addr: peer, kind: candSrflx}
	m.permit(s)
	m.unlock()

	m.Close(2)
	want := []string{"permit [" + peer.String() + "]", "relay " + peer.String(), "revoke [" + peer.String() + "]"}
	if fmt.Sprint(env.log) != fmt.Sprint(want) {
		t.Fatalf("relay saw %q, want %q", env.log, want)
	}
}

// SessionError prints with Steam's names; an unknown value says its number.
func TestSessionErrorString(t *testing.T) {
	for e, want := range map[SessionError]string{
		ErrorNone: "None", ErrorNotRunningApp: "NotRunningApp", ErrorNoRightsToApp: "NoRightsToApp",
		ErrorDestinationNotLoggedOn: "DestinationNotLoggedOn", ErrorTimeout: "Timeout", 9: "P2PSessionError(9)",
	} {
		if got := e.String(); got != want {
			t.Errorf("%d: %q, want %q", uint8(e), got, want)
		}
	}
}

// Lookups and openers are outbox entries like datagrams: the Manager calls
// none of them with its lock held, and a missing TTL control, learnt when
// the opener is written, still turns on full probes.
func TestLookupsAndOpenersLeaveFromTheOutbox(t *testing.T) {
	for _, noTTL := range []bool{false, true} {
		w := newWorld(t)
		a, b := w.add(1, Config{}), w.add(2, Config{})
		a.noTTL, b.noTTL = noTTL, noTTL
		b.m.Accept(1)
		a.send(2, "x")
		w.pump()
		w.advance(2*time.Second, 50*time.Millisecond)
		if got := b.read(); got != "x" {
			t.Fatalf("noTTL %v: read %q", noTTL, got)
		}
		if a.openers == 0 || b.openers == 0 {
			t.Fatalf("noTTL %v: openers a %d, b %d", noTTL, a.openers, b.openers)
		}
		for _, n := range []*node{a, b} {
			if len(n.underLock) != 0 {
				t.Fatalf("noTTL %v: node %d saw %v with the Manager's lock held", noTTL, n.id, n.underLock)
			}
		}
	}
}

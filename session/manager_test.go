package session

import (
	"net/netip"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/callbacks"
	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/seal"
)

// world is an in-memory network with a rendezvous in virtual time: packets
// and lookups queue up and are delivered by pump, outside every lock.
type world struct {
	t     *testing.T
	now   time.Time
	nodes map[SteamID]*node
	byAdr map[netip.AddrPort]*node
	wire  []datagram
	drop  func(from, to netip.AddrPort) bool
	// noReceipts makes the rendezvous send no delivery receipts.
	noReceipts bool
	// announce adds, to what lookups of a user find, addresses that user
	// claims besides its own.
	announce map[SteamID][]netip.AddrPort
	// noRun leaves the callbacks undispatched when the network is quiet.
	noRun bool
}

type datagram struct {
	from, to netip.AddrPort
	b        []byte
}

type node struct {
	w       *world
	id      SteamID
	addr    netip.AddrPort
	keys    seal.KeyPair
	cb      *callbacks.Queue
	m       *Manager
	lookups []uint64 // session IDs asked for, by target in order
	targets []SteamID
	reqs    []Request
	fails   []ConnectFail
	openers int
	noTTL   bool // openers cannot be sent (WriteOpener answers false)
	sent    int  // datagrams put on the wire at full TTL
	// underLock lists the Env calls made while the Manager held its lock.
	underLock []string
	runs      int // WriteSegments calls with more than one datagram
}

// notUnderLock records an Env call made with the Manager's lock held:
// the Manager writes, looks up and opens from its outbox, after the lock.
func (n *node) notUnderLock(call string) {
	if n.m.mu.TryLock() {
		n.m.mu.Unlock()
		return
	}
	n.underLock = append(n.underLock, call)
}

func (n *node) WriteTo(b []byte, to netip.AddrPort) {
	n.sent++
	n.w.wire = append(n.w.wire, datagram{n.addr, to, append([]byte(nil), b...)})
}

// WriteSegments makes the node a SegmentWriter, as the p2p socket is.
func (n *node) WriteSegments(b []byte, size int, to netip.AddrPort) {
	if len(b) > size {
		n.runs++
	}
	for len(b) > 0 {
		k := min(size, len(b))
		n.WriteTo(b[:k], to)
		b = b[k:]
	}
}

func (n *node) WriteOpener(b []byte, to netip.AddrPort) bool {
	n.notUnderLock("WriteOpener")
	n.openers++
	return !n.noTTL
}
func (n *node) RelayTo(b []byte, to netip.AddrPort) bool { return false }
func (n *node) HasRelay() bool                           { return false }
func (n *node) RelayServer() netip.AddrPort              { return netip.AddrPort{} }
func (n *node) Revoke([]netip.AddrPort)                  {}
func (n *node) Permit([]netip.AddrPort)                  {}

func (n *node) Lookup(target SteamID, sid uint64) {
	n.notUnderLock("Lookup")
	n.targets = append(n.targets, target)
	n.lookups = append(n.lookups, sid)
}

func newWorld(t *testing.T) *world {
	return &world{t: t, now: time.Unix(1_700_000_000, 0), nodes: map[SteamID]*node{}, byAdr: map[netip.AddrPort]*node{}}
}

func (w *world) add(id SteamID, cfg Config) *node {
	kp, err := seal.GenerateKeyPair()
	if err != nil {
		w.t.Fatal(err)
	}
	n := &node{w: w, id: id, addr: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), uint16(40000+id)), keys: kp, cb: callbacks.New(0)}
	cfg.SteamID, cfg.PrivateKey, cfg.Clock = id, kp.Private, func() time.Time { return w.now }
	if n.m, err = NewManager(cfg, n, n.cb); err != nil {
		w.t.Fatal(err)
	}
	callbacks.Handle(n.cb, func(r Request) { n.reqs = append(n.reqs, r) })
	callbacks.Handle(n.cb, func(f ConnectFail) { n.fails = append(n.fails, f) })
	w.nodes[id] = n
	w.byAdr[n.addr] = n
	return n
}

// pump delivers packets and answers lookups until the network is quiet.
func (w *world) pump() { w.pumpRecording(nil) }

// pumpRecording is world.pump that also shows rec every datagram before
// it is delivered.
func (w *world) pumpRecording(rec func(datagram)) {
	for i := 0; i < 100000; i++ {
		busy := false
		for _, n := range w.nodes {
			for len(n.targets) > 0 {
				busy = true
				target, sid := n.targets[0], n.lookups[0]
				n.targets, n.lookups = n.targets[1:], n.lookups[1:]
				peer := w.nodes[target]
				if peer == nil {
					n.m.OnLookup(LookupResult{Target: target, Status: LookupNotOnline})
					continue
				}
				addrs := append([]netip.AddrPort{peer.addr}, w.announce[target]...)
				n.m.OnLookup(LookupResult{Target: target, Status: LookupFound, PublicKey: peer.keys.Public, Addrs: addrs})
				peer.m.OnOffer(Offer{From: n.id, PublicKey: n.keys.Public, SessionID: sid, Addrs: []netip.AddrPort{n.addr}})
				if !w.noReceipts {
					n.m.OnDelivered(target, sid)
				}
			}
		}
		if len(w.wire) > 0 {
			busy = true
			d := w.wire[0]
			w.wire = w.wire[1:]
			if rec != nil {
				rec(d)
			}
			if to := w.byAdr[d.to]; to != nil && (w.drop == nil || !w.drop(d.from, d.to)) {
				to.m.HandlePacket(d.b, d.from, false)
			}
		}
		if !busy {
			for _, n := range w.nodes {
				if !w.noRun {
					n.cb.Run()
				}
			}
			return
		}
	}
	w.t.Fatal("the network never went quiet")
}

// advance moves virtual time forward in steps, running due timers.
func (w *world) advance(d, step time.Duration) {
	for end := w.now.Add(d); w.now.Before(end); {
		w.now = w.now.Add(step)
		for _, n := range w.nodes {
			n.m.OnTimer()
		}
		w.pump()
	}
}

func (n *node) send(to SteamID, data string) {
	n.w.t.Helper()
	if err := n.m.Send(to, []byte(data), channels.Reliable, 0); err != nil {
		n.w.t.Fatal(err)
	}
}

func (n *node) read() string {
	d, _, ok := n.m.Read(0)
	if !ok {
		return ""
	}
	return string(d)
}

func TestEstablishAndDeliver(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	a.send(2, "hello")
	w.pump()
	if len(b.reqs) != 1 || b.reqs[0].SteamIDRemote != 1 {
		t.Fatalf("requests %v", b.reqs)
	}
	b.m.Accept(1)
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	if got := b.read(); got != "hello" {
		t.Fatalf("read %q", got)
	}
	st, _ := a.m.State(2)
	if !st.ConnectionActive || st.RemotePort != b.addr.Port() {
		t.Fatalf("state %+v", st)
	}
}

// The default connect timeout, 20 s, in virtual time: no failure just
// before it, one failure at it (C35).
func TestDefaultConnectTimeoutInVirtualTime(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{})
	w.add(2, Config{})
	start := w.now
	a.send(2, "never accepted")
	w.pump()
	w.advance(19900*time.Millisecond, 100*time.Millisecond)
	if len(a.fails) != 0 {
		t.Fatalf("failed after %v, before the 20 s timeout", w.now.Sub(start))
	}
	w.advance(200*time.Millisecond, 100*time.Millisecond)
	if len(a.fails) != 1 || a.fails[0].SessionError != ErrorTimeout {
		t.Fatalf("after 20 s: %v", a.fails)
	}
}

// A user whose request we ignore and who then goes quiet: the repeat
// check must move on rather than spin with the lock held.
func TestQuietUnacceptedUserDoesNotSpin(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{ConnectTimeout: time.Hour}), w.add(2, Config{ConnectTimeout: time.Hour})
	a.send(2, "x")
	w.pump()
	w.drop = func(from, to netip.AddrPort) bool { return true } // a goes silent
	a.m.Shutdown()
	done := make(chan struct{})
	w.now = w.now.Add(11 * time.Second)
	go func() {
		b.m.OnTimer()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("OnTimer did not return")
	}
}

// Offers from strangers never push out sessions the game accepted, and
// unaccepted users take at most a quarter of the table (C34, C42).
func TestStrangersCannotEvictAcceptedSessions(t *testing.T) {
	w := newWorld(t)
	b := w.add(100, Config{MaxSessions: 8})
	for id := SteamID(1); id <= 4; id++ {
		w.add(id, Config{}).send(100, "friend")
		b.m.Accept(id)
	}
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	for id := SteamID(1000); id < 1050; id++ {
		w.add(id, Config{}).send(100, "stranger")
	}
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	for id := SteamID(1); id <= 4; id++ {
		if st, ok := b.m.State(id); !ok || !st.ConnectionActive {
			t.Fatalf("friend %d lost: %+v %v", id, st, ok)
		}
	}
	if b.m.tab.pending > 2 || b.m.Len() > 8 {
		t.Fatalf("%d pending, %d sessions: over the caps", b.m.tab.pending, b.m.Len())
	}
}

// An offer with a known session ID but another key is a new instance of
// the peer: the session is replaced, nothing breaks.
func TestOfferWithNewKeyReplacesSession(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "one")
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	if got := b.read(); got != "one" {
		t.Fatalf("read %q", got)
	}
	other, _ := seal.GenerateKeyPair()
	b.m.mu.Lock()
	sid := b.m.tab.lru.Values()[0].remoteID
	b.m.mu.Unlock()
	b.m.OnOffer(Offer{From: 1, PublicKey: other.Public, SessionID: sid, Addrs: []netip.AddrPort{a.addr}})
	b.send(1, "still fine")
	w.advance(time.Second, 50*time.Millisecond)
	if st, ok := b.m.State(1); !ok || st.ConnectionActive {
		t.Fatalf("session with a replaced key still active: %+v", st)
	}
}

// A failed session revived by the peer's new attempt honours the game's
// accept given after the failure.
func TestRevivedSessionHonoursPreAccept(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{ConnectTimeout: time.Second})
	b.send(1, "to a") // b starts, a never accepts: b fails
	w.pump()
	w.advance(2*time.Second, 100*time.Millisecond)
	if len(b.fails) != 1 {
		t.Fatalf("b fails %v", b.fails)
	}
	b.m.Accept(1) // b now accepts a, before a tries
	w.drop = nil
	a.send(2, "to b")
	w.advance(500*time.Millisecond, 50*time.Millisecond)
	if got := b.read(); got != "to b" {
		t.Fatalf("b read %q; requests %v", got, b.reqs)
	}
}

// Closing a channel returns its unread bytes to the window, so the rest of
// the session keeps flowing (C39).
func TestCloseChannelReopensWindow(t *testing.T) {
	w := newWorld(t)
	cfg := Config{Engine: channels.Config{RecvWindow: 1<<20 + 64<<10, SendBufferSize: 8 << 20}}
	a, b := w.add(1, cfg), w.add(2, cfg)
	b.m.Accept(1)
	a.send(2, "first") // keeps channel 0 open when 5 is closed
	for i := 0; i < 5; i++ {
		if err := a.m.Send(2, make([]byte, 300<<10), channels.Reliable, 5); err != nil {
			t.Fatal(err)
		}
	}
	a.m.Send(2, []byte("after"), channels.Reliable, 0)
	w.advance(2*time.Second, 20*time.Millisecond)
	if got := b.read(); got != "first" {
		t.Fatalf("read %q", got)
	}
	if b.read() != "" {
		t.Fatal("the window did not fill")
	}
	b.m.CloseChannel(1, 5)
	w.advance(5*time.Second, 20*time.Millisecond)
	for i := 0; i < 10; i++ {
		b.m.CloseChannel(1, 5)
		if got := b.read(); got == "after" {
			return
		}
		w.advance(time.Second, 20*time.Millisecond)
	}
	t.Fatal("data on another channel never arrived after closing the full one")
}

// Full-TTL probes toward a peer's public address wait until the peer has
// opened its NAT (the rendezvous's receipt), so that they cannot reach the
// peer's router first; openers go out at once; without receipts, the
// fallback sends them after directFallback.
func TestPublicProbesWaitForPeerOpened(t *testing.T) {
	w := newWorld(t)
	w.noReceipts = true
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "x")
	w.pump()
	if a.openers == 0 || b.openers == 0 {
		t.Fatalf("openers: a %d, b %d; want both sides to open first", a.openers, b.openers)
	}
	w.advance(directFallback-200*time.Millisecond, 100*time.Millisecond)
	if a.sent != 0 || b.sent != 0 {
		t.Fatalf("full-TTL datagrams before the peer opened: a %d, b %d", a.sent, b.sent)
	}
	w.advance(time.Second, 100*time.Millisecond)
	if got := b.read(); got != "x" {
		t.Fatalf("after the fallback: read %q", got)
	}

	// With the receipt, the initiator probes at once, and the responder
	// only answers.
	w2 := newWorld(t)
	c, d := w2.add(1, Config{}), w2.add(2, Config{})
	d.m.Accept(1)
	c.send(2, "y")
	w2.pump()
	if got := d.read(); got != "y" || d.sent == 0 || c.sent == 0 {
		t.Fatalf("with a receipt: read %q, sent c %d d %d", got, c.sent, d.sent)
	}
}

// Data from an address no pair has proven does not move an established
// session's path at once: a captured packet replayed from elsewhere, ahead
// of the original, steers nothing. A real move (the peer's NAT rebinding)
// is followed once the new address has echoed a probe.
func TestPathMovesOnlyToProvenAddresses(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "open")
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	if b.read() != "open" {
		t.Fatal("no session")
	}
	path := func() netip.AddrPort {
		b.m.mu.Lock()
		defer b.m.mu.Unlock()
		s, _ := b.m.tab.lru.Peek(1)
		return s.path.addr
	}
	// A's next data packet, captured and replayed from a stranger first.
	a.send(2, "next")
	var captured datagram
	for i, d := range w.wire {
		if d.from == a.addr && d.b[0] == 0xE1 {
			captured = d
			w.wire = append(w.wire[:i], w.wire[i+1:]...)
			break
		}
	}
	stranger := netip.MustParseAddrPort("198.18.9.9:999")
	b.m.HandlePacket(captured.b, stranger, false)
	if got := path(); got != a.addr {
		t.Fatalf("a replay from %v moved the path to %v", stranger, got)
	}
	if got := b.read(); got != "next" {
		t.Fatalf("the replayed packet's data: %q", got)
	}
	w.pump()

	// A's NAT rebinds: A now shows up from a new port.
	moved := netip.AddrPortFrom(a.addr.Addr(), a.addr.Port()+1000)
	delete(w.byAdr, a.addr)
	a.addr = moved
	w.byAdr[moved] = a
	a.send(2, "after the move")
	w.advance(time.Second, 10*time.Millisecond)
	if got := path(); got != moved {
		t.Fatalf("after the rebinding the path is %v, want %v", got, moved)
	}
	if got := b.read(); got != "after the move" {
		t.Fatalf("read %q", got)
	}
}

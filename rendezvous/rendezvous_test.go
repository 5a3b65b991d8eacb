package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run a real server and real clients on loopback sockets.

func startServer(t *testing.T, cfg ServerConfig) (*Server, netip.AddrPort) {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	s, err := NewServer(cfg)
	noError(t, err, "NewServer")
	t.Cleanup(func() { s.Close() })
	return s, s.Addr().(*net.UDPAddr).AddrPort()
}

// peer is a client on its own socket, with the reader goroutine that the
// peer library would have.
type peer struct {
	id     uint64
	pub    [32]byte // the client's public key
	conn   *net.UDPConn
	addr   netip.AddrPort
	client *Client
	rec    recorder
	// dupInbound, if set, says whether to hand a received datagram to the
	// client twice.
	dupInbound func() bool
	// other, if set, is handed what the client does not take, as the peer
	// library hands it to its TURN client.
	other atomic.Pointer[func(b []byte, from netip.AddrPort)]
	// tap, if set, records every datagram the peer receives.
	tap        *captured
	readerDone chan struct{}
}

type peerOption func(*peer, *ClientConfig)

// lossy makes the peer's sends drop 30% and duplicate 50% of datagrams, and
// its reader duplicate 50% of what it receives, with a seeded generator.
// At most three datagrams in a row are dropped, so that no request can lose
// every one of its tries: the point is to exercise retransmission, not to
// test that a dead link stays dead.
func lossy(seed uint64) peerOption {
	return func(p *peer, cfg *ClientConfig) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
		drops := 0
		send := cfg.Send
		cfg.Send = func(b []byte, to netip.AddrPort) error {
			mu.Lock()
			drop := rng.Float64() < 0.3 && drops < 3
			dup := rng.Float64() < 0.5
			if drop {
				drops++
			} else {
				drops = 0
			}
			mu.Unlock()
			if drop {
				return nil
			}
			if dup {
				send(b, to)
			}
			return send(b, to)
		}
		p.dupInbound = func() bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < 0.5
		}
	}
}

func withConfig(f func(*ClientConfig)) peerOption {
	return func(_ *peer, cfg *ClientConfig) { f(cfg) }
}

// keyed gives the peer a real key pair, so that it authenticates.
func keyed(t *testing.T) peerOption {
	kp := newKeyPair(t)
	return func(p *peer, cfg *ClientConfig) {
		cfg.PrivateKey, cfg.PublicKey = kp.priv, kp.pub
		p.pub = kp.pub
	}
}

// capturing records every datagram the peer sends, as someone on the path
// would.
func capturing(into *captured) peerOption {
	return func(_ *peer, cfg *ClientConfig) {
		send := cfg.Send
		cfg.Send = func(b []byte, to netip.AddrPort) error {
			into.mu.Lock()
			into.b = append(into.b, bytes.Clone(b))
			into.mu.Unlock()
			return send(b, to)
		}
	}
}

type captured struct {
	mu sync.Mutex
	b  [][]byte
}

func (c *captured) all() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.b...)
}

func newPeer(t *testing.T, server netip.AddrPort, id uint64, app uint32, opts ...peerOption) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	noError(t, err, "listen")
	p := &peer{id: id, pub: key(byte(id)), conn: conn, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), readerDone: make(chan struct{})}
	cfg := ClientConfig{
		SteamID:   id,
		AppID:     app,
		PublicKey: key(byte(id)),
		Server:    server,
		// Advertised only: nothing in this package sends to it.
		LocalAddrs: []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(id)}), 7000)},
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := conn.WriteToUDPAddrPort(b, to)
			return err
		},
		OnOffer:            p.rec.offer,
		OnLookup:           p.rec.lookup,
		OnDelivered:        p.rec.delivered,
		RetransmitInterval: 20 * time.Millisecond,
		RefreshInterval:    time.Hour,
	}
	for _, o := range opts {
		o(p, &cfg)
	}
	p.client, err = NewClient(cfg)
	noError(t, err, "NewClient")
	go p.read()
	t.Cleanup(p.close)
	return p
}

func (p *peer) read() {
	defer close(p.readerDone)
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if p.tap != nil {
			p.tap.mu.Lock()
			p.tap.b = append(p.tap.b, bytes.Clone(buf[:n]))
			p.tap.mu.Unlock()
		}
		if !p.client.HandleInbound(buf[:n], from) {
			if f := p.other.Load(); f != nil {
				(*f)(buf[:n], from)
			}
			continue
		}
		if p.dupInbound != nil && p.dupInbound() {
			p.client.HandleInbound(buf[:n], from)
		}
	}
}

func (p *peer) close() {
	p.client.Close()
	p.conn.Close()
	<-p.readerDone
}

func (p *peer) register(t *testing.T) netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
	defer cancel()
	observed, err := p.client.Register(ctx)
	noError(t, err, "Register %d", p.id)
	return observed
}

// lookup looks target up and waits for the answer.
func (p *peer) lookup(t *testing.T, target, session uint64) LookupResult {
	t.Helper()
	before := len(p.rec.gotResults())
	p.client.Lookup(target, session)
	eventually(t, func() bool { return len(p.rec.gotResults()) > before }, "an answer to %d's lookup of %d", p.id, target)
	return p.rec.gotResults()[before]
}

func (p *peer) offerFor(session uint64) (Offer, bool) {
	for _, o := range p.rec.gotOffers() {
		if o.SessionID == session {
			return o, true
		}
	}
	return Offer{}, false
}

func (p *peer) candidates(observed netip.AddrPort) []netip.AddrPort {
	return []netip.AddrPort{observed, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(p.id)}), 7000)}
}

func TestRegisterLookupOffer(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480)
	b := newPeer(t, srv, 2, 480)
	c := newPeer(t, srv, 3, 730)

	obsA := a.register(t)
	equal(t, obsA, a.addr, "A's observed address")
	equal(t, a.client.Observed(), a.addr, "A's Observed()")
	obsB := b.register(t)
	c.register(t)

	res := a.lookup(t, 2, 0xfeed)
	equal(t, res, LookupResult{Target: 2, Status: LookupOK, PublicKey: key(2), Addrs: b.candidates(obsB)}, "A's lookup of B")
	eventually(t, func() bool { _, ok := b.offerFor(0xfeed); return ok }, "B to get A's offer")
	offer, _ := b.offerFor(0xfeed)
	equal(t, offer, Offer{From: 1, PublicKey: key(1), SessionID: 0xfeed, Addrs: a.candidates(obsA)}, "offer")

	equal(t, a.lookup(t, 3, 1), LookupResult{Target: 3, Status: LookupOtherApp}, "A's lookup of C")
	equal(t, a.lookup(t, 4, 1), LookupResult{Target: 4, Status: LookupNotOnline}, "A's lookup of nobody")
	equal(t, c.lookup(t, 1, 1), LookupResult{Target: 1, Status: LookupOtherApp}, "C's lookup of A")
	if _, ok := c.offerFor(1); ok {
		t.Fatal("a lookup across apps delivered an offer")
	}
}

func TestRegistrationRefused(t *testing.T) {
	_, srv := startServer(t, ServerConfig{AllowedApps: []uint32{480}})
	newPeer(t, srv, 1, 480).register(t)

	for _, tc := range []struct {
		name   string
		p      *peer
		reason RefuseReason
	}{
		{"other app", newPeer(t, srv, 2, 730), RefuseNoRightsToApp},
		{"zero key", newPeer(t, srv, 3, 480, withConfig(func(c *ClientConfig) { c.PublicKey = [32]byte{} })), RefuseInvalid},
	} {
		_, err := tc.p.client.Register(context.Background())
		if !errors.Is(err, ErrRegistrationRefused) {
			t.Fatalf("%s: Register error %v does not wrap ErrRegistrationRefused", tc.name, err)
		}
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Reason != tc.reason {
			t.Fatalf("%s: Register error %v, want a *RefusedError with %v", tc.name, err, tc.reason)
		}
	}
}

func TestExpiry(t *testing.T) {
	s, srv := startServer(t, ServerConfig{RegistrationTTL: 100 * time.Millisecond})
	a := newPeer(t, srv, 1, 480)
	a.register(t)
	// Nothing looks A up, so only the sweep can remove it.
	eventually(t, func() bool { return s.tab.len() == 0 }, "the sweep to remove an unrefreshed registration")
}

func TestRefreshKeepsRegistering(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	var mu sync.Mutex
	registers := map[uint64]bool{} // txIDs
	a := newPeer(t, srv, 1, 480, withConfig(func(cfg *ClientConfig) {
		cfg.RefreshInterval = 5 * time.Millisecond
		send := cfg.Send
		cfg.Send = func(b []byte, to netip.AddrPort) error {
			if m, err := decode(b); err == nil && m.typ == msgRegister {
				mu.Lock()
				registers[m.txID] = true
				mu.Unlock()
			}
			return send(b, to)
		}
	}))
	a.register(t)
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(registers) >= 4
	}, "three refreshes")
	equal(t, s.tab.len(), 1, "registrations")
}

func TestLossyDuplicatedSignalling(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480, lossy(1))
	b := newPeer(t, srv, 2, 480, lossy(2))
	obsA, obsB := a.register(t), b.register(t)

	const rounds = 15
	var wg sync.WaitGroup
	for _, dir := range []struct{ from, to *peer }{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(rounds) {
				dir.from.client.Lookup(dir.to.id, 1000*dir.from.id+i)
				if !poll(func() bool { return len(dir.from.rec.gotResults()) > int(i) }) {
					t.Errorf("no answer to lookup %d by %d", i, dir.from.id)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every lookup was answered exactly once, duplicates notwithstanding.
	// Answers to earlier lookups would have arrived before the last one's.
	for _, dir := range []struct {
		from, to *peer
		obs      netip.AddrPort
	}{{a, b, obsB}, {b, a, obsA}} {
		want := LookupResult{Target: dir.to.id, Status: LookupOK, PublicKey: key(byte(dir.to.id)), Addrs: dir.to.candidates(dir.obs)}
		results := dir.from.rec.gotResults()
		equal(t, len(results), rounds, "answers to %d", dir.from.id)
		for _, r := range results {
			equal(t, r, want, "answer to %d", dir.from.id)
		}
		for i := range uint64(rounds) {
			session := 1000*dir.from.id + i
			eventually(t, func() bool { _, ok := dir.to.offerFor(session); return ok }, "offer %d at %d", session, dir.to.id)
		}
	}
}

// barrier registers a throwaway user from raw and returns the first datagram
// raw receives afterwards, which must be the answer: the server handles a
// socket's datagrams in order and loopback keeps them in order, so anything
// the server sent raw before would arrive first. The registration is
// repeated while unanswered, since a burst sent just before may have
// overflowed the server's receive buffer.
func barrier(t *testing.T, raw *net.UDPConn, srv netip.AddrPort, id uint64) message {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(eventuallyWithin)
	req := message{typ: msgRegister, txID: 0xba77, steamID: id, appID: 480, publicKey: key(byte(id))}
	for time.Now().Before(deadline) {
		_, err := raw.WriteToUDPAddrPort(req.encode(nil), srv)
		noError(t, err, "write")
		raw.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := raw.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		noError(t, err, "read")
		equal(t, from, srv, "source")
		m, err := decode(buf[:n])
		noError(t, err, "decode")
		if m.typ == msgChallenge && req.cookie == ([cookieLen]byte{}) {
			// The source proves it receives: again, with the cookie.
			req.cookie = m.cookie
			continue
		}
		return m
	}
	t.Fatal("the server never answered the barrier registration")
	panic("unreachable")
}

func rawSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	noError(t, err, "listen")
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGarbageDoesNotDisturbServer(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480)
	b := newPeer(t, srv, 2, 480)
	a.register(t)
	b.register(t)

	raw := rawSocket(t)
	rng := rand.New(rand.NewPCG(7, 7))
	var junk [][]byte
	for range 300 {
		j := make([]byte, rng.IntN(1500))
		for i := range j {
			j[i] = byte(rng.Uint32())
		}
		if len(j) > 2 && rng.IntN(2) == 0 {
			j[0], j[1], j[2] = 0xD0, protocolVersion, byte(rng.IntN(11))
		}
		junk = append(junk, j)
	}
	for _, m := range sampleMessages() {
		enc := m.encode(nil)
		junk = append(junk, enc[:len(enc)-1])
		if m.typ != msgRegister && m.typ != msgLookup && m.typ != msgUnregister {
			junk = append(junk, enc)
		}
	}
	junk = append(junk, []byte{}, []byte{0xD0}, make([]byte, 9000))
	for _, j := range junk {
		_, err := raw.WriteToUDPAddrPort(j, srv)
		noError(t, err, "write")
	}
	m := barrier(t, raw, srv, 77)
	equal(t, m, message{typ: msgRegistered, txID: 0xba77, publicKey: s.PublicKey(), addrs: []netip.AddrPort{raw.LocalAddr().(*net.UDPAddr).AddrPort()}}, "first answer after the junk")
	equal(t, s.tab.len(), 3, "registrations")
	equal(t, a.lookup(t, 2, 5).Status, LookupOK, "lookup after the junk")
}

func TestSpoofedLookupGetsNothing(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480)
	b := newPeer(t, srv, 2, 480)
	a.register(t)
	b.register(t)

	raw := rawSocket(t)
	spoof := lookupBytes(1, 1, 2, 666) // claims to be A
	_, err := raw.WriteToUDPAddrPort(spoof, srv)
	noError(t, err, "write")
	equal(t, barrier(t, raw, srv, 77).typ, msgRegistered, "first answer to the spoofer")

	// Being registered under another ID does not help either.
	_, err = raw.WriteToUDPAddrPort(spoof, srv)
	noError(t, err, "write")
	honest := lookupBytes(2, 77, 2, 777)
	_, err = raw.WriteToUDPAddrPort(honest, srv)
	noError(t, err, "write")
	buf := make([]byte, 2048)
	raw.SetReadDeadline(time.Now().Add(eventuallyWithin))
	n, _, err := raw.ReadFromUDPAddrPort(buf)
	noError(t, err, "read")
	m, err := decode(buf[:n])
	noError(t, err, "decode")
	equal(t, [2]any{m.typ, m.txID}, [2]any{msgLookupResult, uint64(2)}, "first answer after the spoofed lookup")

	// B got the offer of the honest lookup, and before it, nothing.
	eventually(t, func() bool { _, ok := b.offerFor(777); return ok }, "the honest offer")
	for _, o := range b.rec.gotOffers() {
		if o.SessionID == 666 {
			t.Fatalf("B got the spoofed offer %+v", o)
		}
	}
}

func TestCloseUnregisters(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480)
	b := newPeer(t, srv, 2, 480)
	a.register(t)
	b.register(t)
	a.close()
	eventually(t, func() bool { return s.tab.len() == 1 }, "A's unregistration")
	equal(t, b.lookup(t, 1, 1).Status, LookupNotOnline, "A's status")
}

func TestRegisterPendingReturnsOnClose(t *testing.T) {
	silentServer := rawSocket(t) // never answers
	p := newPeer(t, silentServer.LocalAddr().(*net.UDPAddr).AddrPort(), 1, 480)
	done := make(chan error, 1)
	go func() {
		_, err := p.client.Register(context.Background())
		done <- err
	}()
	buf := make([]byte, 2048)
	silentServer.SetReadDeadline(time.Now().Add(eventuallyWithin))
	_, _, err := silentServer.ReadFromUDPAddrPort(buf)
	noError(t, err, "the registration to arrive")
	noError(t, p.client.Close(), "Close")
	if err := await(t, done, "Register to return"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Register: %v, want net.ErrClosed", err)
	}
}

func TestServerClose(t *testing.T) {
	s, err := NewServer(ServerConfig{ListenAddr: "127.0.0.1:0"})
	noError(t, err, "NewServer")
	noError(t, s.Close(), "Close")
	noError(t, s.Close(), "second Close")

	_, err = NewServer(ServerConfig{ListenAddr: "127.0.0.1:0", RegistrationTTL: -1})
	if !isConfigError(err) || !strings.Contains(err.Error(), "RegistrationTTL") {
		t.Fatalf("negative TTL: %v", err)
	}
	_, err = NewServer(ServerConfig{ListenAddr: "127.0.0.1:0", MaxRegistrations: -1})
	if !isConfigError(err) || !strings.Contains(err.Error(), "MaxRegistrations") {
		t.Fatalf("negative MaxRegistrations: %v", err)
	}
	if _, err = NewServer(ServerConfig{ListenAddr: "not an address"}); err == nil {
		t.Fatal("NewServer accepted a bad ListenAddr")
	}
}

// ourGoroutines lists the goroutines running this package's code, tests aside.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ours []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "rendezvous.(*Server)") || strings.Contains(g, "rendezvous.(*Client)") {
			ours = append(ours, g)
		}
	}
	return ours
}

func TestNoGoroutineOutlivesClose(t *testing.T) {
	eventually(t, func() bool { return len(ourGoroutines()) == 0 }, "earlier tests' goroutines to end")
	before := runtime.NumGoroutine()

	s, err := NewServer(ServerConfig{ListenAddr: "127.0.0.1:0", RegistrationTTL: time.Second})
	noError(t, err, "NewServer")
	srv := s.Addr().(*net.UDPAddr).AddrPort()
	var peers []*peer
	for id := range uint64(3) {
		p := newPeer(t, srv, id+1, 480, withConfig(func(c *ClientConfig) { c.RefreshInterval = 10 * time.Millisecond }))
		p.register(t)
		peers = append(peers, p)
	}
	peers[0].lookup(t, 2, 1)
	peers[1].client.Lookup(99, 1) // left pending

	for _, p := range peers {
		p.close()
		noError(t, p.client.Close(), "second client Close")
	}
	noError(t, s.Close(), "server Close")
	if !poll(func() bool { return len(ourGoroutines()) == 0 && runtime.NumGoroutine() <= before }) {
		t.Fatalf("goroutines outlived Close: %d before, %d now; ours: %q", before, runtime.NumGoroutine(), ourGoroutines())
	}
}

// authenticated reports whether the server holds id's registration as
// authenticated.
func authenticated(s *Server, id uint64) bool {
	s.tab.mu.Lock()
	defer s.tab.mu.Unlock()
	r := s.tab.regs[regKey{steamID: id}]
	return r != nil && r.authed
}

func TestAuthenticatedSignalling(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t))
	c := newPeer(t, srv, 3, 480) // without a key pair: unauthenticated, as before
	obsA, obsB, obsC := a.register(t), b.register(t), c.register(t)
	equal(t, [3]bool{authenticated(s, 1), authenticated(s, 2), authenticated(s, 3)}, [3]bool{true, true, false}, "authenticated registrations")

	equal(t, a.lookup(t, 2, 0xfeed), LookupResult{Target: 2, Status: LookupOK, PublicKey: b.pub, Addrs: b.candidates(obsB)}, "A's lookup of B")
	eventually(t, func() bool { _, ok := b.offerFor(0xfeed); return ok }, "B to get A's offer")
	offer, _ := b.offerFor(0xfeed)
	equal(t, offer, Offer{From: 1, PublicKey: a.pub, SessionID: 0xfeed, Addrs: a.candidates(obsA)}, "offer")
	equal(t, c.lookup(t, 1, 0xc0), LookupResult{Target: 1, Status: LookupOK, PublicKey: a.pub, Addrs: a.candidates(obsA)}, "C's lookup of A")
	equal(t, b.lookup(t, 3, 0xb0), LookupResult{Target: 3, Status: LookupOK, PublicKey: c.pub, Addrs: c.candidates(obsC)}, "B's lookup of C")
	eventually(t, func() bool { _, ok := a.offerFor(0xc0); return ok }, "A to get C's offer")

	a.close()
	eventually(t, func() bool { return s.tab.len() == 2 }, "A's authenticated unregistration")
}

// Everything A sent, replayed from another address as it was or altered,
// changes nothing: A stays where it registered and B gets no offer A did
// not ask for.
func TestCapturedSignallingReplayedFromElsewhere(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	var wire captured
	a := newPeer(t, srv, 1, 480, keyed(t), capturing(&wire))
	b := newPeer(t, srv, 2, 480, keyed(t))
	obsA := a.register(t)
	b.register(t)
	equal(t, a.lookup(t, 2, 0xfeed).Status, LookupOK, "A's lookup of B")
	eventually(t, func() bool { _, ok := b.offerFor(0xfeed); return ok }, "B to get A's offer")

	raw := rawSocket(t)
	var sentRaw int
	send := func(d []byte) {
		_, err := raw.WriteToUDPAddrPort(d, srv)
		noError(t, err, "write")
		sentRaw++
	}
	for _, d := range wire.all() {
		send(d)
		// Flip a bit in every field: header, IDs, session, key, padding, MAC.
		for _, at := range []int{3, headerLen - 1, headerLen + 7, headerLen + 15, headerLen + 23, headerLen + 30, len(d) / 2, len(d) - macLen - 1, len(d) - 1} {
			if at < len(d) {
				f := bytes.Clone(d)
				f[at] ^= 1
				send(f)
			}
		}
	}
	if sentRaw < 20 {
		t.Fatalf("only %d datagrams to replay", sentRaw)
	}

	// The server answers a socket's datagrams in order, so once the
	// barrier registration is answered, every replay has been handled.
	// Until then the replayer may only have been challenged (told the
	// server's key and a cookie), or told that a registration was refused
	// (SteamID 0).
	_, err := raw.WriteToUDPAddrPort(regBytes(0xba77, 77, 480, key(77)), srv)
	noError(t, err, "write")
	buf := make([]byte, 2048)
	for {
		raw.SetReadDeadline(time.Now().Add(eventuallyWithin))
		n, _, err := raw.ReadFromUDPAddrPort(buf)
		noError(t, err, "read")
		m, err := decode(buf[:n])
		noError(t, err, "decode")
		if m.typ != msgRegistered && m.typ != msgRefused && m.typ != msgChallenge {
			t.Fatalf("the replayer got a %v", m.typ)
		}
		if m.txID == 0xba77 {
			break
		}
	}
	equal(t, authenticated(s, 1), true, "A authenticated")
	equal(t, b.lookup(t, 1, 0xb0).Addrs[0], obsA, "A's address as B finds it")

	// Offers reach B in the order the server sent them: once this one is
	// in, any offer the replays caused would be too.
	a.client.Lookup(2, 0xbeef)
	eventually(t, func() bool { _, ok := b.offerFor(0xbeef); return ok }, "B to get A's second offer")
	for _, o := range b.rec.gotOffers() {
		if o.SessionID != 0xfeed && o.SessionID != 0xbeef {
			t.Fatalf("B got an offer A never made: %+v", o)
		}
	}
}

// A server that restarts forgets every registration and has a new key;
// clients register again by themselves at their next refresh, and find each
// other again.
func TestServerRestartReregisters(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	fast := withConfig(func(c *ClientConfig) { c.RefreshInterval = 20 * time.Millisecond })
	a := newPeer(t, srv, 1, 480, keyed(t), fast)
	b := newPeer(t, srv, 2, 480, keyed(t), fast)
	a.register(t)
	obsB := b.register(t)
	oldKey := s.PublicKey()
	noError(t, s.Close(), "Close")

	s2, _ := startServer(t, ServerConfig{ListenAddr: srv.String()})
	if s2.PublicKey() == oldKey {
		t.Fatal("the restarted server has the same key")
	}
	eventually(t, func() bool { return authenticated(s2, 1) && authenticated(s2, 2) }, "A and B to register with the restarted server")
	equal(t, a.lookup(t, 2, 0xfeed), LookupResult{Target: 2, Status: LookupOK, PublicKey: b.pub, Addrs: b.candidates(obsB)}, "A's lookup of B after the restart")
	eventually(t, func() bool { _, ok := b.offerFor(0xfeed); return ok }, "B to get A's offer")
}

// isConfigError reports whether err is the refusal of a configuration.
func isConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

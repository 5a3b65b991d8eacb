package rendezvous

import (
	"bytes"
	"context"
	"crypto/ecdh"
	crand "crypto/rand"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// These tests play the server by hand: the client's Send is captured and
// answers are fed to HandleInbound, so nothing touches a socket.

var fakeServer = netip.MustParseAddrPort("127.0.0.1:3478")

type sent struct {
	m  message
	to netip.AddrPort
	b  []byte
}

type fakeNet struct {
	t  *testing.T
	ch chan sent
}

func (f *fakeNet) send(b []byte, to netip.AddrPort) error {
	m, err := decode(b)
	if err != nil {
		f.t.Errorf("client sent an undecodable datagram % x: %v", b, err)
		return nil
	}
	select {
	case f.ch <- sent{m, to, bytes.Clone(b)}:
	default:
		// The tests read what they need; a fast retransmitter may produce
		// more than that.
	}
	return nil
}

// nextNew returns the next datagram of type typ with a txID other than old.
func (f *fakeNet) nextNew(typ msgType, old uint64) message {
	f.t.Helper()
	for {
		if m := f.next(typ); m.txID != old {
			return m
		}
	}
}

// next returns the next datagram of type typ the client sent, skipping others.
func (f *fakeNet) next(typ msgType) message {
	f.t.Helper()
	return f.nextSent(typ).m
}

func (f *fakeNet) nextSent(typ msgType) sent {
	f.t.Helper()
	for {
		s := await(f.t, f.ch, "client to send a %v", typ)
		if s.to != fakeServer {
			f.t.Fatalf("client sent to %v, want %v", s.to, fakeServer)
		}
		if s.m.typ == typ {
			return s
		}
	}
}

// nextNewSent is nextNew with the bytes.
func (f *fakeNet) nextNewSent(typ msgType, old uint64) sent {
	f.t.Helper()
	for {
		if s := f.nextSent(typ); s.m.txID != old {
			return s
		}
	}
}

type recorder struct {
	mu         sync.Mutex
	offers     []Offer
	results    []LookupResult
	deliveries []delivery
}

// delivery is a call of OnDelivered.
type delivery struct{ target, sessionID uint64 }

func (r *recorder) delivered(target, sessionID uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, delivery{target, sessionID})
}

func (r *recorder) gotDeliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries...)
}

func (r *recorder) offer(o Offer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.offers = append(r.offers, o)
}

func (r *recorder) lookup(l LookupResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, l)
}

func (r *recorder) gotResults() []LookupResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]LookupResult(nil), r.results...)
}

func (r *recorder) gotOffers() []Offer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Offer(nil), r.offers...)
}

func newFakeClient(t *testing.T, tweak func(*ClientConfig)) (*Client, *fakeNet, *recorder) {
	t.Helper()
	f := &fakeNet{t: t, ch: make(chan sent, 1024)}
	rec := &recorder{}
	cfg := ClientConfig{
		SteamID:            10,
		AppID:              480,
		PublicKey:          key(10),
		Server:             fakeServer,
		LocalAddrs:         []netip.AddrPort{v4b},
		Send:               f.send,
		OnOffer:            rec.offer,
		OnLookup:           rec.lookup,
		OnDelivered:        rec.delivered,
		RetransmitInterval: time.Millisecond,
		RefreshInterval:    time.Hour,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := NewClient(cfg)
	noError(t, err, "NewClient")
	t.Cleanup(func() { c.Close() })
	return c, f, rec
}

func feed(t *testing.T, c *Client, m message) {
	t.Helper()
	if !c.HandleInbound(m.encode(nil), fakeServer) {
		t.Fatalf("HandleInbound refused a %v from the server", m.typ)
	}
}

// sharedKey is the key the server srv shares with the client client.
func sharedKey(t *testing.T, srv, client keyPair, id uint64) [32]byte {
	t.Helper()
	k, err := deriveMACKey(srv.key, client.pub, id)
	noError(t, err, "derive")
	return k
}

// feedSigned feeds m MAC'd under key, as the server sends it to a client
// whose registration is authenticated.
func feedSigned(t *testing.T, c *Client, m message, key [32]byte) {
	t.Helper()
	if !c.HandleInbound(signedBytes(m, key), fakeServer) {
		t.Fatalf("HandleInbound refused a %v from the server", m.typ)
	}
}

func TestNewClientValidates(t *testing.T) {
	good := ClientConfig{SteamID: 1, Server: fakeServer, Send: func([]byte, netip.AddrPort) error { return nil }}
	for field, tweak := range map[string]func(*ClientConfig){
		"SteamID":            func(c *ClientConfig) { c.SteamID = 0 },
		"Server":             func(c *ClientConfig) { c.Server = netip.AddrPort{} },
		"Send":               func(c *ClientConfig) { c.Send = nil },
		"LocalAddrs[1]":      func(c *ClientConfig) { c.LocalAddrs = []netip.AddrPort{v4a, netip.MustParseAddrPort("0.0.0.0:5")} },
		"LocalAddrs":         func(c *ClientConfig) { c.LocalAddrs = maxAddrs(MaxLocalAddrs + 1) },
		"RetransmitInterval": func(c *ClientConfig) { c.RetransmitInterval = -1 },
		"RefreshInterval":    func(c *ClientConfig) { c.RefreshInterval = -1 },
		"PublicKey":          func(c *ClientConfig) { c.PrivateKey, c.PublicKey = key(1), key(2) },
	} {
		cfg := good
		tweak(&cfg)
		_, err := NewClient(cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Config != "rendezvous.ClientConfig" || ce.Field != field {
			t.Errorf("bad %s: NewClient error %v, want a ConfigError for ClientConfig.%s", field, err, field)
		}
	}
	for _, server := range []string{"127.0.0.1:0", "0.0.0.0:3478", "[ff02::1]:3478"} {
		cfg := good
		cfg.Server = netip.MustParseAddrPort(server)
		if _, err := NewClient(cfg); !isConfigError(err) {
			t.Errorf("Server %s: NewClient error %v, want a ConfigError", server, err)
		}
	}
	c, err := NewClient(good)
	noError(t, err, "NewClient with the minimal config")
	c.Close()
	kp := newKeyPair(t)
	good.PrivateKey, good.PublicKey = kp.priv, kp.pub
	c, err = NewClient(good)
	noError(t, err, "NewClient with a key pair")
	c.Close()
}

type keyPair struct {
	priv, pub [32]byte
	key       *ecdh.PrivateKey
}

func newKeyPair(t testing.TB) keyPair {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(crand.Reader)
	noError(t, err, "generate key")
	return keyPair{priv: [32]byte(k.Bytes()), pub: [32]byte(k.PublicKey().Bytes()), key: k}
}

// newKeyedFakeClient is newFakeClient with a key pair, and the key pairs
// of two servers (two runs of one server) to answer it with.
func newKeyedFakeClient(t *testing.T, tweak func(*ClientConfig)) (*Client, *fakeNet, *recorder, keyPair, [2]keyPair) {
	t.Helper()
	kp := newKeyPair(t)
	c, f, rec := newFakeClient(t, func(cfg *ClientConfig) {
		cfg.PrivateKey, cfg.PublicKey = kp.priv, kp.pub
		if tweak != nil {
			tweak(cfg)
		}
	})
	return c, f, rec, kp, [2]keyPair{newKeyPair(t), newKeyPair(t)}
}

// checkMAC fails the test unless s is MAC'd under the key that the server
// srv shares with client.
func checkMAC(t *testing.T, s sent, srv, client keyPair, id uint64) {
	t.Helper()
	if !s.m.hasMAC {
		t.Fatalf("%v not MAC'd", s.m.typ)
	}
	k, err := deriveMACKey(srv.key, client.pub, id)
	noError(t, err, "derive")
	if !newMacer().verify(s.b, &k) {
		t.Fatalf("%v MAC'd under the wrong key", s.m.typ)
	}
}

func TestClientAuthenticatesOnceItKnowsTheServerKey(t *testing.T) {
	c, f, _, kp, srv := newKeyedFakeClient(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	first := f.next(msgRegister)
	equal(t, first.hasMAC, false, "first registration MAC'd")
	feed(t, c, message{typ: msgRegistered, txID: first.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}})

	// The server has not seen the key pair proven: Register goes on.
	second := f.nextNewSent(msgRegister, first.txID)
	checkMAC(t, second, srv[0], kp, 10)
	if second.m.txID <= first.txID {
		t.Fatalf("authenticated registration %d not newer than the first, %d", second.m.txID, first.txID)
	}
	select {
	case err := <-done:
		t.Fatalf("Register returned (%v) before its authenticated registration was answered", err)
	default:
	}
	// The server MACs its answer to an authenticated registration; one
	// without, from its address, is not from it.
	feed(t, c, message{typ: msgRegistered, txID: second.m.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v6a}})
	select {
	case err := <-done:
		t.Fatalf("Register returned (%v) on an answer without a MAC", err)
	default:
	}
	feedSigned(t, c, message{typ: msgRegistered, txID: second.m.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}}, sharedKey(t, srv[0], kp, 10))
	noError(t, await(t, done, "Register to return"), "Register")
	equal(t, c.Observed(), v4a, "Observed()")

	c.Lookup(20, 1)
	checkMAC(t, f.nextSent(msgLookup), srv[0], kp, 10)
	noError(t, c.Close(), "Close")
	checkMAC(t, f.nextSent(msgUnregister), srv[0], kp, 10)
}

func TestClientFollowsServerKeyChange(t *testing.T) {
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) { cfg.RefreshInterval = time.Millisecond })
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	first := f.next(msgRegister)
	feed(t, c, message{typ: msgRegistered, txID: first.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}})
	second := f.nextNew(msgRegister, first.txID)
	feedSigned(t, c, message{typ: msgRegistered, txID: second.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}}, sharedKey(t, srv[0], kp, 10))
	noError(t, await(t, done, "Register"), "Register")

	// The server restarted: it answers the refresh with its new key, and
	// the client registers again under that key.
	refresh := f.nextNewSent(msgRegister, second.txID)
	checkMAC(t, refresh, srv[0], kp, 10)
	feed(t, c, message{typ: msgRegistered, txID: refresh.m.txID, publicKey: srv[1].pub, addrs: []netip.AddrPort{v6a}})
	again := f.nextNewSent(msgRegister, refresh.m.txID)
	checkMAC(t, again, srv[1], kp, 10)
	equal(t, c.Observed(), v4a, "Observed() before the new server confirmed")
	feedSigned(t, c, message{typ: msgRegistered, txID: again.m.txID, publicKey: srv[1].pub, addrs: []netip.AddrPort{v6a}}, sharedKey(t, srv[1], kp, 10))
	eventually(t, func() bool { return c.Observed() == v6a }, "Observed() to follow the new server")
	c.Lookup(20, 1)
	checkMAC(t, f.nextSent(msgLookup), srv[1], kp, 10)
}

func TestClientIgnoresUnusableServerKey(t *testing.T) {
	c, f, _, _, _ := newKeyedFakeClient(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	first := f.next(msgRegister)
	// The zero point gives a secret everybody knows.
	feed(t, c, message{typ: msgRegistered, txID: first.txID, addrs: []netip.AddrPort{v4a}})
	// HandleInbound has returned, so the answer has been dealt with.
	c.mu.Lock()
	keyed, tx := c.keyed, c.reg.txID
	c.mu.Unlock()
	equal(t, [2]any{keyed, tx}, [2]any{false, first.txID}, "key learnt, registration in flight")
	select {
	case err := <-done:
		t.Fatalf("Register returned (%v) on an unusable server key", err)
	default:
	}
}

func TestClientRegisterRetransmitsUntilConfirmed(t *testing.T) {
	c, f, _ := newFakeClient(t, nil)
	type result struct {
		observed netip.AddrPort
		err      error
	}
	done := make(chan result, 1)
	go func() {
		o, err := c.Register(context.Background())
		done <- result{o, err}
	}()

	first := f.next(msgRegister)
	equal(t, first, message{typ: msgRegister, txID: first.txID, steamID: 10, appID: 480, publicKey: key(10), addrs: []netip.AddrPort{v4b}}, "registration")
	for range 3 {
		again := f.next(msgRegister)
		equal(t, again, first, "retransmission")
	}

	feed(t, c, message{typ: msgRegistered, txID: first.txID + 1, addrs: []netip.AddrPort{v4a}}) // someone else's
	select {
	case r := <-done:
		t.Fatalf("Register returned %v on an answer with the wrong txID", r)
	default:
	}
	feed(t, c, message{typ: msgRegistered, txID: first.txID, addrs: []netip.AddrPort{v4a}})
	r := await(t, done, "Register to return")
	noError(t, r.err, "Register")
	equal(t, r.observed, v4a, "observed address")
	equal(t, c.Observed(), v4a, "Observed()")
	// A late duplicate changes nothing.
	feed(t, c, message{typ: msgRegistered, txID: first.txID, addrs: []netip.AddrPort{v6a}})
	equal(t, c.Observed(), v4a, "Observed() after a duplicate")
}

func TestClientRegisterRefused(t *testing.T) {
	c, f, _ := newFakeClient(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	m := f.next(msgRegister)
	feed(t, c, message{typ: msgRefused, txID: m.txID, reason: RefuseNoRightsToApp})
	err := await(t, done, "Register to return")
	if !errors.Is(err, ErrRegistrationRefused) {
		t.Fatalf("Register error %v does not wrap ErrRegistrationRefused", err)
	}
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != RefuseNoRightsToApp {
		t.Fatalf("Register error %v: want a *RefusedError with RefuseNoRightsToApp", err)
	}
	equal(t, c.Observed(), netip.AddrPort{}, "Observed() after a refusal")
}

func TestClientRegisterGivesUpWithContext(t *testing.T) {
	c, f, _ := newFakeClient(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(ctx)
		done <- err
	}()
	f.next(msgRegister)
	f.next(msgRegister)
	cancel()
	err := await(t, done, "Register to return")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Register error %v, want context.Canceled", err)
	}
	// Nobody waits for the registration any more, so it stops.
	eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.reg == nil && c.refreshAt.IsZero()
	}, "the abandoned registration to stop")

	if _, err := c.Register(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Register with an ended context: %v, want context.Canceled", err)
	}
}

func TestClientRegisterConcurrentCallsShareOneAttempt(t *testing.T) {
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) { cfg.RetransmitInterval = time.Hour })
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Register(context.Background())
			done <- err
		}()
	}
	m := f.next(msgRegister)
	eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.reg != nil && len(c.reg.waiters) == 2
	}, "both calls to wait")
	feed(t, c, message{typ: msgRegistered, txID: m.txID, addrs: []netip.AddrPort{v4a}})
	noError(t, await(t, done, "first Register"), "first Register")
	noError(t, await(t, done, "second Register"), "second Register")
}

func TestClientRefreshes(t *testing.T) {
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) { cfg.RefreshInterval = time.Millisecond })
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	m := f.next(msgRegister)
	feed(t, c, message{typ: msgRegistered, txID: m.txID, addrs: []netip.AddrPort{v4a}})
	noError(t, await(t, done, "Register"), "Register")

	refresh := f.nextNew(msgRegister, m.txID)
	// The NAT rebound: the refresh is seen elsewhere.
	feed(t, c, message{typ: msgRegistered, txID: refresh.txID, addrs: []netip.AddrPort{v6a}})
	equal(t, c.Observed(), v6a, "Observed() after a refresh")
	f.next(msgRegister) // and refreshing goes on
}

func TestClientRefreshGivesUpAndRetriesLater(t *testing.T) {
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) { cfg.RefreshInterval = time.Millisecond })
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	m := f.next(msgRegister)
	feed(t, c, message{typ: msgRegistered, txID: m.txID, addrs: []netip.AddrPort{v4a}})
	noError(t, await(t, done, "Register"), "Register")

	// An unanswered refresh round is sent maxRefreshTries times, then a new
	// round with a new txID begins.
	round := f.nextNew(msgRegister, m.txID)
	for range maxRefreshTries - 1 {
		equal(t, f.next(msgRegister).txID, round.txID, "retransmitted refresh txID")
	}
	if next := f.next(msgRegister); next.txID == round.txID {
		t.Fatalf("refresh sent more than %d times", maxRefreshTries)
	}
}

func TestClientLookup(t *testing.T) {
	c, f, rec := newFakeClient(t, nil)
	c.Lookup(20, 1)
	first := f.next(msgLookup)
	equal(t, first, message{typ: msgLookup, txID: first.txID, steamID: 10, appID: 480, target: 20, sessionID: 1}, "lookup")
	equal(t, f.next(msgLookup), first, "retransmitted lookup")

	// A second call replaces the first.
	c.Lookup(20, 2)
	var second message
	for second = f.next(msgLookup); second.sessionID != 2; second = f.next(msgLookup) {
	}
	if second.txID == first.txID {
		t.Fatal("the replacing lookup reused the txID")
	}
	feed(t, c, message{typ: msgLookupResult, txID: first.txID, target: 20, status: LookupNotOnline})
	equal(t, len(rec.gotResults()), 0, "results for the replaced lookup")

	ok := message{typ: msgLookupResult, txID: second.txID, target: 20, status: LookupOK, publicKey: key(20), addrs: []netip.AddrPort{v4a, v6a}}
	feed(t, c, ok)
	feed(t, c, ok) // duplicated on the way
	equal(t, rec.gotResults(), []LookupResult{{Target: 20, Status: LookupOK, PublicKey: key(20), Addrs: []netip.AddrPort{v4a, v6a}}}, "results")

	c.Lookup(30, 3)
	m := f.next(msgLookup)
	for m.target != 30 {
		m = f.next(msgLookup)
	}
	feed(t, c, message{typ: msgLookupResult, txID: m.txID, target: 30, status: LookupOtherApp})
	equal(t, rec.gotResults()[1], LookupResult{Target: 30, Status: LookupOtherApp}, "second result")
}

func TestClientLookupGivesUp(t *testing.T) {
	c, f, rec := newFakeClient(t, nil)
	c.Lookup(20, 1)
	eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.lookups) == 0
	}, "the lookup to be given up")
	n := 0
	for len(f.ch) > 0 {
		if s := <-f.ch; s.m.typ == msgLookup {
			n++
		}
	}
	equal(t, n, maxLookupTries, "transmissions of an unanswered lookup")
	equal(t, len(rec.gotResults()), 0, "results")
}

func TestClientHandleInbound(t *testing.T) {
	c, _, rec := newFakeClient(t, nil)
	offer := message{typ: msgOffer, txID: 5, steamID: 30, publicKey: key(30), sessionID: 77, addrs: []netip.AddrPort{v4a, v4b}}
	b := offer.encode(nil)

	if c.HandleInbound(b, netip.MustParseAddrPort("127.0.0.1:3479")) {
		t.Error("consumed a datagram from another port")
	}
	if c.HandleInbound(b, netip.MustParseAddrPort("127.0.0.2:3478")) {
		t.Error("consumed a datagram from another host")
	}
	if c.HandleInbound([]byte{0xE1, 1, 2, 3}, fakeServer) {
		t.Error("consumed peer traffic from the server's address")
	}
	if c.HandleInbound(nil, fakeServer) {
		t.Error("consumed an empty datagram")
	}
	if !c.HandleInbound([]byte{0xD0, 1, 0xff}, fakeServer) {
		t.Error("did not consume a malformed rendezvous datagram from the server")
	}
	equal(t, len(rec.gotOffers()), 0, "offers before the offer")

	mapped := netip.AddrPortFrom(netip.AddrFrom16(fakeServer.Addr().As16()), fakeServer.Port())
	if !c.HandleInbound(b, mapped) {
		t.Fatal("did not consume an offer from the server's IPv4-mapped address")
	}
	equal(t, rec.gotOffers(), []Offer{{From: 30, PublicKey: key(30), SessionID: 77, Addrs: []netip.AddrPort{v4a, v4b}}}, "offers")
}

func TestClientClose(t *testing.T) {
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) { cfg.RetransmitInterval = time.Hour })
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	m := f.next(msgRegister)
	noError(t, c.Close(), "Close")
	if err := await(t, done, "Register to return on Close"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("pending Register: %v, want net.ErrClosed", err)
	}
	// The registration may have reached the server, so it is withdrawn.
	equal(t, f.next(msgUnregister).steamID, uint64(10), "unregistered SteamID")
	noError(t, c.Close(), "second Close")

	if _, err := c.Register(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Register after Close: %v, want net.ErrClosed", err)
	}
	c.Lookup(20, 1)
	feed(t, c, message{typ: msgRegistered, txID: m.txID, addrs: []netip.AddrPort{v4a}})
	equal(t, c.Observed(), netip.AddrPort{}, "Observed() after Close")
	for len(f.ch) > 0 {
		if s := <-f.ch; s.m.typ != msgRegister && s.m.typ != msgUnregister {
			t.Fatalf("sent a %v after Close", s.m.typ)
		}
	}
}

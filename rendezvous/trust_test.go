package rendezvous

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// pendingLookups counts the lookups p's client still retransmits.
func (p *peer) pendingLookups() int {
	p.client.mu.Lock()
	defer p.client.mu.Unlock()
	return len(p.client.lookups)
}

// With HidePresence, lookups of users who are offline or in another game
// get no answer at all, while a lookup of a user online in the same game
// is answered.
func TestHidePresence(t *testing.T) {
	_, srv := startServer(t, ServerConfig{HidePresence: true})
	fast := withConfig(func(c *ClientConfig) { c.RetransmitInterval = time.Millisecond })
	a := newPeer(t, srv, 1, 480, fast)
	b := newPeer(t, srv, 2, 480, fast)
	c := newPeer(t, srv, 3, 730, fast)
	a.register(t)
	b.register(t)
	c.register(t)

	a.client.Lookup(3, 1) // in another game
	a.client.Lookup(4, 1) // offline
	c.client.Lookup(1, 1) // from another game
	// The server answers a socket's datagrams in order, and loopback
	// keeps them in order: had the lookups above been answered, their
	// answers would have come before these.
	equal(t, a.lookup(t, 2, 0xab).Status, LookupOK, "A's lookup of B")
	equal(t, a.rec.gotResults(), []LookupResult{{Target: 2, Status: LookupOK, PublicKey: key(2), Addrs: b.candidates(b.addr)}}, "A's answers")
	eventually(t, func() bool { _, ok := b.offerFor(0xab); return ok }, "B to get A's offer")
	equal(t, c.lookup(t, 3, 0xc).Status, LookupOK, "C's lookup of itself")
	equal(t, len(c.rec.gotResults()), 1, "C's answers")
	// Nor are they answered at any of their tries: the clients give up,
	// having heard nothing, as they would from Steam.
	eventually(t, func() bool { return a.pendingLookups() == 0 && c.pendingLookups() == 0 }, "the unanswered lookups to give up")
	equal(t, [2]int{len(a.rec.gotResults()), len(c.rec.gotResults())}, [2]int{1, 1}, "answers once the lookups gave up")
}

// A client that hides its address: the peers it meets learn its relayed
// addresses alone, in lookup results and offers, and nothing they are sent
// carries its observed or local address.
func TestHideAddress(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	relayedH := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:50000")}
	h := newPeer(t, srv, 1, 480, keyed(t), withConfig(func(c *ClientConfig) { c.HideAddress = true }))
	var toB captured
	b := newPeer(t, srv, 2, 480, keyed(t), func(p *peer, _ *ClientConfig) { p.tap = &toB })
	equal(t, h.register(t), h.addr, "H still learns its own observed address")
	h.client.SetRelayed(relayedH)
	eventually(t, func() bool {
		s.tab.mu.Lock()
		defer s.tab.mu.Unlock()
		return len(s.tab.regs[regKey{steamID: 1}].relayed) == 1
	}, "H's registration with its relayed address")
	b.register(t)

	equal(t, b.lookup(t, 1, 0xb0), LookupResult{Target: 1, Status: LookupOK, PublicKey: h.pub, Relayed: relayedH}, "B's lookup of H")
	h.client.Lookup(2, 0xa0)
	eventually(t, func() bool { _, ok := b.offerFor(0xa0); return ok }, "B to get H's offer")
	offer, _ := b.offerFor(0xa0)
	equal(t, offer, Offer{From: 1, PublicKey: h.pub, SessionID: 0xa0, Relayed: relayedH}, "H's offer to B")
	// H acknowledged B's offer: B hears of it.
	eventually(t, func() bool { return len(b.rec.gotDeliveries()) > 0 }, "the report that H got B's offer")

	hLocal := h.candidates(h.addr)[1]
	for _, d := range toB.all() {
		for _, a := range []netip.AddrPort{h.addr, hLocal} {
			if bytes.Contains(d, appendAddr(nil, a)) {
				t.Fatalf("B was sent H's address %v: % x", a, d)
			}
		}
	}
	if len(toB.all()) < 4 {
		t.Fatalf("B received %d datagrams, want at least its registration's answers, a lookup result, an offer and a report", len(toB.all()))
	}
}

// On the wire, a client that hides its address registers without its
// local addresses, with the option set.
func TestClientHideAddressRegisters(t *testing.T) {
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) { cfg.HideAddress = true })
	go c.Register(context.Background())
	m := f.next(msgRegister)
	equal(t, [2]any{m.hideAddress, m.addrs}, [2]any{true, []netip.AddrPort(nil)}, "option and local addresses in the registration")
	c2, f2, _ := newFakeClient(t, nil)
	go c2.Register(context.Background())
	m = f2.next(msgRegister)
	equal(t, [2]any{m.hideAddress, m.addrs}, [2]any{false, []netip.AddrPort{v4b}}, "without the option")
}

// The embedded relay lets an allocation reach only the contacts of the
// player it belongs to: on loopback, where the relay (RelayIP 127.0.0.1)
// relays to loopback and private addresses too, so that the contacts alone
// decide.
func TestRelayOnlyToContacts(t *testing.T) {
	_, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1"})
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t))
	a.register(t)
	b.register(t)
	ra := a.client.Relays()[0]
	ta := a.sharedTURNClient(t, ra)
	allocate(t, ta)

	bLocal := udpAddr(b.candidates(b.addr)[1]) // 198.18.1.2:7000
	strangers := []net.Addr{
		&net.UDPAddr{IP: net.IPv4(198, 18, 7, 7), Port: 7000},
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 7000},
		&net.UDPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 7000},
	}
	if err := ta.CreatePermission(bLocal); err == nil {
		t.Fatal("A's allocation was permitted to reach B before A met B")
	}
	equal(t, a.lookup(t, 2, 0xab).Status, LookupOK, "A's lookup of B")
	noError(t, ta.CreatePermission(udpAddr(b.addr)), "A's permission for B's observed address")
	// B's local address is B's own word: anyone could declare a third
	// party's address as its own, and widen its contacts' reach to it.
	if err := ta.CreatePermission(bLocal); err == nil {
		t.Fatal("A's allocation was permitted to reach the local address B declared")
	}
	for _, x := range strangers {
		if err := ta.CreatePermission(x); err == nil {
			t.Fatalf("A's allocation was permitted to reach the stranger %v", x)
		}
	}

	// B, offered by A, may reach A; not the strangers either.
	eventually(t, func() bool { _, ok := b.offerFor(0xab); return ok }, "B to get A's offer")
	tb := b.sharedTURNClient(t, b.client.Relays()[0])
	allocate(t, tb)
	noError(t, tb.CreatePermission(udpAddr(a.addr)), "B's permission for A's observed address")
	if err := tb.CreatePermission(udpAddr(a.candidates(a.addr)[1])); err == nil {
		t.Fatal("B's allocation was permitted to reach the local address A declared")
	}
	for _, x := range strangers {
		if err := tb.CreatePermission(x); err == nil {
			t.Fatalf("B's allocation was permitted to reach the stranger %v", x)
		}
	}

	// A's credentials from a socket A did not register from: the relay
	// allocates, but permits nothing.
	elsewhere, _ := turnClient(t, ra.Addr, ra.Username, ra.Password)
	allocate(t, elsewhere)
	if err := elsewhere.CreatePermission(bLocal); err == nil {
		t.Fatal("an allocation under A's credentials, from elsewhere, was permitted to reach A's contact")
	}
}

package rendezvous

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Receipts for offers (OFFER_ACK) and the reports of them to the requester
// (DELIVERED): the table, the client against a hand-played server, and both
// on loopback.

func offerAckBytes(txID, from, requester, session uint64) []byte {
	m := message{typ: msgOfferAck, txID: txID, steamID: from, appID: 480, requester: requester, sessionID: session}
	return m.encode(nil)
}

func (c *keyedClient) offerAck(txID, requester, session uint64) []byte {
	return signedBytes(message{typ: msgOfferAck, txID: txID, steamID: c.id, appID: 480, requester: requester, sessionID: session}, c.key)
}

// deliveredTo checks that out is exactly one DELIVERED to `to`, no larger than
// req, and returns it, checking its MAC under mac's key unless mac is nil.
func deliveredTo(t *testing.T, out []datagram, req []byte, to netip.AddrPort, mac *keyedClient) message {
	t.Helper()
	notLarger(t, out, req)
	m, dst := only(t, out)
	equal(t, [2]any{m.typ, dst}, [2]any{msgDelivered, to}, "datagram and destination")
	if mac != nil {
		return mac.unseal(t, m, out[0].b)
	}
	equal(t, m.hasMAC, false, "DELIVERED MAC'd")
	return m
}

func TestTableOfferAck(t *testing.T) {
	ttl := time.Minute
	tab := newTestTable(ttl, 10)
	addrD := netip.MustParseAddrPort("198.18.0.4:1004")
	a := newKeyedClient(t, tab, 1)
	b := newKeyedClient(t, tab, 2)
	registerKeyed(t, tab, a, addrA, t0)
	registerKeyed(t, tab, b, addrB, t0)
	mustRegister(t, tab, 3, 480, addrC, t0) // without a key pair
	mustRegister(t, tab, 4, 730, addrD, t0) // another app

	// B got A's offer: A hears of it, in a DELIVERED MAC'd for A that names
	// B, with the txID of the receipt passed through.
	req := b.offerAck(0x10, 1, 0x5e55)
	m := deliveredTo(t, handle(tab, req, addrB, t0, nil), req, addrA, a)
	equal(t, m, message{typ: msgDelivered, txID: 0x10, target: 2, sessionID: 0x5e55}, "DELIVERED")
	// Nothing is kept: a repeated receipt is reported again.
	equal(t, deliveredTo(t, handle(tab, req, addrB, t0, nil), req, addrA, a), m, "DELIVERED for the repeated receipt")

	// A receipt without a MAC from a user without a key pair, reported to
	// an authenticated requester: MAC'd, and still no larger.
	req = offerAckBytes(0x11, 3, 1, 7)
	m = deliveredTo(t, handle(tab, req, addrC, t0, nil), req, addrA, a)
	equal(t, [2]uint64{m.target, m.sessionID}, [2]uint64{3, 7}, "target and session reported to A")
	// And the other way round: no MAC for a requester without a key pair.
	req = b.offerAck(0x12, 3, 8)
	m = deliveredTo(t, handle(tab, req, addrB, t0, nil), req, addrC, nil)
	equal(t, [2]uint64{m.target, m.sessionID}, [2]uint64{2, 8}, "target and session reported to C")

	// Who may not send a receipt, or get a report.
	genuine := b.offerAck(0x20, 1, 9)
	for _, tc := range []struct {
		name string
		req  []byte
		from netip.AddrPort
	}{
		{"B's receipt from another address", genuine, addrC},
		{"B's receipt from A's address", genuine, addrA},
		{"B's receipt without its MAC", offerAckBytes(0x20, 2, 1, 9), addrB},
		{"B's receipt under another key", b.forged().offerAck(0x20, 1, 9), addrB},
		{"B's receipt MAC'd under A's key", signedBytes(message{typ: msgOfferAck, txID: 0x20, steamID: 2, appID: 480, requester: 1, sessionID: 9}, a.key), addrB},
		{"C's receipt from another address", offerAckBytes(0x21, 3, 1, 9), addrB},
		{"a receipt from an unregistered user", offerAckBytes(0x22, 9, 1, 9), netip.MustParseAddrPort("198.18.0.9:1009")},
		{"a receipt for an unregistered requester", b.offerAck(0x23, 99, 9), addrB},
		{"a receipt for a requester of another app", b.offerAck(0x24, 4, 9), addrB},
		{"a receipt from a user of another app", offerAckBytes(0x25, 4, 1, 9), addrD},
		{"a receipt for requester zero", b.offerAck(0x26, 0, 9), addrB},
	} {
		silent(t, handle(tab, tc.req, tc.from, t0, nil), "%s", tc.name)
	}
	for i, f := range flips(genuine) {
		silent(t, handle(tab, f, addrB, t0, nil), "B's receipt with bit %d flipped", i)
	}

	// Expired registrations neither send receipts nor get reports.
	mustRegister(t, tab, 3, 480, addrC, t0.Add(ttl/2))
	later := t0.Add(ttl)
	silent(t, handle(tab, b.offerAck(0x30, 3, 9), addrB, later, nil), "a receipt from an expired user")
	silent(t, handle(tab, offerAckBytes(0x31, 3, 1, 9), addrC, later, nil), "a receipt for an expired requester")
}

// offerTracker plays the application of a target: it notes when OnOffer is
// running and how many calls have returned, and checks, in Send, that every
// receipt follows a call that has returned.
type offerTracker struct {
	t        *testing.T
	inside   atomic.Bool
	returned atomic.Int64
	acks     atomic.Int64
	offers   chan Offer
}

func newOfferTracker(t *testing.T) *offerTracker {
	return &offerTracker{t: t, offers: make(chan Offer, 64)}
}

func (o *offerTracker) onOffer(of Offer) {
	o.inside.Store(true)
	o.offers <- of
	o.inside.Store(false)
	o.returned.Add(1)
}

// wrap checks the receipts that send carries.
func (o *offerTracker) wrap(send func([]byte, netip.AddrPort) error) func([]byte, netip.AddrPort) error {
	return func(b []byte, to netip.AddrPort) error {
		if m, err := decode(b); err == nil && m.typ == msgOfferAck {
			if n := o.acks.Add(1); o.inside.Load() || n > o.returned.Load() {
				o.t.Errorf("receipt %d sent while OnOffer runs, or before it returned (%d returned)", n, o.returned.Load())
			}
		}
		return send(b, to)
	}
}

// acksSent drains what f holds and returns the receipts among it. Called
// once HandleInbound has returned, every receipt it sent is there.
func acksSent(f *fakeNet) []sent {
	var out []sent
	for {
		select {
		case s := <-f.ch:
			if s.m.typ == msgOfferAck {
				out = append(out, s)
			}
		default:
			return out
		}
	}
}

func TestClientAcknowledgesOffers(t *testing.T) {
	track := newOfferTracker(t)
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) {
		cfg.OnOffer = track.onOffer
		cfg.Send = track.wrap(cfg.Send)
	})
	offer := message{typ: msgOffer, txID: 5, steamID: 30, publicKey: key(30), sessionID: 77, addrs: []netip.AddrPort{v4a}}
	feed(t, c, offer)
	equal(t, await(t, track.offers, "the offer").SessionID, uint64(77), "offer")
	acks := acksSent(f)
	equal(t, len(acks), 1, "receipts")
	equal(t, acks[0].m, message{typ: msgOfferAck, txID: 5, steamID: 10, appID: 480, requester: 30, sessionID: 77}, "receipt")
	equal(t, acks[0].to, fakeServer, "receipt sent to")
	equal(t, len(acks[0].b), offerAckLen, "receipt length")

	// A repeated offer is handed over and acknowledged again.
	feed(t, c, offer)
	await(t, track.offers, "the repeated offer")
	equal(t, len(acksSent(f)), 1, "receipts for the repeated offer")

	// Nothing after Close.
	noError(t, c.Close(), "Close")
	feed(t, c, offer)
	equal(t, len(acksSent(f)), 0, "receipts after Close")
	equal(t, len(track.offers), 0, "offers after Close")
}

func TestClientAcknowledgesOffersWithoutOnOffer(t *testing.T) {
	c, f, _ := newFakeClient(t, func(cfg *ClientConfig) { cfg.OnOffer = nil })
	feed(t, c, message{typ: msgOffer, txID: 6, steamID: 30, publicKey: key(30), sessionID: 78, addrs: []netip.AddrPort{v4a}})
	acks := acksSent(f)
	equal(t, len(acks), 1, "receipts")
	equal(t, acks[0].m.sessionID, uint64(78), "receipt's session")
}

// A client that authenticates acknowledges only offers it takes, and MACs
// its receipts.
func TestClientAcknowledgesAuthenticatedOffersOnly(t *testing.T) {
	track := newOfferTracker(t)
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) {
		cfg.OnOffer = track.onOffer
		cfg.Send = track.wrap(cfg.Send)
	})
	k, _ := registerFake(t, c, f, kp, srv[0], registeredWith(srv[0], 0))
	acksSent(f)

	offer := message{typ: msgOffer, txID: 7, steamID: 30, publicKey: key(30), sessionID: 79, addrs: []netip.AddrPort{v4a}}
	feed(t, c, offer)
	feedSigned(t, c, offer, key(66))
	equal(t, [2]int{len(acksSent(f)), len(track.offers)}, [2]int{0, 0}, "receipts and offers for unauthenticated offers")

	feedSigned(t, c, offer, k)
	await(t, track.offers, "the authenticated offer")
	acks := acksSent(f)
	equal(t, len(acks), 1, "receipts")
	checkMAC(t, acks[0], srv[0], kp, 10)
	equal(t, len(acks[0].b), offerAckLen, "MAC'd receipt length")
	acks[0].m.hasMAC, acks[0].m.mac = false, [macLen]byte{}
	equal(t, acks[0].m, message{typ: msgOfferAck, txID: 7, steamID: 10, appID: 480, requester: 30, sessionID: 79}, "receipt")
}

func TestClientOnDelivered(t *testing.T) {
	var c *Client
	var mu sync.Mutex
	var got []delivery
	on := func(target, session uint64) {
		// No lock is held: the client's methods may be called.
		c.Observed()
		c.Relays()
		mu.Lock()
		got = append(got, delivery{target, session})
		mu.Unlock()
	}
	gotNow := func() []delivery {
		mu.Lock()
		defer mu.Unlock()
		return append([]delivery(nil), got...)
	}
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) { cfg.OnDelivered = on })

	// Before the client knows the server's key, it takes reports without a
	// MAC, and cannot check any with one.
	d := message{typ: msgDelivered, txID: 1, target: 20, sessionID: 5}
	feed(t, c, d)
	feedSigned(t, c, d, key(66))
	equal(t, gotNow(), []delivery{{20, 5}}, "reports before authentication")

	k, _ := registerFake(t, c, f, kp, srv[0], registeredWith(srv[0], 0))
	d.sessionID = 6
	feed(t, c, d)
	feedSigned(t, c, d, key(66))
	equal(t, len(gotNow()), 1, "reports after unauthenticated ones")
	feedSigned(t, c, d, k)
	feedSigned(t, c, d, k) // every report is passed on, repeats too
	equal(t, gotNow(), []delivery{{20, 5}, {20, 6}, {20, 6}}, "reports")

	noError(t, c.Close(), "Close")
	feedSigned(t, c, d, k)
	equal(t, len(gotNow()), 3, "reports after Close")
}

// A looks B up; B's OnOffer runs, and only once it has returned does A hear
// that B got the offer.
func TestOfferDelivered(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	track := newOfferTracker(t)
	reports := make(chan [3]any, 16)
	a := newPeer(t, srv, 1, 480, keyed(t), withConfig(func(cfg *ClientConfig) {
		cfg.OnDelivered = func(target, session uint64) {
			// Whether B's OnOffer had returned when A heard.
			select {
			case reports <- [3]any{target, session, track.returned.Load() > 0}:
			default:
				t.Errorf("report (%d, %#x) not taken", target, session)
			}
		}
	}))
	b := newPeer(t, srv, 2, 480, keyed(t), withConfig(func(cfg *ClientConfig) {
		cfg.OnOffer = track.onOffer
		cfg.Send = track.wrap(cfg.Send)
	}))
	c := newPeer(t, srv, 3, 480) // without a key pair
	a.register(t)
	b.register(t)
	c.register(t)

	a.client.Lookup(2, 0xfeed)
	equal(t, await(t, track.offers, "B's offer").SessionID, uint64(0xfeed), "B's offer")
	equal(t, await(t, reports, "A's report"), [3]any{uint64(2), uint64(0xfeed), true}, "A's report: target, session, B's OnOffer returned")

	// Between a client that authenticates and one that does not, both ways.
	c.client.Lookup(1, 0xc0)
	eventually(t, func() bool { return len(c.rec.gotDeliveries()) > 0 }, "C's report")
	equal(t, c.rec.gotDeliveries()[0], delivery{1, 0xc0}, "C's report")
	b.client.Lookup(3, 0xb0)
	eventually(t, func() bool { _, ok := c.offerFor(0xb0); return ok }, "C to get B's offer")
	eventually(t, func() bool { return len(b.rec.gotDeliveries()) > 0 }, "B's report")
	equal(t, b.rec.gotDeliveries()[0], delivery{3, 0xb0}, "B's report")
}

// B's receipt is lost; A, looking B up again, gets the offer forwarded again
// and B's receipt for that.
func TestLostOfferAckRecoveredByLookingUpAgain(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	var dropping atomic.Bool
	dropping.Store(true)
	dropped := make(chan struct{}, 64)
	var passed atomic.Int64
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t), withConfig(func(cfg *ClientConfig) {
		send := cfg.Send
		cfg.Send = func(p []byte, to netip.AddrPort) error {
			if m, err := decode(p); err == nil && m.typ == msgOfferAck {
				if dropping.Load() {
					dropped <- struct{}{}
					return nil
				}
				passed.Add(1)
			}
			return send(p, to)
		}
	}))
	a.register(t)
	b.register(t)

	equal(t, a.lookup(t, 2, 0x1057).Status, LookupOK, "A's lookup of B")
	await(t, dropped, "B's receipt to be dropped")
	// Every receipt so far was dropped, so there is nothing to report.
	equal(t, len(a.rec.gotDeliveries()), 0, "reports to A while B's receipts are lost")
	dropping.Store(false)

	a.client.Lookup(2, 0x1057)
	eventually(t, func() bool { return len(a.rec.gotDeliveries()) > 0 }, "A's report after looking B up again")
	for _, d := range a.rec.gotDeliveries() {
		equal(t, d, delivery{2, 0x1057}, "A's report")
	}
	if n := len(b.rec.gotOffers()); n < 2 || passed.Load() < 1 {
		t.Fatalf("B got %d offers and sent %d receipts after the loss, want at least 2 and 1", n, passed.Load())
	}
}

// Receipts in B's name that are not B's (replayed from elsewhere, altered,
// stripped of their MAC, under another key) and receipts from unregistered
// sources make no report to A.
func TestForgedOfferAckReportsNothing(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	var wire captured
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t), capturing(&wire))
	a.register(t)
	b.register(t)
	a.client.Lookup(2, 0x5e55)
	eventually(t, func() bool { return len(a.rec.gotDeliveries()) > 0 }, "A's report")

	var acks [][]byte
	for _, d := range wire.all() {
		if m, err := decode(d); err == nil && m.typ == msgOfferAck {
			acks = append(acks, d)
		}
	}
	if len(acks) == 0 {
		t.Fatal("B sent no receipt")
	}
	raw := rawSocket(t)
	send := func(conn interface {
		WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
	}, d []byte) {
		_, err := conn.WriteToUDPAddrPort(d, srv)
		noError(t, err, "write")
	}
	for _, d := range acks {
		send(raw, d) // from elsewhere
		for _, f := range flips(d) {
			send(raw, f)
		}
	}
	forged := message{typ: msgOfferAck, txID: 0x666, steamID: 2, appID: 480, requester: 1, sessionID: 0x666}
	stripped := forged.encode(nil)
	otherKey := signedBytes(forged, key(66))
	// From B's own address, which the server holds, but without B's key.
	send(b.conn, stripped)
	send(b.conn, otherKey)
	for _, f := range flips(acks[0]) {
		send(b.conn, f)
	}
	// From a source not registered yet, in its own name.
	send(raw, offerAckBytes(0x667, 77, 1, 0x667))
	// Once the barrier registration is answered, the server has handled
	// everything raw sent before it.
	equal(t, barrier(t, raw, srv, 77).typ, msgRegistered, "answer to the barrier")

	// Reports reach A in the order the server sent them, and B's socket
	// reaches the server in order: once this report is in, any report the
	// forgeries caused would be too.
	a.client.Lookup(2, 0xbeef)
	eventually(t, func() bool {
		for _, d := range a.rec.gotDeliveries() {
			if d.sessionID == 0xbeef {
				return true
			}
		}
		return false
	}, "A's second report")
	for _, d := range a.rec.gotDeliveries() {
		if d != (delivery{2, 0x5e55}) && d != (delivery{2, 0xbeef}) {
			t.Fatalf("A got a report B never made: %+v", d)
		}
	}
}

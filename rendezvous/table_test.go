package rendezvous

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

var (
	t0    = time.Unix(1_700_000_000, 0)
	addrA = netip.MustParseAddrPort("198.18.0.1:1001")
	addrB = netip.MustParseAddrPort("198.18.0.2:1002")
	addrC = netip.MustParseAddrPort("198.18.0.3:1003")
)

func newTestTable(ttl time.Duration, max int, allowed ...uint32) *table {
	return newTable(ttl, max, allowed, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func regBytes(txID, id uint64, app uint32, pub [32]byte, local ...netip.AddrPort) []byte {
	m := message{typ: msgRegister, txID: txID, steamID: id, appID: app, publicKey: pub, addrs: local}
	return m.encode(nil)
}

func lookupBytes(txID, from, target, session uint64) []byte {
	m := message{typ: msgLookup, txID: txID, steamID: from, target: target, sessionID: session}
	return m.encode(nil)
}

// decodeOut decodes every datagram the server wants to send.
func decodeOut(t *testing.T, out []datagram) []message {
	t.Helper()
	ms := make([]message, len(out))
	for i, d := range out {
		m, err := decode(d.b)
		noError(t, err, "server sent an undecodable datagram")
		ms[i] = m
	}
	return ms
}

// only decodes the single datagram a call should have produced.
func only(t *testing.T, out []datagram) (message, netip.AddrPort) {
	t.Helper()
	equal(t, len(out), 1, "datagrams sent")
	return decodeOut(t, out)[0], out[0].to
}

func silent(t *testing.T, out []datagram, format string, args ...any) {
	t.Helper()
	if len(out) != 0 {
		t.Fatalf("server answered %d datagrams: "+format, append([]any{len(out)}, args...)...)
	}
}

func notLarger(t *testing.T, out []datagram, req []byte) {
	t.Helper()
	for _, d := range out {
		if len(d.b) > len(req) {
			t.Fatalf("a %d-byte request caused a %d-byte datagram to %v", len(req), len(d.b), d.to)
		}
	}
}

// regTx numbers test registrations upwards, as a client does.
var regTx atomic.Uint64

func mustRegister(t *testing.T, tab *table, id uint64, app uint32, from netip.AddrPort, now time.Time, local ...netip.AddrPort) {
	t.Helper()
	tx := regTx.Add(1)
	m, to := only(t, tab.handle(regBytes(tx, id, app, key(byte(id)), local...), from, now, nil))
	equal(t, m, message{typ: msgRegistered, txID: tx, addrs: []netip.AddrPort{from}}, "answer to registration of %d", id)
	equal(t, to, from, "answer sent to")
}

func TestTableRegisterEchoesTxIDAndObserved(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	req := regBytes(0xabcdef, 7, 480, key(7), v4b)
	out := tab.handle(req, addrA, t0, nil)
	m, to := only(t, out)
	equal(t, m, message{typ: msgRegistered, txID: 0xabcdef, addrs: []netip.AddrPort{addrA}}, "answer")
	equal(t, to, addrA, "answer sent to")
	notLarger(t, out, req)

	// A duplicate changes nothing and is answered alike.
	m2, _ := only(t, tab.handle(req, addrA, t0, nil))
	equal(t, m2, m, "answer to the duplicate")
	equal(t, tab.len(), 1, "registrations")
}

func TestTableRefusals(t *testing.T) {
	tab := newTestTable(time.Minute, 2, 480)
	for _, tc := range []struct {
		name   string
		req    []byte
		reason RefuseReason
	}{
		{"other app", regBytes(1, 7, 730, key(7)), RefuseNoRightsToApp},
		{"zero SteamID", regBytes(2, 0, 480, key(7)), RefuseInvalid},
		{"zero key", regBytes(3, 7, 480, [32]byte{}), RefuseInvalid},
	} {
		out := tab.handle(tc.req, addrA, t0, nil)
		m, to := only(t, out)
		equal(t, m.typ, msgRefused, "%s: answer", tc.name)
		equal(t, m.reason, tc.reason, "%s: reason", tc.name)
		equal(t, to, addrA, "%s: answer sent to", tc.name)
		notLarger(t, out, tc.req)
	}
	equal(t, tab.len(), 0, "registrations")
}

func TestTableFullRefusesNewcomersButNotRefreshes(t *testing.T) {
	tab := newTestTable(time.Minute, 2)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	m, _ := only(t, tab.handle(regBytes(3, 3, 480, key(3)), addrC, t0, nil))
	equal(t, m.reason, RefuseServerFull, "reason")
	mustRegister(t, tab, 1, 480, addrA, t0.Add(time.Second))

	// Once someone has expired there is room again.
	mustRegister(t, tab, 3, 480, addrC, t0.Add(time.Minute))
	equal(t, tab.len(), 2, "registrations")
}

func TestTableLookup(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0, v4b, addrA, v4b) // repeats dropped
	mustRegister(t, tab, 2, 480, addrB, t0, v6a)
	mustRegister(t, tab, 3, 730, addrC, t0)

	req := lookupBytes(77, 1, 2, 0x5e55)
	out := tab.handle(req, addrA, t0, nil)
	notLarger(t, out, req)
	ms := decodeOut(t, out)
	equal(t, len(ms), 2, "datagrams for an OK lookup")
	equal(t, out[0].to, addrA, "answer sent to")
	equal(t, ms[0], message{
		typ: msgLookupResult, txID: 77, target: 2, status: LookupOK,
		publicKey: key(2), addrs: []netip.AddrPort{addrB, v6a},
	}, "answer")
	equal(t, out[1].to, addrB, "offer sent to")
	equal(t, ms[1], message{
		typ: msgOffer, txID: 77, steamID: 1, publicKey: key(1),
		sessionID: 0x5e55, addrs: []netip.AddrPort{addrA, v4b},
	}, "offer")

	m, to := only(t, tab.handle(lookupBytes(78, 1, 3, 1), addrA, t0, nil))
	equal(t, to, addrA, "answer sent to")
	equal(t, m, message{typ: msgLookupResult, txID: 78, target: 3, status: LookupOtherApp}, "answer")

	m, _ = only(t, tab.handle(lookupBytes(79, 1, 4, 1), addrA, t0, nil))
	equal(t, m, message{typ: msgLookupResult, txID: 79, target: 4, status: LookupNotOnline}, "answer")

	// A retransmitted lookup forwards the offer again.
	equal(t, len(tab.handle(req, addrA, t0, nil)), 2, "datagrams for a repeated lookup")
}

func TestTableMaxSizedAnswersStaySmall(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	big := maxAddrs(MaxLocalAddrs)
	v6 := func(i byte) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: 0x01, 14: 0xff, 15: i}), 9000)
	}
	reqA := regBytes(1, 1, 480, key(1), big...)
	notLarger(t, tab.handle(reqA, v6(1), t0, nil), reqA)
	reqB := regBytes(2, 2, 480, key(2), big...)
	notLarger(t, tab.handle(reqB, v6(2), t0, nil), reqB)
	req := lookupBytes(3, 1, 2, 3)
	out := tab.handle(req, v6(1), t0, nil)
	equal(t, len(out), 2, "datagrams for an OK lookup")
	notLarger(t, out, req)
	equal(t, len(decodeOut(t, out)[1].addrs), maxCandidates, "candidates in the offer")
}

func TestTableDropsSpoofedLookupsAndUnregisters(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)

	silent(t, tab.handle(lookupBytes(1, 1, 2, 9), addrC, t0, nil), "lookup in 1's name from elsewhere")
	silent(t, tab.handle(lookupBytes(1, 5, 2, 9), addrC, t0, nil), "lookup by an unregistered user")

	bye := (&message{typ: msgUnregister, txID: 3, steamID: 1}).encode(nil)
	silent(t, tab.handle(bye, addrC, t0, nil), "unregistration")
	equal(t, tab.len(), 2, "registrations after an unregistration from elsewhere")
	silent(t, tab.handle(bye, addrA, t0, nil), "unregistration")
	equal(t, tab.len(), 1, "registrations after the unregistration")
	m, _ := only(t, tab.handle(lookupBytes(1, 2, 1, 9), addrB, t0, nil))
	equal(t, m.status, LookupNotOnline, "status of the unregistered user")
}

func TestTableReregistrationMoves(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	mustRegister(t, tab, 1, 730, addrC, t0) // the game restarted elsewhere, as another app

	silent(t, tab.handle(lookupBytes(1, 1, 2, 9), addrA, t0, nil), "the old address no longer speaks for 1")
	m, _ := only(t, tab.handle(lookupBytes(1, 2, 1, 9), addrB, t0, nil))
	equal(t, m.status, LookupOtherApp, "status")

	mustRegister(t, tab, 1, 480, addrC, t0)
	out := tab.handle(lookupBytes(2, 2, 1, 9), addrB, t0, nil)
	equal(t, len(out), 2, "datagrams for an OK lookup")
	equal(t, out[1].to, addrC, "the offer goes to the newest address")
}

func TestTableExpiry(t *testing.T) {
	ttl := 30 * time.Second
	tab := newTestTable(ttl, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	mustRegister(t, tab, 3, 480, addrC, t0.Add(10*time.Second))
	// Refreshing 2 keeps it past the others.
	mustRegister(t, tab, 2, 480, addrB, t0.Add(20*time.Second))

	ms := decodeOut(t, tab.handle(lookupBytes(1, 2, 1, 9), addrB, t0.Add(ttl-time.Nanosecond), nil))
	equal(t, ms[0].status, LookupOK, "status just before expiry")

	// Lookups never see an expired registration, whether swept or not.
	m, _ := only(t, tab.handle(lookupBytes(2, 2, 1, 9), addrB, t0.Add(ttl), nil))
	equal(t, m.status, LookupNotOnline, "status at expiry")
	equal(t, tab.len(), 2, "registrations")

	// An expired requester is not answered.
	silent(t, tab.handle(lookupBytes(3, 3, 2, 9), addrC, t0.Add(10*time.Second+ttl), nil), "lookup by an expired user")

	equal(t, tab.expire(t0.Add(20*time.Second+ttl-time.Nanosecond)), 0, "expired before the TTL")
	equal(t, tab.len(), 1, "registrations")
	equal(t, tab.expire(t0.Add(20*time.Second+ttl)), 1, "expired at the TTL")
	equal(t, tab.len(), 0, "registrations")
}

func TestTableIgnoresGarbage(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	rng := rand.New(rand.NewPCG(1, 2))
	var junk [][]byte
	for range 2000 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 2 && rng.IntN(2) == 0 {
			b[0], b[1], b[2] = 0xD0, protocolVersion, byte(rng.IntN(9))
		}
		junk = append(junk, b)
	}
	// Messages only the server sends, and truncated ones, are junk too.
	for _, m := range sampleMessages() {
		b := m.encode(nil)
		switch m.typ {
		case msgRegistered, msgRefused, msgLookupResult, msgOffer:
			junk = append(junk, b)
		}
		junk = append(junk, b[:len(b)-1])
	}
	for _, b := range junk {
		silent(t, tab.handle(b, addrB, t0, nil), "% x", b)
	}
	equal(t, tab.len(), 1, "registrations")

	// Sources no legitimate peer can have are not answered at all.
	for _, from := range []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.9:0"),
		netip.MustParseAddrPort("0.0.0.0:1000"),
		netip.MustParseAddrPort("224.0.0.1:1000"),
		{},
	} {
		silent(t, tab.handle(regBytes(9, 9, 480, key(9)), from, t0, nil), "registration from %v", from)
	}
	equal(t, tab.len(), 1, "registrations")
}

func TestTableCanonicalisesSources(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(addrA.Addr().As16()), addrA.Port())
	mustRegister(t, tab, 2, 480, addrB, t0)
	m, to := only(t, tab.handle(regBytes(1, 1, 480, key(1)), mapped, t0, nil))
	equal(t, m.addrs, []netip.AddrPort{addrA}, "observed address")
	equal(t, to, addrA, "answer sent to")
	// The same socket seen once as mapped and once as plain IPv4 is one source.
	equal(t, len(tab.handle(lookupBytes(1, 1, 2, 9), addrA, t0, nil)), 2, "datagrams for an OK lookup")
}

// A registration captured on the wire and replayed from another address
// must not move the user there; a newer one from the same instance may.
func TestTableReplayedRegistrationDoesNotMove(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	captured := regBytes(1000, 1, 480, key(1))
	only(t, tab.handle(captured, addrA, t0, nil))
	mustRegister(t, tab, 2, 480, addrB, t0)
	silent(t, tab.handle(captured, addrC, t0, nil), "replay from elsewhere")
	ms := decodeOut(t, tab.handle(lookupBytes(5, 2, 1, 9), addrB, t0, nil))
	equal(t, ms[0].addrs[0], addrA, "1 is still where it registered")
	// A retransmission from the same address is answered again (idempotent).
	only(t, tab.handle(captured, addrA, t0, nil))
	// A newer registration of the same instance moves it (a NAT rebinding).
	only(t, tab.handle(regBytes(1001, 1, 480, key(1)), addrC, t0, nil))
	ms = decodeOut(t, tab.handle(lookupBytes(6, 2, 1, 9), addrB, t0, nil))
	equal(t, ms[0].addrs[0], addrC, "moved by a newer registration")
}

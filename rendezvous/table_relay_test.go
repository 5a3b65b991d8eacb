package rendezvous

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"testing"
	"time"
)

// The server MACs what it sends to a client whose registration is
// authenticated, under that client's key, and only that.
func TestTableMACsWhatItSendsToAuthenticatedClients(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	a := newKeyedClient(t, tab, 1)
	b := newKeyedClient(t, tab, 2)
	registerKeyed(t, tab, a, addrA, t0)
	registerKeyed(t, tab, b, addrB, t0)
	mustRegister(t, tab, 3, 480, addrC, t0) // without a key pair

	out := handle(tab, a.lookup(1, 2, 9), addrA, t0, nil)
	ms := decodeOut(t, out)
	equal(t, len(ms), 2, "datagrams for A's lookup of B")
	a.unseal(t, ms[0], out[0].b)
	b.unseal(t, ms[1], out[1].b)

	out = handle(tab, lookupBytes(2, 3, 1, 9), addrC, t0, nil)
	ms = decodeOut(t, out)
	equal(t, [2]bool{ms[0].hasMAC, ms[1].hasMAC}, [2]bool{false, true}, "MAC'd: the answer to C, the offer to A")
	a.unseal(t, ms[1], out[1].b)

	out = handle(tab, a.lookup(3, 3, 9), addrA, t0, nil)
	ms = decodeOut(t, out)
	equal(t, [2]bool{ms[0].hasMAC, ms[1].hasMAC}, [2]bool{true, false}, "MAC'd: the answer to A, the offer to C")
	a.unseal(t, ms[0], out[0].b)

	out = handle(tab, a.lookup(4, 99, 9), addrA, t0, nil)
	m, _ := only(t, out)
	equal(t, a.unseal(t, m, out[0].b).status, LookupNotOnline, "A's lookup of nobody")

	// A refusal of an authenticated registration is MAC'd too.
	strict := newTestTable(time.Minute, 10, 730)
	d := newKeyedClient(t, strict, 4)
	req := signedBytes(message{typ: msgRegister, txID: 5, steamID: 4, appID: 480, publicKey: d.pub}, d.key)
	out = handle(strict, req, addrA, t0, nil)
	m, _ = only(t, out)
	equal(t, d.unseal(t, m, out[0].b).reason, RefuseNoRightsToApp, "refusal")
	// One that fails authentication is challenged: it only learns the
	// server's key and a cookie.
	out = handle(strict, d.forged().register(6), addrA, t0, nil)
	m, _ = only(t, out)
	equal(t, [3]any{m.typ, m.hasMAC, m.publicKey}, [3]any{msgChallenge, false, strict.pub}, "answer to a registration that fails authentication")
}

func testIssuer(embedded netip.AddrPort, external ...netip.AddrPort) *relayIssuer {
	return newRelayIssuer(embedded, []byte("embedded secret"), external, []byte("fleet secret"), 10*time.Minute)
}

// An authenticated registration's answer carries credentials for the
// embedded relay and up to two external ones, per user, checked here with
// an independent computation of coturn's scheme.
func TestTableRelayCredentials(t *testing.T) {
	tab := newTestTable(time.Hour, 10)
	embedded := netip.MustParseAddrPort("198.18.0.10:3478")
	fleet := []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.11:3478"),
		netip.MustParseAddrPort("198.18.0.12:3478"),
		netip.MustParseAddrPort("198.18.0.13:3478"),
	}
	tab.relays = testIssuer(embedded, fleet...)

	// Nothing for an unauthenticated registration.
	req := regBytes(1, 3, 480, key(3))
	out := handle(tab, req, addrC, t0, nil)
	m, _ := only(t, out)
	equal(t, [2]any{m.relays, m.hasMAC}, [2]any{[]relayCred(nil), false}, "relays for an unauthenticated registration")

	for _, id := range []uint64{1, 2} {
		c := newKeyedClient(t, tab, id)
		from := netip.AddrPortFrom(addrA.Addr(), uint16(2000+id))
		registerKeyed(t, tab, c, from, t0)
		tx := regTx.Add(1)
		req := c.register(tx)
		out := handle(tab, req, from, t0, nil)
		notLarger(t, out, req)
		m, _ := only(t, out)
		m = c.unseal(t, m, out[0].b)
		if e := int64(m.expiry); e < t0.Add(10*time.Minute).Unix() || e > t0.Add(12*time.Minute+30*time.Second).Unix() {
			t.Fatalf("expiry %d is %ds from now, want 600 to 750", e, e-t0.Unix())
		}
		equal(t, len(m.relays), MaxRelays, "relays for %d", id)
		// The embedded relay first, then the fleet from a place that
		// depends on the user.
		wantAddrs := []netip.AddrPort{embedded, fleet[id%3], fleet[(id+1)%3]}
		for i, r := range m.relays {
			secret := "fleet secret"
			if i == 0 {
				secret = "embedded secret"
			}
			_, password := turnCredentialsFor(secret, int64(m.expiry), id, 480)
			equal(t, r.addr, wantAddrs[i], "relay %d of %d", i, id)
			equal(t, base64.StdEncoding.EncodeToString(r.password[:]), password, "password for relay %d of %d", i, id)
		}

		// A second later the credentials are the same: the client sees
		// them change only every few minutes.
		out = handle(tab, c.register(regTx.Add(1)), from, t0.Add(time.Second), nil)
		again, _ := only(t, out)
		equal(t, [2]any{again.expiry, again.relays}, [2]any{m.expiry, m.relays}, "credentials a second later")
		out = handle(tab, c.register(regTx.Add(1)), from, t0.Add(3*time.Minute), nil)
		later, _ := only(t, out)
		if later.expiry <= m.expiry {
			t.Fatalf("expiry %d three minutes later, not after %d", later.expiry, m.expiry)
		}
	}
}

func TestRelayIssuerLists(t *testing.T) {
	e := netip.MustParseAddrPort("198.18.0.10:3478")
	x := netip.MustParseAddrPort("198.18.0.11:3478")
	for _, tc := range []struct {
		name string
		ri   *relayIssuer
		want []netip.AddrPort
	}{
		{"embedded only", testIssuer(e), []netip.AddrPort{e}},
		{"external only", testIssuer(netip.AddrPort{}, x), []netip.AddrPort{x}},
		{"neither", testIssuer(netip.AddrPort{}), nil},
	} {
		expiry, creds := tc.ri.issue(7, 480, t0)
		var got []netip.AddrPort
		for _, c := range creds {
			got = append(got, c.addr)
		}
		equal(t, got, tc.want, "%s: relays", tc.name)
		if (expiry == 0) != (len(tc.want) == 0) {
			t.Errorf("%s: expiry %d with %d relays", tc.name, expiry, len(tc.want))
		}
	}
}

func TestTURNUsername(t *testing.T) {
	equal(t, turnUsername(1_700_000_600, 76561197960265729, 480), "1700000600:76561197960265729:480", "username")
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"1700000600:76561197960265729:480", true},
		{"1700000600:76561197960265729:0", true},
		{"1700000600:76561197960265729", false},
		{"1700000600:76561197960265729:4294967296", false},
		{"1700000600:76561197960265729:-1", false},
		{"1700000600", false},
		{"1700000600:", false},
		{":5", false},
		{"-1:5", false},
		{"0:5", false},
		{"1700000600:0", false},
		{"1700000600:x", false},
		{"1700000600:5:6:7", false},
	} {
		_, _, ok := parseTURNUsername(tc.in)
		equal(t, ok, tc.ok, "parse %q", tc.in)
	}
}

// Relayed addresses go from a REGISTER to the offers and lookup results
// that speak of its sender.
func TestTableRelayedAddressesTravel(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	r1 := netip.MustParseAddrPort("198.18.0.10:50000")
	r2 := netip.MustParseAddrPort("198.18.0.11:50002")
	r3 := netip.MustParseAddrPort("198.18.0.10:50004")
	a := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, a, addrA, t0)
	reg := signedBytes(message{typ: msgRegister, txID: regTx.Add(1), steamID: 1, appID: 480, publicKey: a.pub, addrs: []netip.AddrPort{v4b}, relayed: []netip.AddrPort{r1, r2}}, a.key)
	only(t, handle(tab, reg, addrA, t0, nil))
	only(t, handle(tab, (&message{typ: msgRegister, txID: 1, steamID: 2, appID: 480, publicKey: key(2), relayed: []netip.AddrPort{r3, r3}}).encode(nil), addrB, t0, nil))

	ms := decodeOut(t, handle(tab, a.lookup(1, 2, 9), addrA, t0, nil))
	equal(t, [2]any{ms[0].addrs, ms[0].relayed}, [2]any{[]netip.AddrPort{addrB}, []netip.AddrPort{r3}}, "B's candidates and relayed addresses, as A finds them")
	equal(t, [2]any{ms[1].addrs, ms[1].relayed}, [2]any{[]netip.AddrPort{addrA, v4b}, []netip.AddrPort{r1, r2}}, "A's, in the offer to B")

	// A registration without them withdraws them.
	only(t, handle(tab, a.register(regTx.Add(1)), addrA, t0, nil))
	ms = decodeOut(t, handle(tab, lookupBytes(2, 2, 1, 9), addrB, t0, nil))
	equal(t, ms[0].relayed, []netip.AddrPort(nil), "A's relayed addresses after withdrawing them")
}

func TestTableMaxSizedAnswersWithRelaysStaySmall(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	v6 := maxAddrs(4)
	tab.relays = testIssuer(v6[0], v6[1:]...)
	a := newKeyedClient(t, tab, 1)
	b := newKeyedClient(t, tab, 2)
	from := func(i byte) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: 0x01, 14: 0xff, 15: i}), 9000)
	}
	registerKeyed(t, tab, a, from(1), t0)
	registerKeyed(t, tab, b, from(2), t0)
	for _, c := range []*keyedClient{a, b} {
		req := signedBytes(message{typ: msgRegister, txID: regTx.Add(1), steamID: c.id, appID: 480, publicKey: c.pub, addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), cert: bytes.Repeat([]byte{byte(c.id)}, certLen)}, c.key)
		out := handle(tab, req, from(byte(c.id)), t0, nil)
		notLarger(t, out, req)
		m, _ := only(t, out)
		equal(t, len(m.relays), MaxRelays, "relays")
		equal(t, len(out[0].b), maxRegisteredLen, "the largest REGISTERED")
	}
	req := a.lookup(3, 2, 3)
	out := handle(tab, req, from(1), t0, nil)
	equal(t, len(out), 2, "datagrams for an OK lookup")
	notLarger(t, out, req)
	equal(t, [2]int{len(out[0].b), len(out[1].b)}, [2]int{maxResultLen, maxOfferLen}, "the largest answer and offer")
}

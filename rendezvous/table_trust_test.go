package rendezvous

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// With HidePresence, a lookup of a user not online or in another game gets
// no answer at all; a lookup in the same game is answered as always.
func TestTableHidePresence(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	tab.hidePresence = true
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	mustRegister(t, tab, 3, 730, addrC, t0)

	silent(t, handle(tab, lookupBytes(1, 1, 3, 1), addrA, t0, nil), "lookup of a user in another game")
	silent(t, handle(tab, lookupBytes(2, 1, 4, 1), addrA, t0, nil), "lookup of a user not online")
	silent(t, handle(tab, lookupBytes(3, 3, 1, 1), addrC, t0, nil), "lookup from another game")
	// Once gone, a user is as unknown as one never seen.
	silent(t, handle(tab, lookupBytes(4, 1, 2, 1), addrA, t0.Add(time.Hour), nil), "lookup of an expired user")
	mustRegister(t, tab, 1, 480, addrA, t0.Add(time.Hour))
	mustRegister(t, tab, 2, 480, addrB, t0.Add(time.Hour))
	ms := decodeOut(t, handle(tab, lookupBytes(5, 1, 2, 1), addrA, t0.Add(time.Hour), nil))
	equal(t, [3]any{len(ms), ms[0].status, ms[1].typ}, [3]any{2, LookupOK, msgOffer}, "lookup in the same game: answer and offer")
}

// trustTable is a table with an embedded relay's policy for contacts.
func trustTable() *table {
	tab := newTestTable(time.Minute, 2*maxContacts)
	relayIP := netip.MustParseAddr("198.18.0.254")
	tab.relayable = func(ip netip.Addr) bool { return relayable(relayIP, ip) }
	tab.relays = newRelayIssuer(netip.AddrPortFrom(relayIP, 3478), []byte("secret"), nil, nil, time.Hour)
	return tab
}

func regWith(m message) []byte {
	m.typ = msgRegister
	return m.encode(nil)
}

func contactsOf(tab *table, id uint64) []netip.Addr {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	if r := tab.regs[regKey{steamID: id}]; r != nil {
		return append([]netip.Addr(nil), r.contacts...)
	}
	return nil
}

func ips(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// A lookup that finds its target makes each of the two the other's
// contact: of the addresses each is told of the other, the ones nobody
// could make up (where the server saw it, relayed addresses on a relay the
// server hands out) that the relay would relay to at all.
func TestTableContacts(t *testing.T) {
	tab := trustTable()
	private := netip.MustParseAddrPort("192.168.1.5:7000")
	relayedA := netip.MustParseAddrPort("198.18.0.254:50000")
	only(t, handle(tab, regWith(message{txID: 1, steamID: 1, appID: 480, publicKey: key(1), addrs: []netip.AddrPort{v4b, private}, relayed: []netip.AddrPort{relayedA}}), addrA, t0, nil))
	mustRegister(t, tab, 2, 480, addrB, t0, v6a)
	mustRegister(t, tab, 3, 730, addrC, t0)
	equal(t, contactsOf(tab, 1), []netip.Addr(nil), "A's contacts before any lookup")

	// Lookups that find nobody make nobody a contact.
	handle(tab, lookupBytes(1, 1, 3, 1), addrA, t0, nil)
	handle(tab, lookupBytes(2, 1, 4, 1), addrA, t0, nil)
	equal(t, [2]any{contactsOf(tab, 1), contactsOf(tab, 3)}, [2]any{[]netip.Addr(nil), []netip.Addr(nil)}, "contacts after lookups across games")

	handle(tab, lookupBytes(3, 1, 2, 1), addrA, t0, nil)
	equal(t, contactsOf(tab, 1), ips("198.18.0.2"), "A's contacts: B's observed IP, not the local one B declared")
	// B was offered by A: A's observed and relayed IPs; not its local
	// ones, which are A's own word.
	equal(t, contactsOf(tab, 2), ips("198.18.0.1", "198.18.0.254"), "B's contacts")

	// The relay's own say: only from the address B registered from, only
	// to B's contacts.
	equal(t, tab.permits(2, 480, addrB, netip.MustParseAddr("198.18.0.1"), t0), true, "B to A")
	equal(t, tab.permits(2, 480, addrB, netip.MustParseAddr("198.18.0.254"), t0), true, "B to A's relayed address")
	equal(t, tab.permits(2, 480, addrB, netip.MustParseAddr("198.18.0.3"), t0), false, "B to a stranger")
	equal(t, tab.permits(2, 480, addrC, netip.MustParseAddr("198.18.0.1"), t0), false, "B's credentials from elsewhere")
	equal(t, tab.permits(5, 480, addrB, netip.MustParseAddr("198.18.0.1"), t0), false, "someone not registered")
	equal(t, tab.permits(2, 480, addrB, netip.MustParseAddr("198.18.0.1"), t0.Add(time.Hour)), false, "B expired")
}

// Contacts are bounded, the most recent kept; meeting a contact again
// makes it recent; another instance of the user starts with none.
func TestTableContactsBounded(t *testing.T) {
	tab := trustTable()
	mustRegister(t, tab, 1, 480, addrA, t0)
	peer := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 4000)
	}
	for i := range maxContacts + 10 {
		id := uint64(100 + i)
		only(t, handle(tab, regBytes(1, id, 480, key(byte(id))), peer(i), t0, nil))
		handle(tab, lookupBytes(uint64(i), 1, id, 1), addrA, t0, nil)
		if i%10 == 5 {
			// The first stays by being met again now and then.
			handle(tab, lookupBytes(uint64(i), 1, 100, 1), addrA, t0, nil)
		}
	}
	got := contactsOf(tab, 1)
	equal(t, len(got), maxContacts, "contacts")
	equal(t, got[len(got)-1], peer(maxContacts+9).Addr(), "the most recent contact")
	if !slices.Contains(got, peer(0).Addr()) {
		t.Fatalf("contacts %v lost the one met again", got)
	}
	if slices.Contains(got, peer(1).Addr()) {
		t.Fatalf("contacts %v kept one of the oldest", got)
	}
	// Another key: another instance, which has met nobody.
	only(t, handle(tab, regBytes(regTx.Add(1), 1, 480, key(99)), addrA, t0, nil))
	equal(t, len(contactsOf(tab, 1)), 0, "contacts of a new instance")
}

// Without an embedded relay, no contacts are kept.
func TestTableNoRelayNoContacts(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	handle(tab, lookupBytes(1, 1, 2, 1), addrA, t0, nil)
	equal(t, [2]any{contactsOf(tab, 1), contactsOf(tab, 2)}, [2]any{[]netip.Addr(nil), []netip.Addr(nil)}, "contacts")
}

// A user that hides its address: nobody is told its observed or local
// addresses, in anything the server sends, and only its relayed addresses
// become contacts.
func TestTableHiddenAddress(t *testing.T) {
	tab := trustTable()
	h := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, h, addrA, t0)
	relayedH := netip.MustParseAddrPort("198.18.0.254:50000")
	local := netip.MustParseAddrPort("198.18.5.5:7000")
	hreg := signedBytes(message{typ: msgRegister, txID: regTx.Add(1), steamID: 1, appID: 480, publicKey: h.pub, addrs: []netip.AddrPort{local}, relayed: []netip.AddrPort{relayedH}, hideAddress: true}, h.key)
	out := handle(tab, hreg, addrA, t0, nil)
	m := h.unseal(t, decodeOut(t, out)[0], out[0].b)
	equal(t, [2]any{m.typ, m.addrs}, [2]any{msgRegistered, []netip.AddrPort{addrA}}, "H learns its own observed address")
	b := newKeyedClient(t, tab, 2)
	registerKeyed(t, tab, b, addrB, t0)

	var toB []datagram
	// B looks H up, H looks B up (an offer to B), H acknowledges B's offer
	// (a DELIVERED to B).
	lookup := handle(tab, b.lookup(1, 1, 0xb0), addrB, t0, nil)
	toB = append(toB, lookup[0])
	res := b.unseal(t, decodeOut(t, lookup)[0], lookup[0].b)
	equal(t, res, message{typ: msgLookupResult, txID: 1, target: 1, status: LookupOK, publicKey: h.pub, relayed: []netip.AddrPort{relayedH}}, "B's lookup of H")
	offer := handle(tab, h.lookup(2, 2, 0xa0), addrA, t0, nil)
	equal(t, offer[1].to, addrB, "the offer goes to B")
	toB = append(toB, offer[1])
	o := b.unseal(t, decodeOut(t, offer)[1], offer[1].b)
	equal(t, o, message{typ: msgOffer, txID: 2, steamID: 1, publicKey: h.pub, sessionID: 0xa0, relayed: []netip.AddrPort{relayedH}}, "H's offer to B")
	delivered := handle(tab, h.offerAck(3, 2, 0xb0), addrA, t0, nil)
	equal(t, delivered[0].to, addrB, "the report goes to B")
	toB = append(toB, delivered...)
	for _, d := range toB {
		for _, a := range []netip.AddrPort{addrA, local} {
			if enc := appendAddr(nil, a); bytes.Contains(d.b, enc) || bytes.Contains(d.b, a.Addr().AsSlice()) {
				t.Fatalf("a datagram to B carries H's address %v: % x", a, d.b)
			}
		}
	}
	equal(t, contactsOf(tab, 2), ips("198.18.0.254"), "B's contacts: H's relayed address alone")
	equal(t, contactsOf(tab, 1), ips("198.18.0.2"), "H's contacts: B's observed address")

	// Without the option again, H is visible again.
	only(t, handle(tab, h.register(regTx.Add(1)), addrA, t0, nil))
	lookup = handle(tab, b.lookup(4, 1, 0xb1), addrB, t0, nil)
	res = b.unseal(t, decodeOut(t, lookup)[0], lookup[0].b)
	equal(t, res.addrs, []netip.AddrPort{addrA}, "H's candidates once it no longer hides")
}

// Addresses a user declares cannot widen anyone's contacts: a local
// address, or a "relayed" one that is on no relay the server hands out,
// names whoever the user likes, so neither becomes a contact.
func TestTableDeclaredAddressesAreNoContacts(t *testing.T) {
	tab := trustTable()
	victim := netip.MustParseAddrPort("198.18.9.9:53")
	fakeRelayed := netip.MustParseAddrPort("198.18.9.8:40000")
	only(t, handle(tab, regWith(message{txID: 1, steamID: 1, appID: 480, publicKey: key(1), addrs: []netip.AddrPort{victim}, relayed: []netip.AddrPort{fakeRelayed}}), addrA, t0, nil))
	mustRegister(t, tab, 2, 480, addrB, t0)
	handle(tab, lookupBytes(1, 2, 1, 1), addrB, t0, nil)
	equal(t, contactsOf(tab, 2), ips("198.18.0.1"), "B's contacts: A's observed IP alone")
	for _, ip := range []string{"198.18.9.9", "198.18.9.8"} {
		equal(t, tab.permits(2, 480, addrB, netip.MustParseAddr(ip), t0), false, "B's relay to "+ip+", which A declared")
	}
}

package rendezvous

import (
	"bytes"
	"crypto/ecdh"
	crand "crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
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
	priv, err := ecdh.X25519().GenerateKey(crand.Reader)
	if err != nil {
		panic(err)
	}
	return newTable(priv, ttl, max, allowed, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func regBytes(txID, id uint64, app uint32, pub [32]byte, local ...netip.AddrPort) []byte {
	m := message{typ: msgRegister, txID: txID, steamID: id, appID: app, publicKey: pub, addrs: local}
	return m.encode(nil)
}

func lookupBytes(txID, from, target, session uint64) []byte {
	m := message{typ: msgLookup, txID: txID, steamID: from, appID: 480, target: target, sessionID: session}
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
	m, to := only(t, handle(tab, regBytes(tx, id, app, key(byte(id)), local...), from, now, nil))
	equal(t, m, message{typ: msgRegistered, txID: tx, publicKey: tab.pub, addrs: []netip.AddrPort{from}}, "answer to registration of %d", id)
	equal(t, to, from, "answer sent to")
}

func TestTableRegisterEchoesTxIDAndObserved(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	req := regBytes(0xabcdef, 7, 480, key(7), v4b)
	out := handle(tab, req, addrA, t0, nil)
	m, to := only(t, out)
	equal(t, m, message{typ: msgRegistered, txID: 0xabcdef, publicKey: tab.pub, addrs: []netip.AddrPort{addrA}}, "answer")
	equal(t, to, addrA, "answer sent to")
	notLarger(t, out, req)

	// A duplicate changes nothing and is answered alike.
	m2, _ := only(t, handle(tab, req, addrA, t0, nil))
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
		out := handle(tab, tc.req, addrA, t0, nil)
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
	m, _ := only(t, handle(tab, regBytes(3, 3, 480, key(3)), addrC, t0, nil))
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
	out := handle(tab, req, addrA, t0, nil)
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

	m, to := only(t, handle(tab, lookupBytes(78, 1, 3, 1), addrA, t0, nil))
	equal(t, to, addrA, "answer sent to")
	equal(t, m, message{typ: msgLookupResult, txID: 78, target: 3, status: LookupOtherApp}, "answer")

	m, _ = only(t, handle(tab, lookupBytes(79, 1, 4, 1), addrA, t0, nil))
	equal(t, m, message{typ: msgLookupResult, txID: 79, target: 4, status: LookupNotOnline}, "answer")

	// A retransmitted lookup forwards the offer again.
	equal(t, len(handle(tab, req, addrA, t0, nil)), 2, "datagrams for a repeated lookup")
}

func TestTableMaxSizedAnswersStaySmall(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	big := maxAddrs(MaxLocalAddrs)
	v6 := func(i byte) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: 0x01, 14: 0xff, 15: i}), 9000)
	}
	reqA := regBytes(1, 1, 480, key(1), big...)
	notLarger(t, handle(tab, reqA, v6(1), t0, nil), reqA)
	reqB := regBytes(2, 2, 480, key(2), big...)
	notLarger(t, handle(tab, reqB, v6(2), t0, nil), reqB)
	req := lookupBytes(3, 1, 2, 3)
	out := handle(tab, req, v6(1), t0, nil)
	equal(t, len(out), 2, "datagrams for an OK lookup")
	notLarger(t, out, req)
	equal(t, len(decodeOut(t, out)[1].addrs), maxCandidates, "candidates in the offer")
}

func TestTableDropsSpoofedLookupsAndUnregisters(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)

	silent(t, handle(tab, lookupBytes(1, 1, 2, 9), addrC, t0, nil), "lookup in 1's name from elsewhere")
	silent(t, handle(tab, lookupBytes(1, 5, 2, 9), addrC, t0, nil), "lookup by an unregistered user")

	bye := (&message{typ: msgUnregister, txID: 3, steamID: 1, appID: 480}).encode(nil)
	silent(t, handle(tab, bye, addrC, t0, nil), "unregistration")
	equal(t, tab.len(), 2, "registrations after an unregistration from elsewhere")
	silent(t, handle(tab, bye, addrA, t0, nil), "unregistration")
	equal(t, tab.len(), 1, "registrations after the unregistration")
	m, _ := only(t, handle(tab, lookupBytes(1, 2, 1, 9), addrB, t0, nil))
	equal(t, m.status, LookupNotOnline, "status of the unregistered user")
}

func TestTableReregistrationMoves(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	mustRegister(t, tab, 1, 730, addrC, t0) // the game restarted elsewhere, as another app

	silent(t, handle(tab, lookupBytes(1, 1, 2, 9), addrA, t0, nil), "the old address no longer speaks for 1")
	m, _ := only(t, handle(tab, lookupBytes(1, 2, 1, 9), addrB, t0, nil))
	equal(t, m.status, LookupOtherApp, "status")

	mustRegister(t, tab, 1, 480, addrC, t0)
	out := handle(tab, lookupBytes(2, 2, 1, 9), addrB, t0, nil)
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

	ms := decodeOut(t, handle(tab, lookupBytes(1, 2, 1, 9), addrB, t0.Add(ttl-time.Nanosecond), nil))
	equal(t, ms[0].status, LookupOK, "status just before expiry")

	// Lookups never see an expired registration, whether swept or not.
	m, _ := only(t, handle(tab, lookupBytes(2, 2, 1, 9), addrB, t0.Add(ttl), nil))
	equal(t, m.status, LookupNotOnline, "status at expiry")
	equal(t, tab.len(), 2, "registrations")

	// An expired requester is not answered.
	silent(t, handle(tab, lookupBytes(3, 3, 2, 9), addrC, t0.Add(10*time.Second+ttl), nil), "lookup by an expired user")

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
			b[0], b[1], b[2] = 0xD0, protocolVersion, byte(rng.IntN(11))
		}
		junk = append(junk, b)
	}
	// Messages only the server sends, and truncated ones, are junk too.
	for _, m := range sampleMessages() {
		b := m.encode(nil)
		switch m.typ {
		case msgRegistered, msgRefused, msgLookupResult, msgOffer, msgDelivered:
			junk = append(junk, b)
		}
		junk = append(junk, b[:len(b)-1])
	}
	for _, b := range junk {
		silent(t, handle(tab, b, addrB, t0, nil), "% x", b)
	}
	equal(t, tab.len(), 1, "registrations")

	// Sources no legitimate peer can have are not answered at all.
	for _, from := range []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.9:0"),
		netip.MustParseAddrPort("0.0.0.0:1000"),
		netip.MustParseAddrPort("224.0.0.1:1000"),
		{},
	} {
		silent(t, handle(tab, regBytes(9, 9, 480, key(9)), from, t0, nil), "registration from %v", from)
	}
	equal(t, tab.len(), 1, "registrations")
}

func TestTableCanonicalisesSources(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(addrA.Addr().As16()), addrA.Port())
	mustRegister(t, tab, 2, 480, addrB, t0)
	m, to := only(t, handle(tab, regBytes(1, 1, 480, key(1)), mapped, t0, nil))
	equal(t, m.addrs, []netip.AddrPort{addrA}, "observed address")
	equal(t, to, addrA, "answer sent to")
	// The same socket seen once as mapped and once as plain IPv4 is one source.
	equal(t, len(handle(tab, lookupBytes(1, 1, 2, 9), addrA, t0, nil)), 2, "datagrams for an OK lookup")
}

// A registration captured on the wire and replayed from another address
// must not move the user there; a newer one from the same instance may.
func TestTableReplayedRegistrationDoesNotMove(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	captured := regBytes(1000, 1, 480, key(1))
	only(t, handle(tab, captured, addrA, t0, nil))
	mustRegister(t, tab, 2, 480, addrB, t0)
	silent(t, handle(tab, captured, addrC, t0, nil), "replay from elsewhere")
	ms := decodeOut(t, handle(tab, lookupBytes(5, 2, 1, 9), addrB, t0, nil))
	equal(t, ms[0].addrs[0], addrA, "1 is still where it registered")
	// A retransmission from the same address is answered again (idempotent).
	only(t, handle(tab, captured, addrA, t0, nil))
	// A newer registration of the same instance moves it (a NAT rebinding).
	only(t, handle(tab, regBytes(1001, 1, 480, key(1)), addrC, t0, nil))
	ms = decodeOut(t, handle(tab, lookupBytes(6, 2, 1, 9), addrB, t0, nil))
	equal(t, ms[0].addrs[0], addrC, "moved by a newer registration")
}

// keyedClient plays a client with a key pair against a table: it knows the
// table's key, so it can MAC what it sends.
type keyedClient struct {
	id   uint64
	priv *ecdh.PrivateKey
	pub  [32]byte
	key  [32]byte // shared with the table
}

func newKeyedClient(t *testing.T, tab *table, id uint64) *keyedClient {
	t.Helper()
	priv, err := ecdh.X25519().GenerateKey(crand.Reader)
	noError(t, err, "client key")
	c := &keyedClient{id: id, priv: priv, pub: [32]byte(priv.PublicKey().Bytes())}
	c.learn(t, tab)
	return c
}

// learn derives the key shared with tab, as a client does from REGISTERED.
func (c *keyedClient) learn(t *testing.T, tab *table) {
	t.Helper()
	var err error
	c.key, err = deriveMACKey(c.priv, tab.pub, c.id)
	noError(t, err, "derive")
}

// unseal checks that m, received as b, is MAC'd under the key c shares
// with the table, and returns it without the MAC.
func (c *keyedClient) unseal(t *testing.T, m message, b []byte) message {
	t.Helper()
	if !m.hasMAC || !newMacer().verify(b, &c.key) {
		t.Fatalf("%v to %d not MAC'd under its key", m.typ, c.id)
	}
	m.hasMAC, m.mac = false, [macLen]byte{}
	return m
}

// forged is c with a key that is not the one it shares with the table.
func (c *keyedClient) forged() *keyedClient {
	f := *c
	f.key = key(99)
	return &f
}

// signedBytes is m MAC'd under key, as a client sends it: its token, if
// any, encrypted.
func signedBytes(m message, key [32]byte) []byte {
	if m.token != nil {
		m.token = bytes.Clone(m.token)
		cryptToken(m.token, &key, m.txID)
	}
	m.hasMAC = true
	b := m.encode(nil)
	newMacer().sign(b, &key)
	return b
}

// plainRegister is a registration before the client knows the server's key.
func (c *keyedClient) plainRegister(txID uint64, local ...netip.AddrPort) []byte {
	return regBytes(txID, c.id, 480, c.pub, local...)
}

func (c *keyedClient) register(txID uint64, local ...netip.AddrPort) []byte {
	return signedBytes(message{typ: msgRegister, txID: txID, steamID: c.id, appID: 480, publicKey: c.pub, addrs: local}, c.key)
}

func (c *keyedClient) lookup(txID, target, session uint64) []byte {
	return signedBytes(message{typ: msgLookup, txID: txID, steamID: c.id, appID: 480, target: target, sessionID: session}, c.key)
}

func (c *keyedClient) unregister(txID uint64) []byte {
	return signedBytes(message{typ: msgUnregister, txID: txID, steamID: c.id, appID: 480}, c.key)
}

// registerKeyed registers c the way a client with a key pair does: once
// unauthenticated, to learn the table's key, then authenticated. It returns
// both registrations, as someone watching would have captured them.
func registerKeyed(t *testing.T, tab *table, c *keyedClient, from netip.AddrPort, now time.Time, local ...netip.AddrPort) (plain, signed []byte) {
	t.Helper()
	tx := regTx.Add(2)
	plain = c.plainRegister(tx-1, local...)
	m, to := only(t, handle(tab, plain, from, now, nil))
	equal(t, [2]any{m, to}, [2]any{message{typ: msgRegistered, txID: tx - 1, publicKey: tab.pub, addrs: []netip.AddrPort{from}}, from}, "answer to %d's first registration", c.id)
	signed = c.register(tx, local...)
	out := handle(tab, signed, from, now, nil)
	m, to = only(t, out)
	m = c.unseal(t, m, out[0].b)
	if (len(m.relays) > 0) != (tab.relays != nil) {
		t.Fatalf("%d relays in the answer to %d's authenticated registration", len(m.relays), c.id)
	}
	m.expiry, m.relays = 0, nil // see table_relay_test.go
	equal(t, [2]any{m, to}, [2]any{message{typ: msgRegistered, txID: tx, publicKey: tab.pub, addrs: []netip.AddrPort{from}}, from}, "answer to %d's authenticated registration", c.id)
	equal(t, snapshot(tab, c.id).authed, true, "%d authenticated", c.id)
	return plain, signed
}

// regState is what the table holds about a user, comparable.
type regState struct {
	present   bool
	appID     uint32
	publicKey [32]byte
	observed  netip.AddrPort
	local     string
	expires   time.Time
	lastTx    uint64
	authed    bool
}

// snapshot is what tab holds about id, registered under AppID 480.
func snapshot(tab *table, id uint64) regState {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	r := tab.regs[tab.key(id, 480)]
	if r == nil {
		return regState{}
	}
	return regState{true, r.appID, r.publicKey, r.observed, fmt.Sprint(r.local), r.expires, r.lastTx, r.authed}
}

// flips returns b with each single bit flipped in turn.
func flips(b []byte) [][]byte {
	out := make([][]byte, 0, 8*len(b))
	for i := range 8 * len(b) {
		f := bytes.Clone(b)
		f[i/8] ^= 1 << (i % 8)
		out = append(out, f)
	}
	return out
}

// onlyRegistered checks that out is at most a REGISTERED, REFUSED or
// CHALLENGE to from,
// no larger than req: an answer to the sender that commits nothing.
func onlyRegistered(t *testing.T, tab *table, out []datagram, req []byte, from netip.AddrPort) {
	t.Helper()
	notLarger(t, out, req)
	if len(out) > 1 {
		t.Fatalf("%d datagrams in answer to % x", len(out), req)
	}
	for i, m := range decodeOut(t, out) {
		if out[i].to != from || (m.typ != msgRegistered && m.typ != msgRefused && m.typ != msgChallenge) {
			t.Fatalf("a %v to %v in answer to % x from %v", m.typ, out[i].to, req, from)
		}
		if m.typ != msgRefused && m.publicKey != tab.pub {
			t.Fatalf("REGISTERED carries % x, not the table's key", m.publicKey)
		}
	}
}

func TestTableAuthenticatedRegistration(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	a := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, a, addrA, t0, v4b)
	mustRegister(t, tab, 2, 480, addrB, t0) // a client without a key pair

	out := handle(tab, a.lookup(10, 2, 0x5e55), addrA, t0, nil)
	ms := decodeOut(t, out)
	equal(t, len(ms), 2, "datagrams for an authenticated lookup")
	equal(t, [3]any{ms[1].typ, ms[1].sessionID, out[1].to}, [3]any{msgOffer, uint64(0x5e55), addrB}, "offer")
	ms = decodeOut(t, handle(tab, lookupBytes(11, 2, 1, 9), addrB, t0, nil))
	equal(t, [2]any{ms[0].publicKey, ms[0].addrs}, [2]any{a.pub, []netip.AddrPort{addrA, v4b}}, "A as B finds it")

	// Once authenticated, nothing unauthenticated speaks for A.
	silent(t, handle(tab, lookupBytes(12, 1, 2, 9), addrA, t0, nil), "unauthenticated lookup")
	silent(t, handle(tab, (&message{typ: msgUnregister, txID: 13, steamID: 1, appID: 480}).encode(nil), addrA, t0, nil), "unauthenticated unregistration")
	forger := a.forged()
	silent(t, handle(tab, forger.lookup(14, 2, 9), addrA, t0, nil), "lookup under another key")
	silent(t, handle(tab, forger.unregister(15), addrA, t0, nil), "unregistration under another key")
	silent(t, handle(tab, a.unregister(16), addrC, t0, nil), "authenticated unregistration from elsewhere")
	equal(t, tab.len(), 2, "registrations")

	// A refresh, and a move to another address (a NAT rebinding).
	tx := regTx.Add(1)
	m, to := only(t, handle(tab, a.register(tx), addrC, t0, nil))
	equal(t, [2]any{m.typ, to}, [2]any{msgRegistered, addrC}, "answer to the move")
	equal(t, snapshot(tab, 1).observed, addrC, "A's address after the move")

	silent(t, handle(tab, a.unregister(17), addrC, t0, nil), "authenticated unregistration")
	equal(t, tab.len(), 1, "registrations after A's unregistration")
}

// A REGISTER captured on the wire, replayed as it is or with any one bit
// flipped, moves no one and changes nothing about anyone registered.
func TestTableCapturedRegistrationChangesNothing(t *testing.T) {
	tab := newTestTable(time.Minute, 1000)
	a := newKeyedClient(t, tab, 1)
	plain, signed := registerKeyed(t, tab, a, addrA, t0, v4b)
	mustRegister(t, tab, 2, 480, addrB, t0)
	beforeA, beforeB := snapshot(tab, 1), snapshot(tab, 2)

	check := func(what string, b []byte, from netip.AddrPort) {
		t.Helper()
		// As captured: a replayer cannot add a cookie under the MAC.
		onlyRegistered(t, tab, tab.handle(b, from, t0.Add(time.Second), nil), b, from)
		equal(t, snapshot(tab, 1), beforeA, "A after %s from %v", what, from)
		equal(t, snapshot(tab, 2), beforeB, "B after %s from %v", what, from)
	}
	for _, from := range []netip.AddrPort{addrC, addrB} {
		check("the first registration replayed", plain, from)
		check("the authenticated registration replayed", signed, from)
		for i, f := range flips(signed) {
			check(fmt.Sprintf("the authenticated registration with bit %d flipped", i), f, from)
		}
		for i, f := range flips(plain) {
			if i/8 >= headerLen && i/8 < headerLen+8 {
				// Another SteamID: the registration of someone else, which
				// anyone may make; A and B are checked all the same.
				handle(tab, f, from, t0.Add(time.Second), nil)
				continue
			}
			check(fmt.Sprintf("the first registration with bit %d flipped", i), f, from)
		}
	}
	// From A's own address only retransmissions are answered, and they
	// change nothing but the expiry of the authenticated one; the
	// superseded first registration is challenged, changing nothing.
	check("the superseded first registration", plain, addrA)
	for i, f := range flips(signed) {
		check(fmt.Sprintf("the authenticated registration with bit %d flipped", i), f, addrA)
	}

	// Lookups find A where it registered, and offers go there.
	ms := decodeOut(t, handle(tab, lookupBytes(20, 2, 1, 9), addrB, t0, nil))
	equal(t, [2]any{ms[0].publicKey, ms[0].addrs[0]}, [2]any{a.pub, addrA}, "A as B finds it")
	out := handle(tab, lookupBytes(21, 2, 1, 9), addrB, t0, nil)
	equal(t, out[1].to, addrA, "offer to A sent to")
}

// A LOOKUP captured on the wire, replayed or with any one bit flipped, makes
// no offer from anywhere.
func TestTableCapturedLookupMakesNoOffer(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	a := newKeyedClient(t, tab, 1)
	b := newKeyedClient(t, tab, 2)
	registerKeyed(t, tab, a, addrA, t0)
	registerKeyed(t, tab, b, addrB, t0)
	captured := a.lookup(30, 2, 0x5e55)
	equal(t, len(handle(tab, captured, addrA, t0, nil)), 2, "datagrams for the genuine lookup")

	silent(t, handle(tab, captured, addrC, t0, nil), "the lookup replayed from elsewhere")
	silent(t, handle(tab, captured, addrB, t0, nil), "the lookup replayed from B")
	for _, from := range []netip.AddrPort{addrA, addrB, addrC} {
		for i, f := range flips(captured) {
			silent(t, handle(tab, f, from, t0, nil), "the lookup with bit %d flipped from %v", i, from)
		}
	}
	// Nor without its MAC: A authenticates, so nothing unauthenticated is
	// taken from it.
	silent(t, handle(tab, lookupBytes(30, 1, 2, 0x5e55), addrA, t0, nil), "the lookup stripped of its MAC")
	// The same lookup from A's own address is a retransmission: it forwards
	// the very same offer again, which the target recognises by session ID.
	ms := decodeOut(t, handle(tab, captured, addrA, t0, nil))
	equal(t, [2]any{len(ms), ms[1].sessionID}, [2]any{2, uint64(0x5e55)}, "a retransmission's offer")
}

// A first registration whose answer was lost is retransmitted unchanged and
// answered again, and so is an authenticated one.
func TestTableRetransmittedRegistrationAnsweredAgain(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	a := newKeyedClient(t, tab, 1)
	plain := a.plainRegister(100, v4b)
	first := handle(tab, plain, addrA, t0, nil)
	before := snapshot(tab, 1)
	again := handle(tab, plain, addrA, t0, nil)
	equal(t, decodeOut(t, again), decodeOut(t, first), "answer to the retransmission")
	equal(t, snapshot(tab, 1), before, "A after the retransmission")

	signed := a.register(101, v4b)
	first = handle(tab, signed, addrA, t0, nil)
	before = snapshot(tab, 1)
	equal(t, before.authed, true, "authenticated")
	again = handle(tab, signed, addrA, t0, nil)
	equal(t, decodeOut(t, again), decodeOut(t, first), "answer to the authenticated retransmission")
	equal(t, snapshot(tab, 1), before, "A after the authenticated retransmission")
	// An unauthenticated copy of the latest registration from A's address
	// is answered too, changing nothing; older ones are not.
	m, _ := only(t, handle(tab, a.plainRegister(101, v4b), addrA, t0.Add(time.Second), nil))
	equal(t, m.txID, uint64(101), "answer to an unauthenticated copy of the latest registration")
	equal(t, snapshot(tab, 1), before, "A after it")
	// An older one is only challenged, which changes nothing.
	m, _ = only(t, tab.handle(plain, addrA, t0, nil))
	equal(t, m.typ, msgChallenge, "answer to the first registration after authentication")
	equal(t, snapshot(tab, 1), before, "A after it")
}

// On an open server, a live authenticated registration is not taken over
// by another key: whoever registers the SteamID under a key of its own,
// authenticated or not, is refused, and lookups and offers keep going to
// the player. Once the player's registration is gone, the ID is free.
func TestTableLiveRegistrationIsNotTakenOver(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	player := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, player, addrA, t0)
	mustRegister(t, tab, 2, 480, addrB, t0)
	before := snapshot(tab, 1)

	squatter := newKeyedClient(t, tab, 1)
	req := squatter.plainRegister(regTx.Add(1))
	out := handle(tab, req, addrC, t0, nil)
	notLarger(t, out, req)
	m, to := only(t, out)
	equal(t, [3]any{m.typ, m.reason, to}, [3]any{msgRefused, RefuseIDInUse, addrC}, "answer to the squatter's registration")
	req = squatter.register(regTx.Add(1))
	out = handle(tab, req, addrC, t0, nil)
	notLarger(t, out, req)
	m, _ = only(t, out)
	equal(t, squatter.unseal(t, m, out[0].b).reason, RefuseIDInUse, "answer to the squatter's authenticated registration")
	equal(t, snapshot(tab, 1), before, "the player's registration")
	out = handle(tab, lookupBytes(5, 2, 1, 9), addrB, t0, nil)
	equal(t, len(out), 2, "datagrams for B's lookup")
	ms := decodeOut(t, out)
	equal(t, [2]any{ms[0].publicKey, ms[0].addrs[0]}, [2]any{player.pub, addrA}, "1 as B finds it")
	offer := player.unseal(t, ms[1], out[1].b)
	equal(t, [3]any{offer.typ, offer.steamID, out[1].to}, [3]any{msgOffer, uint64(2), addrA}, "B's offer, to the player under its key")

	silent(t, handle(tab, player.unregister(regTx.Add(1)), addrA, t0, nil), "the player's unregistration")
	registerKeyed(t, tab, squatter, addrC, t0)
	equal(t, snapshot(tab, 1).publicKey, squatter.pub, "1 once the player left")
}

// On a server with a secret, an instance that restarted with a new key
// pair takes the registration over with its token, which only the
// player's back end hands out and which never travels in clear; the old
// instance's registrations, replayed, do not take it back.
func TestTableRestartedInstanceWithTokenTakesOver(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	tab.tokens = newTokenChecker(testSecret)
	tok := makeToken(testSecret, 1, 480, uint64(t0.Add(time.Hour).Unix()))
	old := newKeyedClient(t, tab, 1)
	reg := func(c *keyedClient, token []byte) []byte {
		return signedBytes(message{typ: msgRegister, txID: regTx.Add(1), steamID: 1, appID: 480, publicKey: c.pub, token: token}, c.key)
	}
	oldSigned := reg(old, tok)
	m, _ := only(t, handle(tab, oldSigned, addrA, t0, nil))
	equal(t, m.typ, msgRegistered, "answer to the old instance")

	restarted := newKeyedClient(t, tab, 1)
	m, _ = only(t, handle(tab, reg(restarted, nil), addrC, t0, nil))
	equal(t, m.reason, RefuseTokenMissing, "answer to the restarted instance without its token")
	m, _ = only(t, handle(tab, reg(restarted, tok), addrC, t0, nil))
	equal(t, m.typ, msgRegistered, "answer to the restarted instance with its token")
	now := snapshot(tab, 1)
	equal(t, [2]any{now.publicKey, now.observed}, [2]any{restarted.pub, addrC}, "1 after the restart")
	for _, from := range []netip.AddrPort{addrA, addrC, addrB} {
		// As captured: at most challenged.
		onlyRegistered(t, tab, tab.handle(oldSigned, from, t0, nil), oldSigned, from)
	}
	equal(t, snapshot(tab, 1), now, "registration after the replays")
}

// Replays do not bring back an instance that unregistered or expired; the
// same instance, registering anew, comes back.
func TestTableRetiredKeyStaysRetired(t *testing.T) {
	ttl := time.Minute
	tab := newTestTable(ttl, 10)
	a := newKeyedClient(t, tab, 1)
	plain, signed := registerKeyed(t, tab, a, addrA, t0)
	silent(t, handle(tab, a.unregister(regTx.Add(1)), addrA, t0, nil), "unregistration")
	equal(t, tab.len(), 0, "registrations")
	for _, from := range []netip.AddrPort{addrA, addrC} {
		// As captured, without a cookie for now: at most challenged.
		onlyRegistered(t, tab, tab.handle(signed, from, t0, nil), signed, from)
		onlyRegistered(t, tab, tab.handle(plain, from, t0, nil), plain, from)
	}
	equal(t, tab.len(), 0, "registrations after the replays")

	b := newKeyedClient(t, tab, 2)
	_, bSigned := registerKeyed(t, tab, b, addrB, t0)
	later := t0.Add(ttl)
	equal(t, tab.expire(later), 1, "expired")
	onlyRegistered(t, tab, tab.handle(bSigned, addrC, later, nil), bSigned, addrC) // as captured: challenged
	equal(t, tab.len(), 0, "registrations")
	// B was only cut off for a while; its next registration is newer.
	m, _ := only(t, handle(tab, b.register(regTx.Add(1)), addrB, later, nil))
	equal(t, m.typ, msgRegistered, "answer to B's next registration")
	equal(t, snapshot(tab, 2).authed, true, "B authenticated again")
}

// Retired keys are bounded per SteamID and in SteamIDs: one ID re-keyed
// over and over keeps only its latest keys and flushes nobody else's.
func TestRetiredKeysBounded(t *testing.T) {
	k := newRetiredKeys(10)
	k.add(1, key(1), 10)
	for i := range 100 {
		k.add(2, key(byte(100+i)), uint64(i))
	}
	equal(t, [2]bool{k.stale(1, key(1), 10), k.stale(1, key(1), 11)}, [2]bool{true, false}, "ID 1's key after ID 2 re-keyed 100 times")
	equal(t, len(k.ids[2]), maxRetiredPerID, "ID 2's keys kept")
	equal(t, k.has(2, key(199)), true, "ID 2's latest key")
	equal(t, k.has(2, key(100)), false, "ID 2's first key")
	equal(t, k.has(2, key(1)), false, "ID 1's key under ID 2")
	k.add(3, key(3), 30) // 10 keys in all: at the bound
	equal(t, [3]bool{k.has(1, key(1)), k.has(2, key(199)), k.has(3, key(3))}, [3]bool{true, true, true}, "IDs held at the bound")
	k.add(4, key(4), 40) // past it: the ID first seen longest ago goes
	equal(t, [4]bool{k.has(1, key(1)), k.has(2, key(199)), k.has(3, key(3)), k.has(4, key(4))}, [4]bool{false, true, true, true}, "IDs held past the bound")
	k.revive(2, key(199))
	equal(t, k.has(2, key(199)), false, "revived key retired")
	held := 0
	for _, keys := range k.ids {
		held += len(keys)
	}
	if held != k.total || k.total > k.max || len(k.order) > k.max {
		t.Fatalf("%d keys held, %d counted, in %d IDs; max %d", held, k.total, len(k.order), k.max)
	}
}

// A captured registration of a player who has since retired its key stays
// dead however often someone else re-keys an ID of its own: the retired
// keys of one ID cannot be flushed through another.
func TestTableRetiredKeySurvivesAReKeyingFlood(t *testing.T) {
	tab := newTestTable(time.Minute, 16)
	a := newKeyedClient(t, tab, 1)
	_, signed := registerKeyed(t, tab, a, addrA, t0)
	silent(t, handle(tab, a.unregister(regTx.Add(1)), addrA, t0, nil), "unregistration")
	for i := 0; i < 1000; i++ {
		attacker := newKeyedClient(t, tab, 2)
		registerKeyed(t, tab, attacker, addrC, t0)
		// A live registration is not taken over: each key leaves before
		// the next comes, and retires.
		silent(t, handle(tab, attacker.unregister(regTx.Add(1)), addrC, t0, nil), "attacker's unregistration")
	}
	onlyRegistered(t, tab, tab.handle(signed, addrC, t0, nil), signed, addrC) // as captured: challenged at most
	if r := tab.regs[regKey{steamID: 1}]; r != nil {
		t.Fatalf("the replay registered the player again, at %v", r.observed)
	}
}

// A server that restarted has a new key: the client's registration, MAC'd
// under the old one, is answered with the new key, and the client's next
// registration, MAC'd under it, is taken.
func TestTableRestartedServerTellsItsKey(t *testing.T) {
	before := newTestTable(time.Minute, 10)
	a := newKeyedClient(t, before, 1)
	registerKeyed(t, before, a, addrA, t0)

	after := newTestTable(time.Minute, 10)
	refresh := a.register(regTx.Add(1))
	out := handle(after, refresh, addrA, t0, nil)
	onlyRegistered(t, after, out, refresh, addrA)
	equal(t, len(out), 1, "answers to the stale-keyed registration")
	equal(t, after.len(), 0, "registrations taken under the old key")

	// The same instance, having learnt the new key from that answer.
	a.learn(t, after)
	m, _ := only(t, handle(after, a.register(regTx.Add(1)), addrA, t0, nil))
	equal(t, m.typ, msgRegistered, "answer under the new key")
	equal(t, snapshot(after, 1).authed, true, "authenticated under the new key")
	equal(t, len(handle(after, a.lookup(1, 1, 9), addrA, t0, nil)), 2, "datagrams for a lookup under the new key")
}

func TestTableRequestsNeverAmplify(t *testing.T) {
	tab := newTestTable(time.Minute, 2, 480)
	tab.relays = testIssuer(maxAddrs(MaxRelays)[0], maxAddrs(MaxRelays)[1:]...) // the largest relay list
	a := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, a, addrA, t0, maxAddrs(MaxLocalAddrs)...)
	mustRegister(t, tab, 2, 480, addrB, t0, maxAddrs(MaxLocalAddrs)...)
	stranger := newKeyedClient(t, tab, 3)
	reqs := [][]byte{
		regBytes(1, 3, 480, key(3)),       // table full
		regBytes(1, 3, 730, key(3)),       // other app
		regBytes(1, 0, 480, key(3)),       // invalid
		stranger.register(1),              // table full, authenticated
		a.plainRegister(regTx.Add(1)),     // dropped
		regBytes(1, 1, 480, key(5)),       // an unproven new key
		lookupBytes(1, 2, 1, 9),           // the largest answer and offer
		a.lookup(2, 2, 9),                 // likewise, authenticated
		a.register(regTx.Add(1)),          // refresh
		a.forged().register(regTx.Add(1)), // wrong MAC
		offerAckBytes(3, 2, 1, 9),         // a DELIVERED MAC'd for A, caused by a receipt without a MAC
		a.offerAck(4, 2, 9),               // a DELIVERED for 2
		a.forged().offerAck(5, 2, 9),      // wrong MAC
	}
	for _, req := range reqs {
		for _, from := range []netip.AddrPort{addrA, addrB, addrC} {
			notLarger(t, handle(tab, req, from, t0, nil), req)
		}
		for _, f := range flips(req) {
			notLarger(t, handle(tab, f, addrA, t0, nil), f)
		}
	}
}

// A LOOKUP makes the server send two datagrams, the answer to the requester
// and the offer to the target; together they are no larger than the
// lookup, however many addresses the target announced, so a spoofed
// requester cannot make the server amplify traffic toward anyone.
func TestLookupAnswersTogetherNoLargerThanTheLookup(t *testing.T) {
	tab := newTestTable(time.Minute, 16)
	local := make([]netip.AddrPort, MaxLocalAddrs)
	for i := range local {
		local[i] = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), uint16(40000+i))
	}
	requester := netip.MustParseAddrPort("[2001:db8::a]:40000")
	target := netip.MustParseAddrPort("[2001:db8::b]:40000")
	mustRegister(t, tab, 1, 480, requester, t0, local...)
	mustRegister(t, tab, 2, 480, target, t0, local...)
	lookup := lookupBytes(1, 1, 2, 7)
	out := handle(tab, lookup, requester, t0, nil)
	if len(out) != 2 {
		t.Fatalf("%d datagrams for a lookup, want the answer and the offer", len(out))
	}
	sent := len(out[0].b) + len(out[1].b)
	if sent > len(lookup) {
		t.Fatalf("a %d-byte lookup made the server send %d bytes (%.2fx)", len(lookup), sent, float64(sent)/float64(len(lookup)))
	}
	t.Logf("a %d-byte lookup: %d + %d bytes sent (%.2fx)", len(lookup), len(out[0].b), len(out[1].b), float64(sent)/float64(len(lookup)))
}

// A full table refuses every newcomer but warns once per fullLogEvery,
// with the count, not once per refusal.
func TestTableFullWarnsAtARate(t *testing.T) {
	var logged bytes.Buffer
	tab := newTestTable(time.Minute, 1)
	tab.log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mustRegister(t, tab, 1, 480, addrA, t0)
	for i := 0; i < 1000; i++ {
		now := t0.Add(time.Duration(i) * 25 * time.Millisecond) // 25 s in all
		m, _ := only(t, handle(tab, regBytes(uint64(10+i), uint64(100+i), 480, key(byte(i))), addrC, now, nil))
		equal(t, m.reason, RefuseServerFull, "reason")
	}
	if n := strings.Count(logged.String(), "registration table full"); n != 3 {
		t.Fatalf("%d warnings for 1,000 refusals over 25 s, want 3 (one per 10 s):\n%s", n, logged.String())
	}
}

// handle is tab.handle as a client that answers CHALLENGEs sees it: a
// REGISTER without a cookie is given the one the table would hand its
// source, re-MAC'd if its MAC was right (the table's own key agreement
// gives the key the sender shares with it), and a MAC'd REGISTER's token
// is encrypted as a client encrypts it. The tests of cookies, and of
// what a forged source gets, call tab.handle itself.
func handle(tab *table, b []byte, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	m, err := decode(b)
	if err != nil || m.typ != msgRegister || m.cookie != ([cookieLen]byte{}) {
		return tab.handle(b, from, now, out)
	}
	from = canonical(from)
	var key [32]byte
	good := false
	if m.hasMAC {
		if k, err := deriveMACKey(tab.priv, m.publicKey, m.steamID); err == nil {
			key, good = k, newMacer().verify(b, &k)
		}
	}
	tab.mu.Lock()
	m.cookie = tab.cookie(from, m.steamID, &m.publicKey, cookieEpochOf(now))
	tab.mu.Unlock()
	nb := m.encode(nil)
	if good {
		newMacer().sign(nb, &key)
	}
	return tab.handle(nb, from, now, out)
}

package rendezvous

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func key(b byte) (k [32]byte) {
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

var (
	v4a = netip.MustParseAddrPort("198.18.0.1:4000")
	v4b = netip.MustParseAddrPort("10.0.0.2:4001")
	v6a = netip.MustParseAddrPort("[2001:db8::1]:4002")
)

// maxAddrs is the largest candidate list a message can carry, all IPv6.
func maxAddrs(n int) []netip.AddrPort {
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}), uint16(5000+i))
	}
	return out
}

// sampleMessages has one of every type and shape, the seeds of the fuzz
// target included.
func sampleMessages() []message {
	return []message{
		{typ: msgRegister, txID: 1, steamID: 76561197960265729, appID: 480, publicKey: key(1)},
		{typ: msgRegister, txID: 2, steamID: 5, appID: 730, publicKey: key(2), addrs: []netip.AddrPort{v4b, v6a}},
		{typ: msgRegister, txID: 3, steamID: 5, appID: 730, publicKey: key(2), addrs: maxAddrs(MaxLocalAddrs)},
		{typ: msgRegistered, txID: 4, publicKey: key(9), addrs: []netip.AddrPort{v4a}},
		{typ: msgRegistered, txID: 5, publicKey: key(9), addrs: []netip.AddrPort{v6a}},
		{typ: msgRefused, txID: 6, reason: RefuseNoRightsToApp},
		{typ: msgLookup, txID: 7, steamID: 5, appID: 480, target: 6, sessionID: 0xdeadbeef},
		{typ: msgLookupResult, txID: 8, target: 6, status: LookupNotOnline},
		{typ: msgLookupResult, txID: 9, target: 6, status: LookupOtherApp},
		{typ: msgLookupResult, txID: 10, target: 6, status: LookupOK, publicKey: key(3), addrs: []netip.AddrPort{v4a, v4b}},
		{typ: msgLookupResult, txID: 11, target: 6, status: LookupOK, publicKey: key(3), addrs: maxAddrs(maxCandidates)},
		{typ: msgOffer, txID: 12, steamID: 5, publicKey: key(4), sessionID: 99, addrs: []netip.AddrPort{v4a}},
		{typ: msgOffer, txID: 13, steamID: 5, publicKey: key(4), sessionID: 99, addrs: maxAddrs(maxCandidates)},
		{typ: msgUnregister, txID: 14, steamID: 5, appID: 480},
		{typ: msgRegister, txID: 15, steamID: 5, appID: 730, publicKey: key(2), addrs: maxAddrs(MaxLocalAddrs), hasMAC: true, mac: mac16(1)},
		{typ: msgRegister, txID: 16, steamID: 5, appID: 730, publicKey: key(2), hasMAC: true, mac: mac16(2)},
		{typ: msgLookup, txID: 17, steamID: 5, appID: 480, target: 6, sessionID: 0xdeadbeef, hasMAC: true, mac: mac16(3)},
		{typ: msgUnregister, txID: 18, steamID: 5, appID: 480, hasMAC: true, mac: mac16(4)},
		// 19-: relayed addresses, relays, and what the server MACs.
		{typ: msgRegister, txID: 19, steamID: 5, appID: 730, publicKey: key(2), addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true, mac: mac16(5)},
		{typ: msgRegister, txID: 20, steamID: 5, appID: 730, publicKey: key(2), relayed: []netip.AddrPort{v4a}},
		{typ: msgRegistered, txID: 21, publicKey: key(9), addrs: []netip.AddrPort{v4a}, expiry: 1_700_000_600, relays: []relayCred{{v4b, pw20(1)}}, hasMAC: true, mac: mac16(6)},
		{typ: msgRegistered, txID: 22, publicKey: key(9), addrs: maxAddrs(1), expiry: 1<<63 - 1, relays: maxRelays(MaxRelays), hasMAC: true, mac: mac16(7)},
		{typ: msgRegistered, txID: 23, publicKey: key(9), addrs: []netip.AddrPort{v4a}, hasMAC: true, mac: mac16(8)},
		{typ: msgRefused, txID: 24, reason: RefuseServerFull, hasMAC: true, mac: mac16(9)},
		{typ: msgLookupResult, txID: 25, target: 6, status: LookupOK, publicKey: key(3), addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true, mac: mac16(10)},
		{typ: msgLookupResult, txID: 26, target: 6, status: LookupNotOnline, hasMAC: true, mac: mac16(11)},
		{typ: msgOffer, txID: 27, steamID: 5, publicKey: key(4), sessionID: 99, addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true, mac: mac16(12)},
		{typ: msgOffer, txID: 28, steamID: 5, publicKey: key(4), sessionID: 99, addrs: []netip.AddrPort{v4a}, relayed: []netip.AddrPort{v4b}},
		// 29-: receipts for offers, and the reports of them.
		{typ: msgOfferAck, txID: 29, steamID: 6, appID: 480, requester: 5, sessionID: 99},
		{typ: msgOfferAck, txID: 30, steamID: 6, appID: 480, requester: 5, sessionID: 99, hasMAC: true, mac: mac16(13)},
		{typ: msgDelivered, txID: 31, target: 6, sessionID: 99},
		{typ: msgDelivered, txID: 32, target: 6, sessionID: 1<<64 - 1, hasMAC: true, mac: mac16(14)},
		// 33-: tokens, hidden addresses.
		// A token travels only encrypted under the MAC's key: only in a MAC'd REGISTER.
		{typ: msgRegister, txID: 33, steamID: 5, appID: 730, publicKey: key(2), token: tok52(1), hasMAC: true, mac: mac16(19)},
		{typ: msgRegister, txID: 34, steamID: 5, appID: 730, publicKey: key(2), addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), hideAddress: true, token: tok52(2), hasMAC: true, mac: mac16(15)},
		{typ: msgRegister, txID: 35, steamID: 5, appID: 730, publicKey: key(2), relayed: []netip.AddrPort{v4a}, hideAddress: true},
		{typ: msgRefused, txID: 36, reason: RefuseTokenWrongApp, hasMAC: true, mac: mac16(16)},
		{typ: msgLookupResult, txID: 37, target: 6, status: LookupOK, publicKey: key(3), relayed: []netip.AddrPort{v4a}, hasMAC: true, mac: mac16(17)},
		{typ: msgLookupResult, txID: 38, target: 6, status: LookupOK, publicKey: key(3)},
		{typ: msgOffer, txID: 39, steamID: 5, publicKey: key(4), sessionID: 99, relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true, mac: mac16(18)},
		// 40-: version 7: challenges, cookies, certificates, AppIDs.
		{typ: msgChallenge, txID: 40, publicKey: key(9), cookie: cookie16(1)},
		{typ: msgChallenge, txID: 1<<64 - 1, publicKey: key(10), cookie: cookie16(0x5f)},
		{typ: msgRegister, txID: 42, steamID: 5, appID: 730, publicKey: key(2), cookie: cookie16(2), addrs: []netip.AddrPort{v4b, v6a}, cert: cert72(1)},
		{typ: msgRegister, txID: 43, steamID: 5, appID: 730, publicKey: key(2), cookie: cookie16(3), token: tok52(3), cert: cert72(2), hasMAC: true, mac: mac16(20)},
		// The largest registration there is: every field at its longest.
		{typ: msgRegister, txID: 44, steamID: 1<<64 - 1, appID: 1<<32 - 1, publicKey: key(2), cookie: cookie16(4), addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), hideAddress: true, token: tok52(4), cert: cert72(3), hasMAC: true, mac: mac16(21)},
		// The largest without a MAC, which can carry no token.
		{typ: msgRegister, txID: 45, steamID: 5, appID: 730, publicKey: key(2), cookie: cookie16(5), addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), hideAddress: true, cert: cert72(4)},
		{typ: msgLookupResult, txID: 46, target: 6, status: LookupOK, publicKey: key(3), addrs: []netip.AddrPort{v4a}, cert: cert72(5)},
		{typ: msgLookupResult, txID: 47, target: 6, status: LookupOK, publicKey: key(3), addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), cert: cert72(6), hasMAC: true, mac: mac16(22)},
		{typ: msgLookupResult, txID: 48, target: 6, status: LookupOK, publicKey: key(3), relayed: []netip.AddrPort{v4a}, cert: cert72(7), hasMAC: true, mac: mac16(23)},
		{typ: msgOffer, txID: 49, steamID: 5, publicKey: key(4), sessionID: 99, addrs: []netip.AddrPort{v4a}, cert: cert72(8)},
		{typ: msgOffer, txID: 50, steamID: 5, publicKey: key(4), sessionID: 99, addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), cert: cert72(9), hasMAC: true, mac: mac16(24)},
		{typ: msgOffer, txID: 51, steamID: 5, publicKey: key(4), sessionID: 99, cert: cert72(10)},
		{typ: msgLookup, txID: 52, steamID: 1<<64 - 1, appID: 1<<32 - 1, target: 1<<64 - 1, sessionID: 1<<64 - 1, hasMAC: true, mac: mac16(25)},
		{typ: msgOfferAck, txID: 53, steamID: 6, appID: 0x01020304, requester: 5, sessionID: 99},
		{typ: msgUnregister, txID: 54, steamID: 5, appID: 1<<32 - 1, hasMAC: true, mac: mac16(26)},
		{typ: msgUnregister, txID: 55, steamID: 5, appID: 0x01020304},
	}
}

// cookie16 is a CHALLENGE cookie to test with.
func cookie16(b byte) (c [cookieLen]byte) {
	for i := range c {
		c[i] = 0x60 + b + byte(i)
	}
	return c
}

// certN is n bytes in a certificate's place; the wire does not read them.
func certN(n int, b byte) []byte {
	c := make([]byte, n)
	for i := range c {
		c[i] = 0x80 + b + byte(i)
	}
	return c
}

// cert72 is a certificate's worth of bytes.
func cert72(b byte) []byte { return certN(certLen, b) }

// addrsLen is the length of an address list on the wire, its count
// included.
func addrsLen(addrs []netip.AddrPort) int {
	n := 1
	for _, ap := range addrs {
		if ap.Addr().Unmap().Is4() {
			n += 1 + 4 + 2
		} else {
			n += 1 + 16 + 2
		}
	}
	return n
}

// registerOffsets are where the fields of a REGISTER start, as the layout
// at the top of wire.go puts them: the cookie, the counts of the local and
// relayed addresses, the options, the lengths of the token and of the
// certificate, and the end of the body, where the padding starts.
type registerOffsets struct{ cookie, addrs, relayed, options, token, cert, end int }

func registerLayout(m message) (o registerOffsets) {
	o.cookie = headerLen + 8 + 4 + 32
	o.addrs = o.cookie + cookieLen
	o.relayed = o.addrs + addrsLen(m.addrs)
	o.options = o.relayed + addrsLen(m.relayed)
	o.token = o.options + 1
	o.cert = o.token + 1 + len(m.token)
	o.end = o.cert + 1 + len(m.cert)
	return o
}

// answerOffsets are where the lists and the certificate of a RESULT (with
// LookupOK) or an OFFER start: the counts of the candidates and of the
// relayed addresses, and the certificate's length; end is where the MAC
// goes, if any.
type answerOffsets struct{ addrs, relayed, cert, end int }

func answerLayout(m message) (o answerOffsets) {
	if m.typ == msgOffer {
		o.addrs = headerLen + 8 + 32 + 8
	} else {
		o.addrs = headerLen + 8 + 1 + 32
	}
	o.relayed = o.addrs + addrsLen(m.addrs)
	o.cert = o.relayed + addrsLen(m.relayed)
	o.end = o.cert + 1 + len(m.cert)
	return o
}

// tok52 is a decoded token's worth of bytes.
func tok52(b byte) []byte {
	t := make([]byte, tokenLen)
	for i := range t {
		t[i] = b + byte(i)
	}
	return t
}

// pw20 is a relay password to test with.
func pw20(b byte) (p [relayPasswordLen]byte) {
	for i := range p {
		p[i] = 0x30 + b + byte(i)
	}
	return p
}

// maxRelays is the largest relay list a REGISTERED can carry, all IPv6.
func maxRelays(n int) []relayCred {
	out := make([]relayCred, n)
	for i, a := range maxAddrs(n) {
		out[i] = relayCred{a, pw20(byte(i))}
	}
	return out
}

func mac16(b byte) (m [macLen]byte) {
	for i := range m {
		m[i] = 0xa0 + b + byte(i)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := m.encode(nil)
		if len(b) > maxMessageLen {
			t.Errorf("%v encodes to %d bytes, over maxMessageLen", m.typ, len(b))
		}
		got, err := decode(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip changed the message:\n got %+v\nwant %+v", got, m)
		}
	}
}

// TestWireLayout checks that every field lands where the layout at the top
// of wire.go puts it, the fields of version 7 above all: REGISTER's cookie
// after the key and its certificate after the token, CHALLENGE's key and
// cookie, the certificate at the end of RESULT and OFFER, and the AppID
// after the SteamID in LOOKUP, OFFER_ACK and UNREGISTER.
func TestWireLayout(t *testing.T) {
	be32 := func(b []byte) uint32 { return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) }
	be64 := func(b []byte) uint64 { return uint64(be32(b))<<32 | uint64(be32(b[4:])) }
	for i, m := range sampleMessages() {
		b := m.encode(nil)
		body := len(b) // where the MAC starts, if any
		if m.hasMAC {
			body -= macLen
			equal(t, b[body:], m.mac[:], "sample %d (%v): MAC", i, m.typ)
		}
		equal(t, b[:4], []byte{0xD0, protocolVersion, byte(m.typ), b[3]}, "sample %d: header", i)
		equal(t, b[3] == flagMAC, m.hasMAC, "sample %d (%v): MAC flag", i, m.typ)
		equal(t, be64(b[4:]), m.txID, "sample %d (%v): txID", i, m.typ)
		switch m.typ {
		case msgRegister:
			o := registerLayout(m)
			equal(t, be64(b[headerLen:]), m.steamID, "sample %d: REGISTER steamID", i)
			equal(t, be32(b[headerLen+8:]), m.appID, "sample %d: REGISTER appID", i)
			equal(t, b[headerLen+8+4:o.cookie], m.publicKey[:], "sample %d: REGISTER publicKey", i)
			equal(t, b[o.cookie:o.addrs], m.cookie[:], "sample %d: REGISTER cookie", i)
			equal(t, [2]int{int(b[o.addrs]), int(b[o.relayed])}, [2]int{len(m.addrs), len(m.relayed)}, "sample %d: REGISTER address counts", i)
			equal(t, b[o.options] == optHideAddress, m.hideAddress, "sample %d: REGISTER options", i)
			equal(t, int(b[o.token]), len(m.token), "sample %d: REGISTER token length", i)
			equal(t, b[o.token+1:o.cert], append([]byte{}, m.token...), "sample %d: REGISTER token", i)
			equal(t, int(b[o.cert]), len(m.cert), "sample %d: REGISTER certificate length", i)
			equal(t, b[o.cert+1:o.end], append([]byte{}, m.cert...), "sample %d: REGISTER certificate", i)
			equal(t, b[o.end:body], make([]byte, body-o.end), "sample %d: REGISTER padding", i)
		case msgChallenge:
			equal(t, len(b), challengeLen, "sample %d: CHALLENGE length", i)
			equal(t, b[headerLen:headerLen+32], m.publicKey[:], "sample %d: CHALLENGE serverKey", i)
			equal(t, b[headerLen+32:], m.cookie[:], "sample %d: CHALLENGE cookie", i)
		case msgLookupResult, msgOffer:
			if m.typ == msgLookupResult && m.status != LookupOK {
				equal(t, body, headerLen+8+1, "sample %d: RESULT %v length", i, m.status)
				break
			}
			o := answerLayout(m)
			equal(t, [2]int{int(b[o.addrs]), int(b[o.relayed])}, [2]int{len(m.addrs), len(m.relayed)}, "sample %d (%v): address counts", i, m.typ)
			equal(t, int(b[o.cert]), len(m.cert), "sample %d (%v): certificate length", i, m.typ)
			equal(t, b[o.cert+1:o.end], append([]byte{}, m.cert...), "sample %d (%v): certificate", i, m.typ)
			equal(t, o.end, body, "sample %d (%v): the certificate ends the body", i, m.typ)
		case msgLookup, msgOfferAck, msgUnregister:
			equal(t, be64(b[headerLen:]), m.steamID, "sample %d (%v): steamID", i, m.typ)
			equal(t, be32(b[headerLen+8:]), m.appID, "sample %d (%v): appID after the steamID", i, m.typ)
			if m.typ == msgUnregister {
				equal(t, body, headerLen+8+4, "sample %d: UNREGISTER length", i)
				break
			}
			second := m.target // LOOKUP: target(8) sessionID(8)
			if m.typ == msgOfferAck {
				second = m.requester // OFFER_ACK: requester(8) sessionID(8)
			}
			equal(t, [2]uint64{be64(b[headerLen+12:]), be64(b[headerLen+20:])}, [2]uint64{second, m.sessionID}, "sample %d (%v): the fields after the appID", i, m.typ)
			equal(t, b[headerLen+28:body], make([]byte, body-headerLen-28), "sample %d (%v): padding", i, m.typ)
		}
	}
}

func TestLookupPaddingCoversAnswers(t *testing.T) {
	lookup := (&message{typ: msgLookup}).encode(nil)
	for _, m := range sampleMessages() {
		if m.typ != msgLookupResult && m.typ != msgOffer {
			continue
		}
		if n := len(m.encode(nil)); n > len(lookup) {
			t.Errorf("%v of %d bytes is larger than the %d-byte lookup that causes it", m.typ, n, len(lookup))
		}
	}
	// The largest of each, MAC'd and with a certificate, exactly as the
	// constants say; together no larger than the lookup.
	result := message{typ: msgLookupResult, status: LookupOK, addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), cert: cert72(0), hasMAC: true}
	offer := message{typ: msgOffer, addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), cert: cert72(0), hasMAC: true}
	r, o := result.encode(nil), offer.encode(nil)
	equal(t, len(r), maxResultLen, "largest %v", result.typ)
	equal(t, len(o), maxOfferLen, "largest %v", offer.typ)
	for _, b := range [][]byte{r, o} {
		got, err := decode(b)
		noError(t, err, "decode the largest %v", msgType(b[2]))
		equal(t, len(got.cert), certLen, "certificate of the largest %v", msgType(b[2]))
	}
	if len(r)+len(o) > len(lookup) {
		t.Errorf("the largest RESULT and OFFER, %d and %d bytes, are larger together than the %d-byte lookup", len(r), len(o), len(lookup))
	}
	equal(t, len(lookup), lookupLen, "LOOKUP length")
}

// The requests a client sends have one size whatever they carry, so that
// the answers, which may carry more, are never larger.
func TestRequestsArePadded(t *testing.T) {
	for _, m := range sampleMessages() {
		b := m.encode(nil)
		switch m.typ {
		case msgRegister:
			equal(t, len(b), registerLen, "length of %+v", m)
		case msgLookup:
			equal(t, len(b), lookupLen, "length of %+v", m)
		case msgOfferAck:
			equal(t, len(b), offerAckLen, "length of %+v", m)
		}
	}
	// The largest registration, with a cookie, a token, a certificate and
	// a MAC, fits exactly: registerLen leaves no padding in it.
	largest := message{typ: msgRegister, publicKey: key(1), cookie: cookie16(0), addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), token: tok52(0), cert: cert72(0), hideAddress: true, hasMAC: true}
	b := largest.encode(nil)
	equal(t, len(b), registerLen, "largest REGISTER")
	equal(t, registerLayout(largest).end, registerPaddedUntil, "end of the largest REGISTER's body")
	equal(t, registerPaddedUntil, maxRegisterBodyLen, "registerLen less the MAC")
	got, err := decode(b)
	noError(t, err, "decode the largest REGISTER")
	equal(t, got, largest, "the largest REGISTER, decoded")
	// The smallest registration still covers the largest answer to it,
	// whichever it is: REGISTERED, REFUSED or CHALLENGE.
	reg := (&message{typ: msgRegister, publicKey: key(1)}).encode(nil)
	registered := (&message{typ: msgRegistered, publicKey: key(2), addrs: maxAddrs(1), expiry: 1, relays: maxRelays(MaxRelays), hasMAC: true}).encode(nil)
	refused := (&message{typ: msgRefused, reason: RefuseServerFull, hasMAC: true}).encode(nil)
	challenge := (&message{typ: msgChallenge, publicKey: key(2), cookie: cookie16(0)}).encode(nil)
	equal(t, len(registered), maxRegisteredLen, "largest REGISTERED")
	equal(t, len(refused), maxRefusedLen, "largest REFUSED")
	equal(t, len(challenge), challengeLen, "CHALLENGE")
	equal(t, len(reg), registerLen, "smallest REGISTER")
	if len(registered) > len(reg) || len(refused) > len(reg) || len(challenge) > len(reg) {
		t.Errorf("answers of %d, %d and %d bytes to a %d-byte registration", len(registered), len(refused), len(challenge), len(reg))
	}
	for _, m := range sampleMessages() {
		switch m.typ {
		case msgRegistered, msgRefused, msgChallenge:
			if n := len(m.encode(nil)); n > len(reg) {
				t.Errorf("%+v: %d bytes, more than a REGISTER's %d", m, n, len(reg))
			}
		}
	}
}

// A DELIVERED goes to the requester, MAC'd if the requester authenticates,
// whatever the sender of the OFFER_ACK that caused it does; the smallest
// OFFER_ACK, without a MAC, still covers the largest DELIVERED, with one.
func TestOfferAckCoversDelivered(t *testing.T) {
	ack := (&message{typ: msgOfferAck}).encode(nil)
	macd := (&message{typ: msgOfferAck, steamID: 1<<64 - 1, appID: 1<<32 - 1, requester: 1<<64 - 1, sessionID: 1<<64 - 1, hasMAC: true}).encode(nil)
	delivered := (&message{typ: msgDelivered, target: 1<<64 - 1, sessionID: 1<<64 - 1, hasMAC: true}).encode(nil)
	equal(t, [2]int{len(ack), len(macd)}, [2]int{offerAckLen, offerAckLen}, "OFFER_ACK lengths, without and with a MAC")
	equal(t, len(delivered), maxDeliveredLen, "largest DELIVERED")
	if len(delivered) > len(ack) {
		t.Errorf("a DELIVERED of %d bytes for a %d-byte OFFER_ACK", len(delivered), len(ack))
	}
	for _, m := range sampleMessages() {
		if n := len(m.encode(nil)); m.typ == msgDelivered && n > len(ack) {
			t.Errorf("%+v: %d bytes, more than an OFFER_ACK's %d", m, n, len(ack))
		}
	}
}

func TestEncodeCanonicalisesAddresses(t *testing.T) {
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4a.Addr().As16()), v4a.Port())
	m := message{typ: msgRegistered, addrs: []netip.AddrPort{mapped}}
	got, err := decode(m.encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.addrs[0] != v4a {
		t.Errorf("IPv4-mapped %v came back as %v, want %v", mapped, got.addrs[0], v4a)
	}
}

func TestDecodeRejects(t *testing.T) {
	samples := sampleMessages()
	valid := func(i int) []byte { return samples[i].encode(nil) }
	// changed is sample i, changed by f before it is encoded: encode writes
	// what it is given, so that it can make what decode must refuse.
	changed := func(i int, f func(m *message)) []byte {
		m := samples[i]
		f(&m)
		return m.encode(nil)
	}
	with := func(b []byte, at int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[at:], v)
		return b
	}
	// beforeMAC inserts extra between the body of MAC'd b and its MAC.
	beforeMAC := func(b []byte, extra ...byte) []byte {
		out := append(bytes.Clone(b[:len(b)-macLen]), extra...)
		return append(out, b[len(b)-macLen:]...)
	}
	reg := func(i int) registerOffsets { return registerLayout(samples[i]) }
	ans := func(i int) answerOffsets { return answerLayout(samples[i]) }
	registered4 := valid(3)      // header + key + family + 4 + 2 + no relays
	regOffset := headerLen + 32  // the observed address, after the server key
	relaysAt := regOffset + 7    // the relay count of registered4
	registeredRelay := valid(20) // registered4 with one IPv4 relay, MAC'd
	noMAC := func(b []byte) []byte {
		b = bytes.Clone(b[:len(b)-macLen])
		b[3] = 0
		return b
	}
	cases := map[string][]byte{
		"empty":                   nil,
		"kind only":               {0xD0},
		"wrong kind":              with(valid(0), 0, 0xE0),
		"wrong version":           with(valid(0), 1, 1),
		"version 6":               with(valid(0), 1, 6),
		"unknown type":            with(valid(0), 2, 0x7f),
		"type zero":               with(valid(0), 2, 0),
		"type 11":                 with(valid(39), 2, byte(msgChallenge)+1),
		"header only register":    valid(0)[:headerLen],
		"truncated register":      valid(1)[:len(valid(1))-1],
		"trailing byte":           append(valid(0), 0),
		"too many local addrs":    with(valid(0), reg(0).addrs, MaxLocalAddrs+1),
		"address family 5":        with(registered4, regOffset, 5),
		"port zero":               append(registered4[:relaysAt-2:relaysAt-2], 0, 0, 0),
		"unspecified address":     append(valid(3)[:regOffset+1:regOffset+1], 0, 0, 0, 0, 1, 1, 0),
		"multicast address":       append(valid(3)[:regOffset+1:regOffset+1], 224, 0, 0, 1, 1, 1, 0),
		"mapped under family 6":   append(valid(3)[:regOffset:regOffset], append([]byte{6, 11: 0xff, 12: 0xff, 13: 1, 14: 2, 15: 3, 16: 4}, 1, 1, 0)...),
		"no relay count":          registered4[:relaysAt],
		"too many relays":         with(registered4, relaysAt, MaxRelays+1),
		"relay count, no relay":   with(registered4, relaysAt, 1),
		"relay expiry zero":       append(registered4[:relaysAt:relaysAt], append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 198, 18, 0, 1, 1, 1}, make([]byte, relayPasswordLen)...)...),
		"relay expiry 1<<63":      append(registered4[:relaysAt:relaysAt], append([]byte{1, 0x80, 0, 0, 0, 0, 0, 0, 0, 4, 198, 18, 0, 1, 1, 1}, make([]byte, relayPasswordLen)...)...),
		"relay port zero":         append(registered4[:relaysAt:relaysAt], append([]byte{1, 0, 0, 0, 0, 1, 0, 0, 0, 4, 198, 18, 0, 1, 0, 0}, make([]byte, relayPasswordLen)...)...),
		"relay short password":    noMAC(registeredRelay)[:len(noMAC(registeredRelay))-1],
		"relay long password":     append(noMAC(registeredRelay), 0),
		"too many relayed":        with(valid(18), reg(18).relayed, MaxRelayedAddrs+1),
		"offer too many relayed":  with(valid(26), ans(26).relayed, MaxRelayedAddrs+1),
		"offer without relayed":   valid(11)[:ans(11).relayed],
		"result without relayed":  valid(9)[:ans(9).relayed],
		"offer without cert len":  valid(11)[:ans(11).cert],
		"result without cert len": valid(9)[:ans(9).cert],
		"relayed port zero":       with(valid(26), ans(26).cert-2, 0, 0),
		"short lookup":            valid(6)[:lookupLen-1],
		"long lookup":             append(valid(6), 0),
		"lookup padding":          with(valid(6), lookupLen-1, 1),
		"unknown status":          with(valid(7), headerLen+8, 3),
		"not-online with body":    append(valid(7), make([]byte, 32)...),
		"not-online with cert":    append(valid(7), append([]byte{certLen}, cert72(0)...)...),
		"ok addrs cut short":      with(valid(9), ans(9).addrs, 1),
		"offer addrs cut short":   with(valid(12), ans(12).addrs, 1),
		"unknown option":          with(valid(0), reg(0).options, 2),
		"token of 1 byte":         with(valid(0), reg(0).token, 1),
		"token of 51 bytes":       with(valid(0), reg(0).token, tokenLen-1),
		"token of 53 bytes":       with(valid(32), reg(32).token, tokenLen+1),
		"token of 255 bytes":      with(valid(32), reg(32).token, 255),
		"token, no room":          with(valid(33), reg(33).token, 255),
		"token without MAC":       changed(32, func(m *message) { m.hasMAC = false }),
		"token, MAC flag off":     with(valid(32), 3, 0),
		"largest, MAC flag off":   with(valid(43), 3, 0),
		"token len, no MAC":       with(valid(0), reg(0).token, tokenLen),
		"register cert trailing":  with(valid(41), reg(41).end, 1),
		"MAC'd reg cert trailing": with(valid(42), reg(42).end, 1),
		"offer too many addrs":    with(valid(11), ans(11).addrs, maxCandidates+1),
		"oversized":               make([]byte, maxMessageLen+1),
		"register padding":        with(valid(0), registerLen-1, 1),
		"short register":          valid(0)[:registerLen-1],
		"long register":           append(valid(0), 0),
		"v6-sized register":       valid(0)[:304],
		"unknown flag":            with(valid(0), 3, 2),
		"MAC'd REGISTERED short":  valid(20)[:len(valid(20))-1],
		"MAC'd REGISTERED long":   append(valid(20), 0),
		"MAC'd OFFER, flag off":   with(valid(26), 3, 0),
		"MAC'd REFUSED short":     valid(23)[:len(valid(23))-1],
		"MAC stripped":            with(valid(14), 3, 0), // the MAC lands in the padding
		"MAC'd padding":           with(valid(14), registerLen-macLen-1, 1),
		"MAC'd lookup padding":    with(valid(16), lookupLen-macLen-1, 1),
		"MAC'd long register":     append(valid(14), 0),
		"MAC'd short lookup":      valid(16)[:lookupLen-1],
		"MAC'd unregister short":  valid(17)[:maxUnregisterLen-1],
		"MAC'd unregister long":   append(valid(17), 0),
		"unregister without app":  valid(13)[:headerLen+8],
		"MAC'd unreg without app": append(valid(17)[:headerLen+8:headerLen+8], valid(17)[len(valid(17))-macLen:]...),
		"long unregister":         append(valid(13), 0),
		"MAC flag, no MAC":        with(valid(13), 3, flagMAC),
		"short offer ack":         valid(28)[:offerAckLen-1],
		"long offer ack":          append(valid(28), 0),
		"offer ack padding":       with(valid(28), offerAckLen-1, 1),
		"MAC'd offer ack padding": with(valid(29), offerAckLen-macLen-1, 1),
		"MAC'd short offer ack":   valid(29)[:offerAckLen-1],
		"MAC'd long offer ack":    append(valid(29), 0),
		"offer ack MAC stripped":  with(valid(29), 3, 0), // the MAC lands in the padding
		"offer ack as DELIVERED":  with(valid(28), 2, byte(msgDelivered)),
		"short delivered":         valid(30)[:headerLen+8+8-1],
		"long delivered":          append(valid(30), 0),
		"MAC'd delivered short":   valid(31)[:len(valid(31))-1],
		"MAC'd delivered long":    append(valid(31), 0),
		"delivered MAC stripped":  with(valid(31), 3, 0),
		"delivered as OFFER_ACK":  with(valid(30), 2, byte(msgOfferAck)),
		"MAC'd CHALLENGE":         changed(39, func(m *message) { m.hasMAC, m.mac = true, mac16(0) }),
		"CHALLENGE, MAC flag on":  with(valid(39), 3, flagMAC),
		"header only CHALLENGE":   valid(39)[:headerLen],
		"CHALLENGE without coo":   valid(39)[:headerLen+32],
		"short CHALLENGE":         valid(39)[:challengeLen-1],
		"long CHALLENGE":          append(valid(39), 0),
		"CHALLENGE, two cookies":  append(valid(39), certN(cookieLen, 2)...),
		"CHALLENGE as REGISTERED": with(valid(39), 2, byte(msgRegistered)),
		"result cert trailing":    append(valid(45), 0),
		"MAC'd result cert trail": beforeMAC(valid(46), 0),
		"offer cert trailing":     append(valid(48), 0),
		"MAC'd offer cert trail":  beforeMAC(valid(49), 0),
		"hidden offer cert trail": append(valid(50), 0),
		"result cert cut short":   valid(45)[:len(valid(45))-1],
		"MAC'd offer cert short":  append(valid(49)[:ans(49).end-1:ans(49).end-1], valid(49)[ans(49).end:]...),
	}
	// Why the cases of version 7, and those whose offsets it moved, must
	// fail: a case that fails for another reason than its own, because its
	// offset is off, tests nothing.
	why := map[string]string{
		"version 6":               "version 6",
		"type 11":                 "unknown type 11",
		"too many local addrs":    "8 addresses, want 0 to 7",
		"too many relayed":        "3 addresses, want 0 to 2",
		"offer too many relayed":  "3 addresses, want 0 to 2",
		"relayed port zero":       "unusable address",
		"unknown option":          "options 0x2",
		"token of 1 byte":         "token of 1 bytes",
		"token of 51 bytes":       "token of 51 bytes",
		"token of 53 bytes":       "token of 53 bytes",
		"token, no room":          "token of 255 bytes",
		"token without MAC":       "token without a MAC",
		"token, MAC flag off":     "token without a MAC",
		"largest, MAC flag off":   "token without a MAC",
		"token len, no MAC":       "token without a MAC",
		"register cert trailing":  "non-zero padding",
		"MAC'd reg cert trailing": "non-zero padding",
		"not-online with cert":    "73 trailing bytes after LOOKUP_RESULT",
		"v6-sized register":       "REGISTER of 304 bytes",
		"MAC'd unregister short":  "truncated",
		"unregister without app":  "truncated",
		"MAC'd unreg without app": "truncated",
		"long unregister":         "1 trailing bytes after UNREGISTER",
		"MAC'd CHALLENGE":         "MAC'd CHALLENGE",
		"CHALLENGE, MAC flag on":  "MAC'd CHALLENGE",
		"CHALLENGE without coo":   "truncated",
		"short CHALLENGE":         "truncated",
		"long CHALLENGE":          "1 trailing bytes after CHALLENGE",
		"CHALLENGE, two cookies":  "16 trailing bytes after CHALLENGE",
		"result cert trailing":    "1 trailing bytes after LOOKUP_RESULT",
		"MAC'd result cert trail": "1 trailing bytes after LOOKUP_RESULT",
		"offer cert trailing":     "1 trailing bytes after OFFER",
		"MAC'd offer cert trail":  "1 trailing bytes after OFFER",
		"hidden offer cert trail": "1 trailing bytes after OFFER",
		"result cert cut short":   "truncated",
		"MAC'd offer cert short":  "truncated",
	}
	// A certificate is certLen bytes or none: in REGISTER (41 without a
	// MAC, 42 with, 43 the largest), RESULT (45, 46 MAC'd) and OFFER (48,
	// 49 MAC'd, 50 hidden), whether the length byte alone is wrong or the
	// certificate is as long as it says.
	for _, i := range []int{0, 41, 42, 43, 45, 46, 47, 48, 49, 50} {
		for _, n := range []int{1, certLen - 1, certLen + 1, 255} {
			name := fmt.Sprintf("sample %d (%v): certificate length %d", i, samples[i].typ, n)
			at := ans(i).cert
			if samples[i].typ == msgRegister {
				at = reg(i).cert
			}
			cases[name] = with(valid(i), at, byte(n))
			why[name] = fmt.Sprintf("certificate of %d bytes, want 0 or %d", n, certLen)
			if n == 255 || (samples[i].typ == msgRegister && reg(i).end-len(samples[i].cert)+n > registerPaddedUntil) {
				continue // no room for so long a certificate
			}
			name += ", as long"
			cases[name] = changed(i, func(m *message) { m.cert = certN(n, 1) })
			why[name] = fmt.Sprintf("certificate of %d bytes, want 0 or %d", n, certLen)
		}
	}
	for name := range why {
		if _, ok := cases[name]; !ok {
			t.Errorf("reason for %q, which is no case", name)
		}
	}
	for name, b := range cases {
		if m, err := decode(b); err == nil {
			t.Errorf("%s: decode(% x) = %+v, want an error", name, b, m)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v does not wrap ErrMalformed", name, err)
		} else if w, ok := why[name]; ok && !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q, want it for %q", name, err, w)
		}
	}
	// Every strict prefix of every valid message is truncated.
	for _, m := range sampleMessages() {
		b := m.encode(nil)
		for n := range len(b) {
			if _, err := decode(b[:n]); err == nil {
				t.Errorf("%v truncated to %d of %d bytes decoded", m.typ, n, len(b))
			}
		}
	}
}

// FuzzDecode checks that decode never panics, and that whatever it accepts
// re-encodes to the very same bytes, so that no two encodings mean the same
// message.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.encode(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{0xD0, 1, 2})
	f.Add([]byte{0xD0, protocolVersion, 5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 6, 0})
	f.Add([]byte{0xD0, protocolVersion, 7, flagMAC, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := m.encode(nil); !bytes.Equal(again, b) {
			t.Fatalf("decode accepted % x but it re-encodes as % x", b, again)
		}
	})
}

// fuzzSeed is a file of testdata/fuzz/FuzzDecode: a message of every type
// and shape that decode accepts, or one a step away from one that it must
// refuse, which starts the fuzzer past the version check and deep in
// decode.
type fuzzSeed struct {
	name  string
	b     []byte
	valid bool // decode accepts b
}

// fuzzSeeds are the files TestWriteFuzzSeeds writes. The directory holds
// others too, written by hand: REGISTERs of versions 2, 3, 4 and 6, which
// decode refuses at the version byte.
func fuzzSeeds() []fuzzSeed {
	s := sampleMessages()
	enc := func(i int) []byte { return s[i].encode(nil) }
	changed := func(i int, f func(m *message)) []byte {
		m := s[i]
		f(&m)
		return m.encode(nil)
	}
	with := func(b []byte, at int, v ...byte) []byte {
		copy(b[at:], v) // b is always fresh from encode
		return b
	}
	ok := func(name string, i int) fuzzSeed { return fuzzSeed{name, enc(i), true} }
	bad := func(name string, b []byte) fuzzSeed { return fuzzSeed{name, b, false} }
	return []fuzzSeed{
		ok("REGISTER", 1),
		ok("REGISTER_mac", 14),
		ok("REGISTER_relayed", 19),
		ok("REGISTER_relayed_mac", 18),
		ok("REGISTER_token", 32),
		ok("REGISTER_token_hidden_mac", 33),
		ok("REGISTER_hidden_relayed", 34),
		ok("REGISTER_cookie_cert", 41),
		ok("REGISTER_cookie_token_cert_mac", 42),
		ok("REGISTER_largest_mac", 43),
		ok("REGISTER_largest_no_mac", 44),
		bad("REGISTER_truncated", enc(1)[:registerLen-1]),
		bad("REGISTER_bad_option", with(enc(0), registerLayout(s[0]).options, 2)),
		bad("REGISTER_bad_token_length", with(enc(32), registerLayout(s[32]).token, tokenLen+1)),
		bad("REGISTER_token_no_mac", changed(32, func(m *message) { m.hasMAC = false })),
		bad("REGISTER_token_mac_stripped", with(enc(32), 3, 0)),
		bad("REGISTER_mac_dirty_padding", with(enc(14), registerLen-macLen-1, 1)),
		bad("REGISTER_mac_stripped", with(enc(14), 3, 0)),
		bad("REGISTER_bad_cert_length", with(enc(41), registerLayout(s[41]).cert, certLen-1)),
		bad("REGISTER_cert_dirty_padding", with(enc(41), registerLayout(s[41]).end, 1)),
		ok("CHALLENGE", 39),
		ok("CHALLENGE_max_txid", 40),
		bad("CHALLENGE_mac", changed(39, func(m *message) { m.hasMAC, m.mac = true, mac16(0) })),
		bad("CHALLENGE_truncated", enc(39)[:challengeLen-1]),
		bad("CHALLENGE_trailing", append(enc(39), 0)),
		ok("REGISTERED", 3),
		ok("REGISTERED_relay_mac", 20),
		ok("REGISTERED_max_relays_mac", 21),
		bad("REGISTERED_with_mac_flag", with(enc(3), 3, flagMAC)),
		bad("REGISTERED_relay_expiry_zero", changed(20, func(m *message) { m.hasMAC, m.expiry = false, 0 })),
		bad("REGISTERED_relays_truncated", enc(20)[:len(enc(20))-macLen-1]),
		ok("REFUSED", 5),
		ok("REFUSED_mac", 23),
		ok("REFUSED_token_mac", 35),
		ok("LOOKUP", 6),
		ok("LOOKUP_mac", 16),
		ok("LOOKUP_max_app_mac", 51),
		bad("LOOKUP_dirty_padding", with(enc(6), (lookupFixedLen+lookupLen)/2, 1)),
		ok("LOOKUP_RESULT", 9),
		ok("LOOKUP_RESULT_relayed_mac", 24),
		ok("LOOKUP_RESULT_not_online_mac", 25),
		ok("LOOKUP_RESULT_hidden_mac", 36),
		ok("LOOKUP_RESULT_hidden_no_relayed", 37),
		ok("LOOKUP_RESULT_cert", 45),
		ok("LOOKUP_RESULT_cert_largest_mac", 46),
		ok("LOOKUP_RESULT_cert_hidden_mac", 47),
		bad("LOOKUP_RESULT_bad_cert_length", changed(45, func(m *message) { m.cert = certN(certLen+1, 5) })),
		bad("LOOKUP_RESULT_cert_trailing", append(enc(45), 0)),
		bad("LOOKUP_RESULT_not_online_cert", append(enc(7), append([]byte{certLen}, cert72(5)...)...)),
		ok("OFFER", 11),
		ok("OFFER_relayed", 27),
		ok("OFFER_relayed_mac", 26),
		ok("OFFER_hidden_mac", 38),
		ok("OFFER_cert", 48),
		ok("OFFER_cert_largest_mac", 49),
		ok("OFFER_cert_hidden", 50),
		bad("OFFER_mac_stripped", with(enc(26), 3, 0)),
		bad("OFFER_bad_cert_length", changed(48, func(m *message) { m.cert = certN(1, 8) })),
		bad("OFFER_cert_trailing_mac", append(append(enc(49)[:answerLayout(s[49]).end:answerLayout(s[49]).end], 0), s[49].mac[:]...)),
		ok("UNREGISTER", 13),
		ok("UNREGISTER_mac", 17),
		ok("UNREGISTER_max_app_mac", 53),
		bad("UNREGISTER_no_app", enc(13)[:headerLen+8]),
		ok("OFFER_ACK", 28),
		ok("OFFER_ACK_mac", 29),
		ok("OFFER_ACK_app", 52),
		bad("OFFER_ACK_dirty_padding", with(enc(28), offerAckLen-1, 1)),
		bad("OFFER_ACK_mac_stripped", with(enc(29), 3, 0)),
		bad("OFFER_ACK_truncated", enc(28)[:offerAckLen-1]),
		ok("DELIVERED", 30),
		ok("DELIVERED_mac", 31),
		bad("DELIVERED_mac_stripped", with(enc(31), 3, 0)),
		bad("DELIVERED_trailing", append(enc(30), 0)),
	}
}

// fuzzFile is the fuzz corpus file of one []byte argument.
func fuzzFile(b []byte) string { return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b) }

// parseFuzzFile is the argument of a corpus file of FuzzDecode.
func parseFuzzFile(text string) ([]byte, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a corpus file of one value")
	}
	lit, isPrefixed := strings.CutPrefix(lines[1], "[]byte(")
	lit, isClosed := strings.CutSuffix(lit, ")")
	if !isPrefixed || !isClosed {
		return nil, fmt.Errorf("not a []byte: %.40s", lines[1])
	}
	s, err := strconv.Unquote(lit)
	return []byte(s), err
}

// TestFuzzDecodeSeeds checks the seed corpus of FuzzDecode: every seed of
// fuzzSeeds is on disk as it encodes now, in this version, and decode
// accepts it or not as the seed says; every other file is a corpus file.
// A change to the encoding makes it fail until the corpus is rewritten:
//
//	P2PCOMPAT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./rendezvous
func TestFuzzDecodeSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	generated := map[string]bool{}
	for _, s := range fuzzSeeds() {
		if generated[s.name] {
			t.Errorf("two seeds named %s", s.name)
		}
		generated[s.name] = true
		equal(t, s.b[1], protocolVersion, "version byte of seed %s", s.name)
		m, err := decode(s.b)
		switch {
		case s.valid && err != nil:
			t.Errorf("seed %s: %v", s.name, err)
		case s.valid && !bytes.Equal(m.encode(nil), s.b):
			t.Errorf("seed %s re-encodes differently", s.name)
		case !s.valid && err == nil:
			t.Errorf("seed %s decodes, as %+v", s.name, m)
		}
		disk, err := os.ReadFile(filepath.Join(dir, s.name))
		if err != nil || string(disk) != fuzzFile(s.b) {
			t.Errorf("seed %s is missing or stale (%v); rewrite the corpus: P2PCOMPAT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./rendezvous", s.name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	noError(t, err, "read %s", dir)
	for _, e := range entries {
		if generated[e.Name()] {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		noError(t, err, "read %s", e.Name())
		if _, err := parseFuzzFile(string(text)); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// TestWriteFuzzSeeds rewrites the seeds of testdata/fuzz/FuzzDecode that
// fuzzSeeds makes. It only runs when asked:
//
//	P2PCOMPAT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./rendezvous
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("P2PCOMPAT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set P2PCOMPAT_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	noError(t, os.MkdirAll(dir, 0o755), "create %s", dir)
	for _, s := range fuzzSeeds() {
		noError(t, os.WriteFile(filepath.Join(dir, s.name), []byte(fuzzFile(s.b)), 0o644), "write %s", s.name)
	}
}

func TestMACIsHMACSHA256(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := newMacer()
	for n := range maxMessageLen + 1 {
		var k [32]byte
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		h := hmac.New(sha256.New, k[:])
		h.Write(msg)
		want := h.Sum(nil)[:macLen]
		got := x.sum(&k, msg)
		if !bytes.Equal(got[:], want) {
			t.Fatalf("MAC of %d bytes: got % x, want % x", n, got, want)
		}
	}
}

func TestMACSignVerify(t *testing.T) {
	x := newMacer()
	k := key(7)
	m := message{typ: msgLookup, txID: 1, steamID: 5, appID: 480, target: 6, sessionID: 7, hasMAC: true}
	b := m.encode(nil)
	x.sign(b, &k)
	if !x.verify(b, &k) {
		t.Fatal("a signed message does not verify")
	}
	other := key(8)
	if x.verify(b, &other) {
		t.Fatal("verified under another key")
	}
	for i := range len(b) * 8 {
		b[i/8] ^= 1 << (i % 8)
		if x.verify(b, &k) {
			t.Fatalf("verified with bit %d flipped", i)
		}
		b[i/8] ^= 1 << (i % 8)
	}
	if x.verify(b[:macLen-1], &k) {
		t.Fatal("verified a datagram shorter than a MAC")
	}
	if n := testing.AllocsPerRun(100, func() { x.verify(b, &k) }); n != 0 {
		t.Errorf("verify allocates %v times", n)
	}
}

func TestDeriveMACKey(t *testing.T) {
	curve := ecdh.X25519()
	client, err := curve.GenerateKey(crand.Reader)
	noError(t, err, "client key")
	server, err := curve.GenerateKey(crand.Reader)
	noError(t, err, "server key")
	pub := func(k *ecdh.PrivateKey) [32]byte { return [32]byte(k.PublicKey().Bytes()) }

	atClient, err := deriveMACKey(client, pub(server), 76561197960265729)
	noError(t, err, "derive at the client")
	atServer, err := deriveMACKey(server, pub(client), 76561197960265729)
	noError(t, err, "derive at the server")
	equal(t, atClient, atServer, "key at both ends")
	other, err := deriveMACKey(server, pub(client), 76561197960265730)
	noError(t, err, "derive for another SteamID")
	if other == atServer {
		t.Fatal("the key does not depend on the SteamID")
	}
	// A low-order point gives the all-zero secret that anyone can compute.
	if _, err := deriveMACKey(server, [32]byte{}, 1); err == nil {
		t.Fatal("derived a key from the zero point")
	}
}

// BenchmarkWireCodec encodes and decodes every sample message once per
// iteration: the rendezvous protocol's codec.
func BenchmarkWireCodec(b *testing.B) {
	msgs := sampleMessages()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		for i := range msgs {
			if _, err := decode(msgs[i].encode(buf[:0])); err != nil {
				b.Fatal(err)
			}
		}
	}
}

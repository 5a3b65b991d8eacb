package rendezvous

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
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
		{typ: msgLookup, txID: 7, steamID: 5, target: 6, sessionID: 0xdeadbeef},
		{typ: msgLookupResult, txID: 8, target: 6, status: LookupNotOnline},
		{typ: msgLookupResult, txID: 9, target: 6, status: LookupOtherApp},
		{typ: msgLookupResult, txID: 10, target: 6, status: LookupOK, publicKey: key(3), addrs: []netip.AddrPort{v4a, v4b}},
		{typ: msgLookupResult, txID: 11, target: 6, status: LookupOK, publicKey: key(3), addrs: maxAddrs(maxCandidates)},
		{typ: msgOffer, txID: 12, steamID: 5, publicKey: key(4), sessionID: 99, addrs: []netip.AddrPort{v4a}},
		{typ: msgOffer, txID: 13, steamID: 5, publicKey: key(4), sessionID: 99, addrs: maxAddrs(maxCandidates)},
		{typ: msgUnregister, txID: 14, steamID: 5},
		{typ: msgRegister, txID: 15, steamID: 5, appID: 730, publicKey: key(2), addrs: maxAddrs(MaxLocalAddrs), hasMAC: true, mac: mac16(1)},
		{typ: msgRegister, txID: 16, steamID: 5, appID: 730, publicKey: key(2), hasMAC: true, mac: mac16(2)},
		{typ: msgLookup, txID: 17, steamID: 5, target: 6, sessionID: 0xdeadbeef, hasMAC: true, mac: mac16(3)},
		{typ: msgUnregister, txID: 18, steamID: 5, hasMAC: true, mac: mac16(4)},
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
		{typ: msgOfferAck, txID: 29, steamID: 6, requester: 5, sessionID: 99},
		{typ: msgOfferAck, txID: 30, steamID: 6, requester: 5, sessionID: 99, hasMAC: true, mac: mac16(13)},
		{typ: msgDelivered, txID: 31, target: 6, sessionID: 99},
		{typ: msgDelivered, txID: 32, target: 6, sessionID: 1<<64 - 1, hasMAC: true, mac: mac16(14)},
		// 33-: tokens, hidden addresses.
		{typ: msgRegister, txID: 33, steamID: 5, appID: 730, publicKey: key(2), token: tok52(1)},
		{typ: msgRegister, txID: 34, steamID: 5, appID: 730, publicKey: key(2), addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), hideAddress: true, token: tok52(2), hasMAC: true, mac: mac16(15)},
		{typ: msgRegister, txID: 35, steamID: 5, appID: 730, publicKey: key(2), relayed: []netip.AddrPort{v4a}, hideAddress: true},
		{typ: msgRefused, txID: 36, reason: RefuseTokenWrongApp, hasMAC: true, mac: mac16(16)},
		{typ: msgLookupResult, txID: 37, target: 6, status: LookupOK, publicKey: key(3), relayed: []netip.AddrPort{v4a}, hasMAC: true, mac: mac16(17)},
		{typ: msgLookupResult, txID: 38, target: 6, status: LookupOK, publicKey: key(3)},
		{typ: msgOffer, txID: 39, steamID: 5, publicKey: key(4), sessionID: 99, relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true, mac: mac16(18)},
	}
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
	// The largest of each, MAC'd, exactly as the constants say.
	for _, m := range []message{
		{typ: msgLookupResult, status: LookupOK, addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true},
		{typ: msgOffer, addrs: maxAddrs(maxCandidates), relayed: maxAddrs(MaxRelayedAddrs), hasMAC: true},
	} {
		want := maxResultLen
		if m.typ == msgOffer {
			want = maxOfferLen
		}
		equal(t, len(m.encode(nil)), want, "largest %v", m.typ)
	}
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
	// The largest registration, MAC'd, fits.
	largest := message{typ: msgRegister, addrs: maxAddrs(MaxLocalAddrs), relayed: maxAddrs(MaxRelayedAddrs), token: tok52(0), hideAddress: true, hasMAC: true}
	b := largest.encode(nil)
	equal(t, len(b), registerLen, "largest REGISTER")
	got, err := decode(b)
	noError(t, err, "decode the largest REGISTER")
	equal(t, got, largest, "the largest REGISTER, decoded")
	// The smallest registration still covers the largest answer to it.
	reg := (&message{typ: msgRegister, publicKey: key(1)}).encode(nil)
	registered := (&message{typ: msgRegistered, publicKey: key(2), addrs: maxAddrs(1), expiry: 1, relays: maxRelays(MaxRelays), hasMAC: true}).encode(nil)
	refused := (&message{typ: msgRefused, reason: RefuseServerFull, hasMAC: true}).encode(nil)
	equal(t, len(registered), maxRegisteredLen, "largest REGISTERED")
	if len(registered) > len(reg) || len(refused) > len(reg) {
		t.Errorf("answers of %d and %d bytes to a %d-byte registration", len(registered), len(refused), len(reg))
	}
}

// A DELIVERED goes to the requester, MAC'd if the requester authenticates,
// whatever the sender of the OFFER_ACK that caused it does; the smallest
// OFFER_ACK, without a MAC, still covers the largest DELIVERED, with one.
func TestOfferAckCoversDelivered(t *testing.T) {
	ack := (&message{typ: msgOfferAck}).encode(nil)
	macd := (&message{typ: msgOfferAck, steamID: 1<<64 - 1, requester: 1<<64 - 1, sessionID: 1<<64 - 1, hasMAC: true}).encode(nil)
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
	valid := func(i int) []byte { return sampleMessages()[i].encode(nil) }
	with := func(b []byte, at int, v byte) []byte {
		b = bytes.Clone(b)
		b[at] = v
		return b
	}
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
		"unknown type":            with(valid(0), 2, 0x7f),
		"type zero":               with(valid(0), 2, 0),
		"header only register":    valid(0)[:headerLen],
		"truncated register":      valid(1)[:len(valid(1))-1],
		"trailing byte":           append(valid(0), 0),
		"too many local addrs":    with(valid(0), headerLen+8+4+32, MaxLocalAddrs+1),
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
		"too many relayed":        with(valid(18), headerLen+8+4+32+1+MaxLocalAddrs*maxAddrLen, MaxRelayedAddrs+1),
		"offer too many relayed":  with(valid(26), len(valid(26))-macLen-1-MaxRelayedAddrs*maxAddrLen, MaxRelayedAddrs+1),
		"offer without relayed":   valid(11)[:len(valid(11))-1],
		"result without relayed":  valid(9)[:len(valid(9))-1],
		"relayed port zero":       append(valid(26)[:len(valid(26))-macLen-2:len(valid(26))-macLen-2], append([]byte{0, 0}, make([]byte, macLen)...)...),
		"short lookup":            valid(6)[:lookupLen-1],
		"long lookup":             append(valid(6), 0),
		"lookup padding":          with(valid(6), lookupLen-1, 1),
		"unknown status":          with(valid(7), headerLen+8, 3),
		"not-online with body":    append(valid(7), make([]byte, 32)...),
		"ok addrs cut short":      with(valid(9), headerLen+8+1+32, 1),
		"offer addrs cut short":   with(valid(12), headerLen+8+32+8, 1),
		"unknown option":          with(valid(0), headerLen+8+4+32+1+1, 2),
		"token of 1 byte":         with(valid(0), headerLen+8+4+32+1+1+1, 1),
		"token of 51 bytes":       with(valid(0), headerLen+8+4+32+1+1+1, tokenLen-1),
		"token of 53 bytes":       with(valid(32), headerLen+8+4+32+1+1+1, tokenLen+1),
		"token of 255 bytes":      with(valid(32), headerLen+8+4+32+1+1+1, 255),
		"token, no room":          with(valid(33), headerLen+8+4+32+1+MaxLocalAddrs*maxAddrLen+1+MaxRelayedAddrs*maxAddrLen+1, 255),
		"offer too many addrs":    with(valid(11), headerLen+8+32+8, maxCandidates+1),
		"oversized":               make([]byte, maxMessageLen+1),
		"register padding":        with(valid(0), registerLen-1, 1),
		"short register":          valid(0)[:registerLen-1],
		"long register":           append(valid(0), 0),
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
		"MAC'd unregister short":  valid(17)[:headerLen+8+macLen-1],
		"MAC'd unregister long":   append(valid(17), 0),
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
	}
	for name, b := range cases {
		if m, err := decode(b); err == nil {
			t.Errorf("%s: decode(% x) = %+v, want an error", name, b, m)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v does not wrap ErrMalformed", name, err)
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
	m := message{typ: msgLookup, txID: 1, steamID: 5, target: 6, sessionID: 7, hasMAC: true}
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

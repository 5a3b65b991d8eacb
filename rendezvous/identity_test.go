package rendezvous

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// A registration that would take a table slot or a key agreement needs the
// cookie of its source: without it, or with one for another source, ID or
// key, or one two epochs old, it is challenged, and costs one HMAC. The
// cookie of the previous epoch still works.
func TestTableCookies(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	a := newKeyedClient(t, tab, 1)
	withCookie := func(c [cookieLen]byte) []byte {
		return signedBytes(message{typ: msgRegister, txID: regTx.Add(1), steamID: 1, appID: 480, publicKey: a.pub, cookie: c}, a.key)
	}
	agreements := tab.keyAgreements
	req := withCookie([cookieLen]byte{})
	out := tab.handle(req, addrA, t0, nil)
	notLarger(t, out, req)
	m, to := only(t, out)
	equal(t, [3]any{m.typ, m.publicKey, to}, [3]any{msgChallenge, tab.pub, addrA}, "answer to a registration without a cookie")
	good := m.cookie
	equal(t, good, tab.cookie(addrA, 1, &a.pub, cookieEpochOf(t0)), "the cookie")
	for name, c := range map[string][cookieLen]byte{
		"another source's": tab.cookie(addrB, 1, &a.pub, cookieEpochOf(t0)),
		"another ID's":     tab.cookie(addrA, 2, &a.pub, cookieEpochOf(t0)),
		"another key's":    tab.cookie(addrA, 1, ptr(key(9)), cookieEpochOf(t0)),
		"two epochs old":   tab.cookie(addrA, 1, &a.pub, cookieEpochOf(t0)-2),
	} {
		m, _ := only(t, tab.handle(withCookie(c), addrA, t0, nil))
		equal(t, m.typ, msgChallenge, "answer to a registration with %s cookie", name)
	}
	equal(t, [2]int{tab.len(), tab.keyAgreements - agreements}, [2]int{0, 0}, "registrations and key agreements before a good cookie")

	// The cookie of the previous epoch works.
	later := t0.Add(cookieEpoch)
	out = tab.handle(withCookie(good), addrA, later, nil)
	m, _ = only(t, out)
	equal(t, a.unseal(t, m, out[0].b).typ, msgRegistered, "answer with the previous epoch's cookie")
	equal(t, tab.keyAgreements-agreements, 1, "key agreements")
	// A refresh from the same address under the same key needs no cookie
	// and no key agreement.
	out = tab.handle(withCookie([cookieLen]byte{}), addrA, later, nil)
	m, _ = only(t, out)
	equal(t, a.unseal(t, m, out[0].b).typ, msgRegistered, "answer to a refresh without a cookie")
	// A move to another address does.
	m, _ = only(t, tab.handle(withCookie([cookieLen]byte{}), addrB, later, nil))
	equal(t, m.typ, msgChallenge, "answer to a move without a cookie")
	equal(t, [2]any{snapshot(tab, 1).observed, tab.keyAgreements - agreements}, [2]any{addrA, 1}, "A's address and the key agreements after it")
}

// A flood of registrations from forged sources, with bad MACs or none,
// under fresh keys, takes no table slot and no key agreement, and every
// answer is a CHALLENGE no larger than the registration.
func TestTableForgedRegistrationFloodCostsNothing(t *testing.T) {
	tab := newTestTable(time.Minute, 100)
	agreements := tab.keyAgreements
	for i := range 20000 {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i))
		m := message{typ: msgRegister, txID: uint64(i), steamID: uint64(1 + i%500), appID: 480, publicKey: key(byte(i))}
		m.publicKey[1] = byte(i >> 8)
		req := m.encode(nil)
		if i%2 == 1 {
			req = signedBytes(m, key(byte(i)))
		}
		out := tab.handle(req, from, t0, nil)
		notLarger(t, out, req)
		if got, _ := only(t, out); got.typ != msgChallenge {
			t.Fatalf("registration %d answered with a %v", i, got.typ)
		}
	}
	equal(t, [2]int{tab.len(), tab.keyAgreements - agreements}, [2]int{0, 0}, "registrations and key agreements after the flood")
	equal(t, tab.stats.challenges.Load(), uint64(20000), "challenges counted")
}

// With HidePresence, a SteamID registered under another AppID is another
// registration: squatting it there tells nothing about whether the player
// is online in its game, and changes nothing for that game.
func TestTableHidePresenceAcrossApps(t *testing.T) {
	answers := func(playerOnline bool) []msgType {
		tab := newTestTable(time.Minute, 10)
		tab.hidePresence = true
		player := newKeyedClient(t, tab, 1)
		if playerOnline {
			registerKeyed(t, tab, player, addrA, t0)
		}
		squatter := newKeyedClient(t, tab, 1)
		var got []msgType
		for _, req := range [][]byte{
			squatter.plainRegister(regTx.Add(1)),
			signedBytes(message{typ: msgRegister, txID: regTx.Add(1), steamID: 1, appID: 730, publicKey: squatter.pub}, squatter.key),
			signedBytes(message{typ: msgLookup, txID: 9, steamID: 1, appID: 730, target: 1, sessionID: 9}, squatter.key),
		} {
			if m, err := decode(req); err == nil && m.typ == msgRegister {
				m.appID = 730
				if !m.hasMAC {
					req = m.encode(nil)
				}
			}
			for _, m := range decodeOut(t, handle(tab, req, addrC, t0, nil)) {
				got = append(got, m.typ)
			}
		}
		if playerOnline {
			equal(t, snapshot(tab, 1).publicKey, player.pub, "the player's registration in its game")
			mustRegister(t, tab, 2, 480, addrB, t0)
			ms := decodeOut(t, handle(tab, lookupBytes(5, 2, 1, 9), addrB, t0, nil))
			equal(t, [2]any{ms[0].publicKey, ms[0].addrs[0]}, [2]any{player.pub, addrA}, "the player as its game finds it")
		}
		return got
	}
	equal(t, answers(true), answers(false), "what the squatter hears, the player online or not")
}

// End to end: a second registrant of a live SteamID is refused, and every
// lookup and offer keeps going to the first; the second gets no offer.
func TestSecondRegistrantGetsNothing(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t))
	a.register(t)
	b.register(t)
	for _, withKey := range []bool{true, false} {
		var opts []peerOption
		if withKey {
			opts = append(opts, keyed(t))
		}
		squatter := newPeer(t, srv, 1, 480, opts...)
		ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
		_, err := squatter.client.Register(ctx)
		cancel()
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Reason != RefuseIDInUse {
			t.Fatalf("the squatter's Register (key %v): %v, want a refusal for %v", withKey, err, RefuseIDInUse)
		}
		for i := range 20 {
			session := uint64(100*len(opts) + i + 1)
			res := b.lookup(t, 1, session)
			equal(t, [2]any{res.PublicKey, res.Addrs[0]}, [2]any{a.pub, a.addr}, "1 as B finds it")
			eventually(t, func() bool { _, ok := a.offerFor(session); return ok }, "the player to get B's offer")
		}
		if got := squatter.rec.gotOffers(); len(got) != 0 {
			t.Fatalf("the squatter got %d offers", len(got))
		}
		squatter.close()
	}
}

// Whatever the client sends, to the server or anyone, never carries its
// token, nor any part of it that a listener could lift.
func TestCapturedRegistrationsCarryNoToken(t *testing.T) {
	_, srv := startServer(t, ServerConfig{Secret: testSecret})
	tok, err := IssueToken(testSecret, 1, 480, time.Hour)
	noError(t, err, "IssueToken")
	raw, _ := decodeToken(tok)
	var wire captured
	a := newPeer(t, srv, 1, 480, keyed(t), capturing(&wire), withConfig(func(c *ClientConfig) {
		c.Token = tok
		c.RefreshInterval = 10 * time.Millisecond
	}))
	a.register(t)
	eventually(t, func() bool { return len(wire.all()) >= 6 }, "a few refreshes")
	regs := 0
	for _, d := range wire.all() {
		// The MAC half of the token is what proves it; any 8 bytes of it
		// in clear would be a leak.
		for i := 20; i+8 <= len(raw); i++ {
			if bytes.Contains(d, raw[i:i+8]) {
				t.Fatalf("a datagram carries token bytes %d..%d in clear", i, i+8)
			}
		}
		if m, err := decode(d); err == nil && m.typ == msgRegister {
			regs++
		}
	}
	if regs < 3 {
		t.Fatalf("only %d registrations captured", regs)
	}
}

// A source that receives, and so has cookies, still cannot make the server
// spend a key agreement on every registration it sends: past
// keyAgreementBurst it gets keyAgreementRate a second, and the registration
// of a player at another source is taken meanwhile.
func TestTableKeyAgreementsPerSourceBounded(t *testing.T) {
	tab := newTestTable(time.Minute, 100)
	tab.agreements = newRateLimiter(rateParams{keyAgreementRate, keyAgreementBurst}, rateParams{}, maxRateSources)
	agreements := tab.keyAgreements
	for i := range 200 {
		m := message{typ: msgRegister, txID: uint64(i + 1), steamID: uint64(1000 + i), appID: 480, publicKey: key(byte(i))}
		m.publicKey[1] = byte(i >> 8)
		// handle gives it the right cookie; the MAC is under a key nobody shares.
		handle(tab, signedBytes(m, key(byte(i))), addrC, t0.Add(time.Duration(i)*time.Millisecond), nil)
	}
	// 200 ms: the burst and what 0.2 s refills.
	equal(t, tab.keyAgreements-agreements, keyAgreementBurst, "key agreements for one source's 200 bad registrations")
	equal(t, tab.stats.rateLimited.Load(), uint64(200-keyAgreementBurst), "dropped over the limit")
	player := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, player, addrA, t0.Add(200*time.Millisecond))
}

// With Readers, several sockets share the server's port (SO_REUSEPORT on
// Linux): players spread over them and find each other as with one.
func TestServerReaders(t *testing.T) {
	if !reusePortSupported {
		t.Skip("one reader on this platform: SO_REUSEPORT readers are Linux only")
	}
	s, srv := startServer(t, ServerConfig{Readers: 4})
	equal(t, len(s.readers), 4, "readers")
	peers := make([]*peer, 24)
	for i := range peers {
		peers[i] = newPeer(t, srv, uint64(i+1), 480, keyed(t))
		peers[i].register(t)
	}
	for i, p := range peers {
		target := peers[(i+1)%len(peers)]
		res := p.lookup(t, target.id, uint64(100+i))
		equal(t, [2]any{res.Status, res.Addrs[0]}, [2]any{LookupOK, target.addr}, "peer %d's lookup of %d", p.id, target.id)
	}
	busy := 0
	for _, r := range s.readers {
		if r.datagrams.Load() > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Fatalf("24 sources all reached one of 4 readers")
	}
	_, err := NewServer(ServerConfig{Readers: -1})
	if !isConfigError(err) {
		t.Fatalf("Readers -1: %v, want a ConfigError", err)
	}
}

// A client that pins the server's key takes no other: answers in the
// server's name under another key, such as an impostor's that arrives
// first, are ignored, and nothing goes out MAC'd or encrypted under a key
// shared with it, so the token stays the player's. With the right key it
// registers as ever, MAC'd from its first registration on.
func TestPinnedServerKey(t *testing.T) {
	kp := newKeyPair(t)
	s, srv := startServer(t, ServerConfig{PrivateKey: kp.priv, Secret: testSecret})
	equal(t, s.PublicKey(), kp.pub, "the server's public key")
	tok, err := IssueToken(testSecret, 1, 480, time.Hour)
	noError(t, err, "IssueToken")
	var goodWire captured
	good := newPeer(t, srv, 1, 480, keyed(t), capturing(&goodWire), withConfig(func(c *ClientConfig) { c.Token, c.ServerKey = tok, kp.pub }))
	good.register(t)
	equal(t, authenticated(s, 1), true, "the pinned client authenticated")
	if first, err := decode(goodWire.all()[0]); err != nil || !first.hasMAC || first.token == nil {
		t.Fatalf("the pinned client's first registration: MAC %v, token %v (%v); want both", first.hasMAC, first.token != nil, err)
	}

	// An impostor's key: the real server's CHALLENGE brings a key the
	// client does not take.
	impostor := newKeyPair(t)
	var wire captured
	pinned := newPeer(t, srv, 2, 480, keyed(t), capturing(&wire), withConfig(func(c *ClientConfig) {
		c.Token, c.ServerKey = tok, impostor.pub
		c.RetransmitInterval = 5 * time.Millisecond
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = pinned.client.Register(ctx)
	cancel()
	if err == nil {
		t.Fatal("a client pinned to another key registered")
	}
	sent := wire.all()
	if len(sent) < 3 {
		t.Fatalf("only %d registrations sent", len(sent))
	}
	// Here the server is the stranger: the client pins impostor.pub.
	withServer, err := deriveMACKey(s.tab.priv, pinned.pub, 2)
	noError(t, err, "derive")
	for _, d := range sent {
		m, err := decode(d)
		noError(t, err, "decode")
		if m.hasMAC && newMacer().verify(d, &withServer) {
			t.Fatalf("the pinned client sent a %v MAC'd under the key it shares with a server it does not pin", m.typ)
		}
	}
}

// A player that kept its key and restarts gets its registration back at
// once: from the same address its first, unauthenticated, registration is
// challenged rather than dropped, and a MAC'd one with the cookie is taken
// even when its txID is older than the last (the clock stepped back), since
// the cookie shows it is no replay from elsewhere. From another address
// alike. A captured registration replayed, without a cookie for now, is
// still only challenged.
func TestTableKeptKeyRestart(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	p := newKeyedClient(t, tab, 1)
	_, captured := registerKeyed(t, tab, p, addrA, t0)
	last := snapshot(tab, 1).lastTx
	for _, from := range []netip.AddrPort{addrA, addrC} {
		m, _ := only(t, tab.handle(p.plainRegister(last-100), from, t0, nil))
		equal(t, m.typ, msgChallenge, "answer to the restarted instance's first registration from %v", from)
		req := signedBytes(message{typ: msgRegister, txID: last - 50, steamID: 1, appID: 480, publicKey: p.pub, cookie: m.cookie}, p.key)
		out := tab.handle(req, from, t0, nil)
		m, _ = only(t, out)
		equal(t, p.unseal(t, m, out[0].b).typ, msgRegistered, "answer to its MAC'd registration with the cookie and an older txID, from %v", from)
		equal(t, snapshot(tab, 1).observed, from, "where the player is")
	}
	onlyRegistered(t, tab, tab.handle(captured, addrB, t0, nil), captured, addrB)
	equal(t, snapshot(tab, 1).observed, addrC, "where the player is after a replay")
}

// SetCertificate renews the certificate a registration carries: the next
// lookup of the player finds the new one, and a certificate that cannot
// be decoded changes nothing.
func TestSetCertificate(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	_, signer, err := ed25519.GenerateKey(crand.Reader)
	noError(t, err, "backend key")
	kp := newKeyPair(t)
	first, err := IssueCertificate(signer, 1, 480, kp.pub, time.Hour)
	noError(t, err, "IssueCertificate")
	second, err := IssueCertificate(signer, 1, 480, kp.pub, 2*time.Hour)
	noError(t, err, "IssueCertificate")
	a := newPeer(t, srv, 1, 480, func(p *peer, c *ClientConfig) {
		c.PrivateKey, c.PublicKey, c.Certificate = kp.priv, kp.pub, first
		p.pub = kp.pub
	})
	b := newPeer(t, srv, 2, 480, keyed(t))
	a.register(t)
	b.register(t)
	want, _ := DecodeCertificate(first)
	equal(t, b.lookup(t, 1, 1).Certificate, want, "A's certificate as B finds it")
	if err := a.client.SetCertificate("garbage"); err == nil {
		t.Fatal("SetCertificate took garbage")
	}
	noError(t, a.client.SetCertificate(second), "SetCertificate")
	want, _ = DecodeCertificate(second)
	eventually(t, func() bool { return bytes.Equal(b.lookup(t, 1, 2).Certificate, want) }, "B to find A's new certificate")
}

// An old instance of the player, still running under a key that retired
// when the new one took over, does not take the registration back, even
// with a fresh cookie, on a server without tokens.
func TestTableRetiredInstanceDoesNotTakeOver(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	old := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, old, addrA, t0)
	silent(t, handle(tab, old.unregister(regTx.Add(1)), addrA, t0, nil), "old's unregistration")
	current := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, current, addrB, t0)
	out := handle(tab, old.register(regTx.Add(1)), addrA, t0, nil) // a fresh cookie, a MAC under the retired key
	m, _ := only(t, out)
	equal(t, old.unseal(t, m, out[0].b).reason, RefuseIDInUse, "answer to the old instance")
	equal(t, snapshot(tab, 1).publicKey, current.pub, "1's key")
}

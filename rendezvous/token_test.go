package rendezvous

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testSecret = []byte("the game's back end and the rendezvous share this")

// textToken is the text form of a decoded token.
func textToken(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestIssueToken(t *testing.T) {
	before := time.Now()
	tok, err := IssueToken(testSecret, 76561197960265729, 480, 90*time.Minute+time.Millisecond)
	noError(t, err, "IssueToken")
	after := time.Now()
	equal(t, len(tok), 70, "length of a token")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	noError(t, err, "base64url")
	equal(t, len(b), tokenLen, "decoded length")
	equal(t, binary.BigEndian.Uint64(b[0:8]), uint64(76561197960265729), "SteamID")
	equal(t, binary.BigEndian.Uint32(b[8:12]), uint32(480), "AppID")
	exp := int64(binary.BigEndian.Uint64(b[12:20]))
	// Rounded up to a second: never shorter than asked for.
	if lo, hi := before.Add(90*time.Minute+time.Millisecond), after.Add(90*time.Minute+time.Second+time.Millisecond); exp < lo.Unix() || exp > hi.Unix() {
		t.Fatalf("expiry %d, want within [%d, %d]", exp, lo.Unix(), hi.Unix())
	}
	// The MAC is HMAC-SHA256 under the secret of the label and the fields,
	// as documented for back ends in other languages.
	h := hmac.New(sha256.New, testSecret)
	h.Write([]byte("p2pcompat registration token v1"))
	h.Write(b[:20])
	equal(t, b[20:], h.Sum(nil), "MAC")

	for name, f := range map[string]func() (string, error){
		"nil secret":   func() (string, error) { return IssueToken(nil, 1, 480, time.Minute) },
		"empty secret": func() (string, error) { return IssueToken([]byte{}, 1, 480, time.Minute) },
		"zero SteamID": func() (string, error) { return IssueToken(testSecret, 0, 480, time.Minute) },
		"zero ttl":     func() (string, error) { return IssueToken(testSecret, 1, 480, 0) },
		"negative ttl": func() (string, error) { return IssueToken(testSecret, 1, 480, -time.Second) },
	} {
		if tok, err := f(); err == nil {
			t.Errorf("%s: IssueToken = %q, want an error", name, tok)
		}
	}
}

func TestTokenChecker(t *testing.T) {
	c := newTokenChecker(testSecret)
	now := time.Unix(1_700_000_000, 0)
	exp := uint64(now.Unix() + 60)
	good := makeToken(testSecret, 7, 480, exp)
	flipped := bytes.Clone(good)
	flipped[tokenLen-1] ^= 1
	fieldFlipped := bytes.Clone(good)
	fieldFlipped[7] ^= 1 // the SteamID, under the old MAC
	for _, tc := range []struct {
		name   string
		tok    []byte
		id     uint64
		app    uint32
		now    time.Time
		reason RefuseReason
	}{
		{"good", good, 7, 480, now, 0},
		{"missing", nil, 7, 480, now, RefuseTokenMissing},
		{"short", good[:tokenLen-1], 7, 480, now, RefuseTokenInvalid},
		{"long", append(bytes.Clone(good), 0), 7, 480, now, RefuseTokenInvalid},
		{"bad MAC", flipped, 7, 480, now, RefuseTokenInvalid},
		{"altered SteamID", fieldFlipped, 6, 480, now, RefuseTokenInvalid},
		{"other secret", makeToken([]byte("another secret"), 7, 480, exp), 7, 480, now, RefuseTokenInvalid},
		{"expiry zero", makeToken(testSecret, 7, 480, 0), 7, 480, now, RefuseTokenInvalid},
		{"wrong id", good, 8, 480, now, RefuseTokenWrongID},
		{"wrong app", good, 7, 730, now, RefuseTokenWrongApp},
		{"wrong id and app", good, 8, 730, now, RefuseTokenWrongID},
		{"just expired, within the skew", good, 7, 480, time.Unix(int64(exp), 0).Add(TokenClockSkew - time.Second), 0},
		{"expired beyond the skew", good, 7, 480, time.Unix(int64(exp), 0).Add(TokenClockSkew), RefuseTokenExpired},
		{"expired and wrong id", makeToken(testSecret, 7, 480, uint64(now.Unix()-3600)), 8, 480, now, RefuseTokenExpired},
	} {
		reason, ok := c.check(tc.tok, tc.id, tc.app, tc.now)
		equal(t, [2]any{reason, ok}, [2]any{tc.reason, tc.reason == 0}, "%s", tc.name)
	}
}

func TestDecodeToken(t *testing.T) {
	good, err := IssueToken(testSecret, 7, 480, time.Hour)
	noError(t, err, "IssueToken")
	b, err := decodeToken(good)
	noError(t, err, "decode")
	equal(t, textToken(b), good, "round trip")
	if b, err := decodeToken(""); b != nil || err != nil {
		t.Fatalf(`decodeToken("") = %v, %v; want no token`, b, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	last := good[len(good)-1]
	// 52 bytes are 69 and a third characters: the last one carries 2 bits,
	// and a different last character with the same 2 bits is another
	// spelling of the same token, which strict decoding refuses.
	sloppy := good[:len(good)-1] + string(base64URLAlphabet[strings.IndexByte(base64URLAlphabet, last)|1])
	if sloppy == good {
		sloppy = good[:len(good)-1] + string(base64URLAlphabet[strings.IndexByte(base64URLAlphabet, last)|2])
	}
	for name, s := range map[string]string{
		"padded":         good + "=",
		"standard":       base64.RawStdEncoding.EncodeToString(append(bytes.Repeat([]byte{0xfb}, 24), raw[24:]...)),
		"short":          good[:len(good)-1],
		"long":           good + "A",
		"space":          " " + good[1:],
		"garbage":        strings.Repeat("!", 70),
		"non-canonical":  sloppy,
		"expiry zero":    textToken(makeToken(testSecret, 7, 480, 0)),
		"expiry 1<<63":   textToken(makeToken(testSecret, 7, 480, 1<<63)),
		"hex":            "0123456789abcdef",
		"other encoding": base64.StdEncoding.EncodeToString(raw),
	} {
		if b, err := decodeToken(s); err == nil {
			t.Errorf("%s: decodeToken(%q) = % x, want an error", name, s, b)
		} else if !errors.Is(err, errToken) {
			t.Errorf("%s: error %v does not wrap errToken", name, err)
		}
	}
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// FuzzToken checks that the token decoder never panics, that what it
// accepts has one spelling only, and that checking whatever it accepts
// never admits a token not made under the secret.
func FuzzToken(f *testing.F) {
	good, err := IssueToken(testSecret, 7, 480, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add(good + "=")
	f.Add(good[:69])
	f.Add(textToken(makeToken(testSecret, 7, 480, 0)))
	f.Add(textToken(makeToken([]byte("other"), 1<<64-1, 1<<32-1, 1<<63-1)))
	f.Add(strings.Repeat("A", 70))
	f.Add(strings.Repeat("_", 70))
	c := newTokenChecker(testSecret)
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := decodeToken(s)
		if err != nil {
			if !errors.Is(err, errToken) {
				t.Fatalf("error %v does not wrap errToken", err)
			}
			return
		}
		if s == "" {
			if b != nil {
				t.Fatalf("no token decoded as % x", b)
			}
			return
		}
		if again := textToken(b); again != s {
			t.Fatalf("decodeToken accepted %q but it re-encodes as %q", s, again)
		}
		tk, ok := parseToken(b)
		if !ok {
			t.Fatalf("decodeToken accepted %q, which parseToken refuses", s)
		}
		want := makeToken(testSecret, tk.steamID, tk.appID, tk.expiry)
		_, admitted := c.check(b, tk.steamID, tk.appID, now)
		if admitted && !bytes.Equal(b, want) {
			t.Fatalf("admitted %q, which is not the secret's token for its fields", s)
		}
		if bytes.Equal(b, want) && !admitted && tk.expiry > uint64(now.Unix()) {
			t.Fatalf("refused the secret's own unexpired token %q", s)
		}
	})
}

// tokenPeer is a keyed peer that registers with the token tok (text), or
// none if tok is "", and the AppID app.
func tokenPeer(t *testing.T, srv netip.AddrPort, id uint64, app uint32, tok string) *peer {
	t.Helper()
	return newPeer(t, srv, id, app, keyed(t), withConfig(func(c *ClientConfig) { c.Token = tok }))
}

// Each kind of bad token is refused with its reason, end to end through
// Client.Register (with a key pair: a token travels only encrypted under
// it), and a client without a key pair is refused for having none.
func TestTokensEndToEnd(t *testing.T) {
	_, srv := startServer(t, ServerConfig{Secret: testSecret})
	mint := func(id uint64, app uint32) string {
		tok, err := IssueToken(testSecret, id, app, time.Hour)
		noError(t, err, "IssueToken")
		return tok
	}
	garbage := textToken(bytes.Repeat([]byte{0x5a}, tokenLen))
	foreign, err := IssueToken([]byte("another server's secret"), 3, 480, time.Hour)
	noError(t, err, "IssueToken")
	// Expired by more than the skew allows.
	expired := textToken(makeToken(testSecret, 4, 480, uint64(time.Now().Add(-TokenClockSkew-time.Minute).Unix())))
	badMAC, _ := base64.RawURLEncoding.DecodeString(mint(5, 480))
	badMAC[30] ^= 0x40
	for _, tc := range []struct {
		name   string
		id     uint64
		tok    string
		reason RefuseReason
	}{
		{"missing", 1, "", RefuseTokenMissing},
		{"garbage", 2, garbage, RefuseTokenInvalid},
		{"another secret", 3, foreign, RefuseTokenInvalid},
		{"expired", 4, expired, RefuseTokenExpired},
		{"bad MAC", 5, textToken(badMAC), RefuseTokenInvalid},
		// Player 2 registering with the token minted for player 1.
		{"another player's", 2, mint(1, 480), RefuseTokenWrongID},
		{"another game's", 6, mint(6, 730), RefuseTokenWrongApp},
	} {
		for _, withKey := range []bool{false, true} {
			if !withKey && tc.tok != "" {
				continue // a configuration error, see TestTokenConfig
			}
			opts := []peerOption{withConfig(func(c *ClientConfig) { c.Token = tc.tok })}
			if withKey {
				opts = append(opts, keyed(t))
			}
			p := newPeer(t, srv, tc.id, 480, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
			_, err := p.client.Register(ctx)
			cancel()
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Reason != tc.reason || !errors.Is(err, ErrRegistrationRefused) {
				t.Fatalf("%s (key %v): Register error %v, want a *RefusedError with %v", tc.name, withKey, err, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.reason.String()) {
				t.Fatalf("%s: error %q does not say why", tc.name, err)
			}
			p.close()
		}
	}

	// A good token admits its player, who can then be found.
	a := tokenPeer(t, srv, 1, 480, mint(1, 480))
	b := tokenPeer(t, srv, 2, 480, mint(2, 480))
	a.register(t)
	b.register(t)
	equal(t, b.lookup(t, 1, 9).Status, LookupOK, "lookup of a player with a token")
	// Nobody registered as 1 in the meantime, and 2's attempt under 1's
	// token did not take 2's place either.
	equal(t, a.client.Observed(), a.addr, "A's registration")
}

// An open server ignores tokens, and a client's token that cannot be
// decoded is a configuration error naming the field.
func TestTokenConfig(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	tok, err := IssueToken(testSecret, 1, 480, time.Hour)
	noError(t, err, "IssueToken")
	tokenPeer(t, srv, 1, 480, tok).register(t)
	tokenPeer(t, srv, 2, 480, "").register(t)

	for _, bad := range []string{"not a token", tok + "A", tok[:69], "?" + tok[1:], tok} {
		// The last is a good token, but without a PrivateKey to encrypt it under.
		_, err := NewClient(ClientConfig{SteamID: 1, Server: srv, Send: func([]byte, netip.AddrPort) error { return nil }, Token: bad})
		if !isConfigError(err) || !strings.Contains(err.Error(), "ClientConfig.Token") {
			t.Errorf("token %q: NewClient error %v, want a ConfigError naming ClientConfig.Token", bad, err)
		}
	}
}

// The token travels only encrypted, under the key the client shares with
// the server, in registrations MAC'd under it: the first registration,
// sent before the client knows the server's key, carries none. SetToken
// renews it, in a new registration (a new txID, the encryption's nonce).
func TestSetToken(t *testing.T) {
	first := makeToken(testSecret, 10, 480, 1_700_000_000)
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) {
		cfg.Token = textToken(first)
	})
	go c.Register(context.Background())
	m := f.next(msgRegister)
	equal(t, [2]any{m.hasMAC, m.token}, [2]any{false, []byte(nil)}, "the registration before the server's key is known")
	cookie := [cookieLen]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	feed(t, c, message{typ: msgChallenge, txID: m.txID, publicKey: srv[0].pub, cookie: cookie})
	k := sharedKey(t, srv[0], kp, 10)
	clear := func(m message) []byte {
		t.Helper()
		if m.token == nil {
			return nil
		}
		if !m.hasMAC {
			t.Fatal("a token in a registration without a MAC")
		}
		if bytes.Contains(m.token, first[20:]) {
			t.Fatal("the token's MAC in clear")
		}
		p := bytes.Clone(m.token)
		cryptToken(p, &k, m.txID)
		return p
	}
	s := f.nextNewSent(msgRegister, m.txID)
	checkMAC(t, s, srv[0], kp, 10)
	m = s.m
	equal(t, [2]any{m.cookie, clear(m)}, [2]any{cookie, first}, "the cookie, and the token decrypted")

	if err := c.SetToken("garbage"); err == nil {
		t.Fatal("SetToken took garbage")
	}
	renewed, err := IssueToken(testSecret, 10, 480, time.Hour)
	noError(t, err, "IssueToken")
	noError(t, c.SetToken(renewed), "SetToken")
	want, _ := decodeToken(renewed)
	for !bytes.Equal(clear(m), want) {
		old := m.txID
		m = f.next(msgRegister)
		if m.txID == old && !bytes.Equal(clear(m), first) {
			t.Fatal("a retransmission with another token under the same txID")
		}
	}
	noError(t, c.SetToken(""), "SetToken to none")
	for m.token != nil {
		m = f.next(msgRegister)
	}
}

// On the table: refusals for tokens change nothing, are MAC'd when the
// registration was, and are no larger than the registration.
func TestTableTokens(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	tab.tokens = newTokenChecker(testSecret)
	a := newKeyedClient(t, tab, 1)
	tok := makeToken(testSecret, 1, 480, uint64(t0.Add(time.Hour).Unix()))
	reg := func(txID uint64, token []byte, signed bool) []byte {
		m := message{typ: msgRegister, txID: txID, steamID: 1, appID: 480, publicKey: a.pub, token: token}
		if signed {
			return signedBytes(m, a.key)
		}
		return m.encode(nil)
	}
	// Without a token, refused, unauthenticated or not; a token in a
	// registration without a MAC, in clear, does not even decode.
	silent(t, handle(tab, reg(1, tok, false), addrA, t0, nil), "a registration with a token in clear")
	for _, signed := range []bool{false, true} {
		req := reg(1, nil, signed)
		out := handle(tab, req, addrA, t0, nil)
		notLarger(t, out, req)
		m, _ := only(t, out)
		if signed {
			m = a.unseal(t, m, out[0].b)
		}
		equal(t, m, message{typ: msgRefused, txID: 1, reason: RefuseTokenMissing}, "answer (MAC'd %v)", signed)
	}
	equal(t, tab.len(), 0, "registrations")
	// With it, registered; an attempt with a bad token then changes nothing.
	out := handle(tab, reg(3, tok, true), addrA, t0, nil)
	equal(t, a.unseal(t, decodeOut(t, out)[0], out[0].b).typ, msgRegistered, "answer to an authenticated registration with a token")
	before := snapshot(tab, 1)
	expired := makeToken(testSecret, 1, 480, uint64(t0.Add(-time.Hour).Unix()))
	out = handle(tab, reg(4, expired, true), addrB, t0.Add(time.Second), nil)
	equal(t, a.unseal(t, decodeOut(t, out)[0], out[0].b).reason, RefuseTokenExpired, "answer to a registration with an expired token")
	equal(t, snapshot(tab, 1), before, "registration after the refusal")
	// A token of another player's, with a key of one's own: refused.
	b := newKeyedClient(t, tab, 2)
	m2 := signedBytes(message{typ: msgRegister, txID: 5, steamID: 2, appID: 480, publicKey: b.pub, token: tok}, b.key)
	out = handle(tab, m2, addrC, t0, nil)
	equal(t, b.unseal(t, decodeOut(t, out)[0], out[0].b).reason, RefuseTokenWrongID, "answer to a registration under another's token")
	equal(t, snapshot(tab, 2).present, false, "2 registered")
}

// No refusal for a token is larger than the registration that caused it,
// whatever the registration's bits.
func TestTableTokenRefusalsNeverAmplify(t *testing.T) {
	tab := newTestTable(time.Minute, 10, 480)
	tab.tokens = newTokenChecker(testSecret)
	c := newKeyedClient(t, tab, 1)
	exp := uint64(t0.Add(time.Hour).Unix())
	for _, tok := range [][]byte{
		nil,
		tok52(1),
		makeToken(testSecret, 2, 480, exp),
		makeToken(testSecret, 1, 730, exp),
		makeToken(testSecret, 1, 480, uint64(t0.Add(-time.Hour).Unix())),
	} {
		m := message{typ: msgRegister, txID: 1, steamID: 1, appID: 480, publicKey: c.pub, addrs: maxAddrs(MaxLocalAddrs), token: tok}
		reqs := [][]byte{signedBytes(m, c.key)}
		if tok == nil {
			reqs = append(reqs, m.encode(nil))
		}
		for _, req := range reqs {
			out := handle(tab, req, addrA, t0, nil)
			m, _ := only(t, out)
			equal(t, m.typ, msgRefused, "answer to a registration with a bad token")
			notLarger(t, out, req)
			for _, f := range flips(req) {
				notLarger(t, handle(tab, f, addrA, t0, nil), f)
			}
		}
	}
}

package rendezvous

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// These tests, like client_test.go's, play the server by hand.

// registerFake takes a keyed fake client through Register: the first,
// unauthenticated answer tells the server's key, and the answer to the
// authenticated registration, made by answer from it, completes. It returns
// the key the client shares with the server and the txID of the
// authenticated registration.
func registerFake(t *testing.T, c *Client, f *fakeNet, kp, srv keyPair, answer func(tx uint64) message) ([32]byte, uint64) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	first := f.next(msgRegister)
	feed(t, c, message{typ: msgRegistered, txID: first.txID, publicKey: srv.pub, addrs: []netip.AddrPort{v4a}})
	second := f.nextNew(msgRegister, first.txID)
	k := sharedKey(t, srv, kp, 10)
	feedSigned(t, c, answer(second.txID), k)
	noError(t, await(t, done, "Register to return"), "Register")
	return k, second.txID
}

func registeredWith(srv keyPair, expiry uint64, relays ...relayCred) func(uint64) message {
	return func(tx uint64) message {
		return message{typ: msgRegistered, txID: tx, publicKey: srv.pub, addrs: []netip.AddrPort{v4a}, expiry: expiry, relays: relays}
	}
}

type relayRecorder struct {
	mu    sync.Mutex
	calls [][]Relay
}

func (r *relayRecorder) record(rs []Relay) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, rs)
}

func (r *relayRecorder) got() [][]Relay {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]Relay(nil), r.calls...)
}

func TestClientRelays(t *testing.T) {
	var rec relayRecorder
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) {
		cfg.OnRelays = rec.record
		cfg.RefreshInterval = time.Millisecond
	})
	expiry := uint64(time.Now().Add(10 * time.Minute).Unix())
	relayA := netip.MustParseAddrPort("198.18.0.10:3478")
	relayB := netip.MustParseAddrPort("198.18.0.11:3478")
	k, tx := registerFake(t, c, f, kp, srv[0], registeredWith(srv[0], expiry, relayCred{relayA, pw20(1)}, relayCred{relayB, pw20(2)}))

	user := strconv.FormatUint(expiry, 10) + ":10:480"
	want := []Relay{
		{Addr: relayA, Username: user, Password: base64.StdEncoding.EncodeToString(ptr(pw20(1))[:]), Expires: time.Unix(int64(expiry), 0)},
		{Addr: relayB, Username: user, Password: base64.StdEncoding.EncodeToString(ptr(pw20(2))[:]), Expires: time.Unix(int64(expiry), 0)},
	}
	equal(t, c.Relays(), want, "Relays()")
	// Register has returned, so OnRelays has been called.
	equal(t, rec.got(), [][]Relay{want}, "OnRelays calls")

	// A refresh with the same credentials changes nothing.
	refresh := f.nextNew(msgRegister, tx)
	feedSigned(t, c, registeredWith(srv[0], expiry, relayCred{relayA, pw20(1)}, relayCred{relayB, pw20(2)})(refresh.txID), k)
	equal(t, len(rec.got()), 1, "OnRelays calls after a refresh with the same credentials")

	// New credentials, and then no relays at all, are both news.
	refresh = f.nextNew(msgRegister, refresh.txID)
	feedSigned(t, c, registeredWith(srv[0], expiry+60, relayCred{relayA, pw20(3)})(refresh.txID), k)
	got := rec.got()
	equal(t, len(got), 2, "OnRelays calls after new credentials")
	equal(t, got[1], c.Relays(), "the new relays")
	equal(t, got[1][0].Username, strconv.FormatUint(expiry+60, 10)+":10:480", "the new username")
	refresh = f.nextNew(msgRegister, refresh.txID)
	feedSigned(t, c, registeredWith(srv[0], 0)(refresh.txID), k)
	equal(t, len(rec.got()), 3, "OnRelays calls after the relays went")
	equal(t, [2]int{len(rec.got()[2]), len(c.Relays())}, [2]int{0, 0}, "relays after they went")

	// Only an authenticated answer speaks about relays: a forged one,
	// unMAC'd or under another key, is dropped.
	refresh = f.nextNew(msgRegister, refresh.txID)
	feed(t, c, registeredWith(srv[0], expiry, relayCred{relayA, pw20(9)})(refresh.txID))
	feedSigned(t, c, registeredWith(srv[0], expiry, relayCred{relayA, pw20(9)})(refresh.txID), key(66))
	equal(t, len(c.Relays()), 0, "relays after forged answers")
	equal(t, len(rec.got()), 3, "OnRelays calls after forged answers")
}

func ptr[T any](v T) *T { return &v }

// The client renews credentials before they expire, even with a long
// refresh interval.
func TestClientRefreshesBeforeCredentialsExpire(t *testing.T) {
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) { cfg.RefreshInterval = time.Hour })
	before := time.Now()
	expiry := uint64(before.Add(11 * time.Second).Unix()) // 10 to 11 s from now
	registerFake(t, c, f, kp, srv[0], registeredWith(srv[0], expiry, relayCred{v4b, pw20(1)}))
	c.mu.Lock()
	next := c.refreshAt
	c.mu.Unlock()
	if next.After(before.Add(6*time.Second)) || next.Before(before.Add(4*time.Second)) {
		t.Fatalf("refresh in %v, want about half the credentials' 10 to 11 s", next.Sub(before))
	}

	// Credentials that look expired already (the server's clock is ahead)
	// do not make the client refresh in a loop.
	c2, f2, _, kp2, srv2 := newKeyedFakeClient(t, func(cfg *ClientConfig) { cfg.RefreshInterval = time.Hour })
	registerFake(t, c2, f2, kp2, srv2[0], registeredWith(srv2[0], 1, relayCred{v4b, pw20(1)}))
	c2.mu.Lock()
	next = c2.refreshAt
	c2.mu.Unlock()
	if d := time.Until(next); d < minCredentialRefresh/2 {
		t.Fatalf("refresh in %v for expired credentials, want about %v", d, minCredentialRefresh)
	}
}

// Once the client shares a key with the server, nothing unauthenticated
// from the server's address is taken: not offers, not lookup results, not
// refusals, not answers to registrations under the known key.
func TestClientDropsUnauthenticatedServerMessages(t *testing.T) {
	c, f, rec, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) { cfg.RefreshInterval = time.Millisecond })
	// Before the client knows the server's key, it takes what comes.
	offer := message{typ: msgOffer, txID: 1, steamID: 30, publicKey: key(30), sessionID: 1, addrs: []netip.AddrPort{v4a}, relayed: []netip.AddrPort{v4b}}
	feed(t, c, offer)
	equal(t, rec.gotOffers(), []Offer{{From: 30, PublicKey: key(30), SessionID: 1, Addrs: []netip.AddrPort{v4a}, Relayed: []netip.AddrPort{v4b}}}, "offers before authentication")

	k, tx := registerFake(t, c, f, kp, srv[0], registeredWith(srv[0], 0))
	wrong := key(66)
	offer.sessionID = 2
	feed(t, c, offer)
	feedSigned(t, c, offer, wrong)
	equal(t, len(rec.gotOffers()), 1, "offers after unauthenticated ones")
	offer.sessionID = 3
	feedSigned(t, c, offer, k)
	equal(t, len(rec.gotOffers()), 2, "offers after an authenticated one")
	equal(t, rec.gotOffers()[1].SessionID, uint64(3), "the authenticated offer")

	c.Lookup(20, 1)
	l := f.next(msgLookup)
	res := message{typ: msgLookupResult, txID: l.txID, target: 20, status: LookupNotOnline}
	feed(t, c, res)
	feedSigned(t, c, res, wrong)
	equal(t, len(rec.gotResults()), 0, "lookup results after unauthenticated ones")
	feedSigned(t, c, message{typ: msgLookupResult, txID: l.txID, target: 20, status: LookupOK, publicKey: key(20), addrs: []netip.AddrPort{v4a}, relayed: []netip.AddrPort{v6a}}, k)
	equal(t, rec.gotResults(), []LookupResult{{Target: 20, Status: LookupOK, PublicKey: key(20), Addrs: []netip.AddrPort{v4a}, Relayed: []netip.AddrPort{v6a}}}, "lookup results")

	// A refresh is answered only by a MAC'd answer: unMAC'd ones under the
	// known key, refusals among them, are not the server's.
	refresh := f.nextNew(msgRegister, tx)
	feed(t, c, message{typ: msgRegistered, txID: refresh.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v6a}})
	feed(t, c, message{typ: msgRefused, txID: refresh.txID, reason: RefuseServerFull})
	feedSigned(t, c, message{typ: msgRefused, txID: refresh.txID, reason: RefuseServerFull}, wrong)
	c.mu.Lock()
	inFlight, observed := c.reg != nil && c.reg.txID == refresh.txID, c.observed
	c.mu.Unlock()
	equal(t, [2]any{inFlight, observed}, [2]any{true, v4a}, "refresh in flight, observed address")
	feedSigned(t, c, message{typ: msgRegistered, txID: refresh.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v6a}}, k)
	equal(t, c.Observed(), v6a, "observed address after the authenticated answer")
}

// A client without a key pair takes only unauthenticated messages, as
// before authentication existed: it cannot check a MAC.
func TestClientWithoutKeyDropsMACdMessages(t *testing.T) {
	c, _, rec := newFakeClient(t, nil)
	offer := message{typ: msgOffer, txID: 1, steamID: 30, publicKey: key(30), sessionID: 1, addrs: []netip.AddrPort{v4a}}
	feedSigned(t, c, offer, key(1))
	equal(t, len(rec.gotOffers()), 0, "MAC'd offers")
	feed(t, c, offer)
	equal(t, len(rec.gotOffers()), 1, "offers")
}

func TestClientSetRelayed(t *testing.T) {
	c, f, _, kp, srv := newKeyedFakeClient(t, func(cfg *ClientConfig) { cfg.RetransmitInterval = time.Hour })
	r1 := netip.MustParseAddrPort("198.18.0.10:50000")
	r2 := netip.MustParseAddrPort("198.18.0.10:50002")
	r3 := netip.MustParseAddrPort("198.18.0.11:50004")
	mapped := netip.AddrPortFrom(netip.AddrFrom16(r1.Addr().As16()), r1.Port())
	// Before registering: stored, sent with the first registration.
	c.SetRelayed([]netip.AddrPort{r1})
	done := make(chan error, 1)
	go func() {
		_, err := c.Register(context.Background())
		done <- err
	}()
	first := f.next(msgRegister)
	equal(t, first.relayed, []netip.AddrPort{r1}, "relayed in the first registration")
	feed(t, c, message{typ: msgRegistered, txID: first.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}})
	second := f.nextNew(msgRegister, first.txID)
	equal(t, second.relayed, []netip.AddrPort{r1}, "relayed in the authenticated registration")

	// While registering: the registration in flight starts over with them.
	c.SetRelayed([]netip.AddrPort{r2})
	third := f.nextNew(msgRegister, second.txID)
	equal(t, [2]any{third.relayed, third.hasMAC}, [2]any{[]netip.AddrPort{r2}, true}, "relayed, MAC'd, in the restarted registration")
	k := sharedKey(t, srv[0], kp, 10)
	feedSigned(t, c, message{typ: msgRegistered, txID: second.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}}, k)
	select {
	case err := <-done:
		t.Fatalf("Register returned (%v) on the answer to a superseded registration", err)
	default:
	}
	feedSigned(t, c, message{typ: msgRegistered, txID: third.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}}, k)
	noError(t, await(t, done, "Register"), "Register")

	// Registered: a new registration at once, even with an hour to the
	// next refresh; unusable addresses and repeats dropped, and no more
	// than MaxRelayedAddrs kept.
	c.SetRelayed([]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:5"), mapped, r1, r3, r2, {}})
	fourth := f.nextNew(msgRegister, third.txID)
	equal(t, [2]any{fourth.relayed, fourth.hasMAC}, [2]any{[]netip.AddrPort{r1, r3}, true}, "relayed, MAC'd, in the new registration")
	if fourth.txID <= third.txID {
		t.Fatalf("new registration %d not newer than %d", fourth.txID, third.txID)
	}
	feedSigned(t, c, message{typ: msgRegistered, txID: fourth.txID, publicKey: srv[0].pub, addrs: []netip.AddrPort{v4a}}, k)

	// The same set again changes nothing; nil withdraws them.
	c.SetRelayed([]netip.AddrPort{r1, r3})
	c.mu.Lock()
	idle := c.reg == nil
	c.mu.Unlock()
	equal(t, idle, true, "no registration for an unchanged set")
	c.SetRelayed(nil)
	fifth := f.nextNew(msgRegister, fourth.txID)
	equal(t, len(fifth.relayed), 0, "relayed after withdrawing them")
}

// turnCredentialsFor is coturn's computation of the shared-secret
// credentials, written out independently of relay.go.
func turnCredentialsFor(secret string, expiry int64, steamID uint64, appID uint32) (username, password string) {
	username = strconv.FormatInt(expiry, 10) + ":" + strconv.FormatUint(steamID, 10) + ":" + strconv.FormatUint(uint64(appID), 10)
	h := hmac.New(sha1.New, []byte(secret))
	h.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(h.Sum(nil))
}

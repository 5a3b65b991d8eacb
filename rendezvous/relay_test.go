package rendezvous

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

// These tests run a real server, with its STUN answers and its embedded
// TURN relay, against pion's own STUN and TURN clients on loopback sockets.

func quietPion() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.Writer = io.Discard
	return f
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

func TestSTUNBinding(t *testing.T) {
	for _, relay := range []string{"", "127.0.0.1"} {
		_, srv := startServer(t, ServerConfig{RelayIP: relay})
		conn, err := net.DialUDP("udp4", nil, udpAddr(srv))
		noError(t, err, "dial")
		c, err := stun.NewClient(conn)
		noError(t, err, "stun client")
		for _, req := range []*stun.Message{
			stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint),
			stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewSoftware("p2pcompat test")),
		} {
			var got stun.XORMappedAddress
			var answerErr error
			err = c.Do(req, func(e stun.Event) {
				if answerErr = e.Error; answerErr != nil {
					return
				}
				if e.Message.Type != stun.BindingSuccess {
					answerErr = errors.New("answered with " + e.Message.Type.String())
					return
				}
				answerErr = got.GetFrom(e.Message)
			})
			noError(t, err, "relay %q: binding", relay)
			noError(t, answerErr, "relay %q: binding answer", relay)
			equal(t, got.String(), conn.LocalAddr().String(), "relay %q: XOR-MAPPED-ADDRESS", relay)
		}
		noError(t, c.Close(), "close")
	}
}

// A Binding request is answered once, relay or not, and nothing is
// answered that is not a well-formed Binding request.
func TestSTUNAnsweredOnceAndOnlyWhenWellFormed(t *testing.T) {
	for _, relay := range []string{"", "127.0.0.1"} {
		_, srv := startServer(t, ServerConfig{RelayIP: relay})
		raw := rawSocket(t)
		send := func(d []byte) {
			t.Helper()
			_, err := raw.WriteToUDPAddrPort(d, srv)
			noError(t, err, "write")
		}
		buf := make([]byte, 2048)
		// next reads a datagram: a rendezvous message (nil), or STUN.
		next := func() *stun.Message {
			t.Helper()
			raw.SetReadDeadline(time.Now().Add(eventuallyWithin))
			n, _, err := raw.ReadFromUDPAddrPort(buf)
			noError(t, err, "read")
			if buf[0] == 0xD0 {
				return nil
			}
			m := &stun.Message{Raw: bytes.Clone(buf[:n])}
			noError(t, m.Decode(), "decode")
			return m
		}

		good := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		badFingerprint := bytes.Clone(good.Raw)
		badFingerprint[len(badFingerprint)-1] ^= 1
		badCookie := bytes.Clone(good.Raw)
		badCookie[4] ^= 1
		badLength := append(bytes.Clone(good.Raw), 0, 0, 0, 0)
		response := stun.MustBuild(stun.TransactionID, stun.BindingSuccess, stun.Fingerprint)
		for _, d := range [][]byte{badFingerprint, badCookie, badLength, good.Raw[:19], response.Raw, good.Raw} {
			send(d)
		}
		m := next()
		if m == nil || m.Type != stun.BindingSuccess || m.TransactionID != good.TransactionID {
			t.Fatalf("relay %q: first answer %v, want the Binding success for the good request", relay, m)
		}
		// The server handles a socket's datagrams in order: nothing more
		// came from the requests before the barrier.
		send(regBytes(0xba77, 77, 480, key(77)))
		if m := next(); m != nil {
			t.Fatalf("relay %q: a second STUN answer %v", relay, m)
		}
		if relay == "" {
			continue
		}
		// The relay handles what it is handed in order too: had it been
		// handed the Binding request, its answer would come before its
		// answer to this unauthenticated allocation.
		alloc := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.Fingerprint)
		send(alloc.Raw)
		m = next()
		if m == nil || m.TransactionID != alloc.TransactionID || m.Type.Class != stun.ClassErrorResponse {
			t.Fatalf("relay %q: answer %v, want the relay's refusal of the allocation", relay, m)
		}
		var code stun.ErrorCodeAttribute
		noError(t, code.GetFrom(m), "error code")
		equal(t, code.Code, stun.CodeUnauthorized, "relay's answer to an unauthenticated allocation")
	}
}

// turnClient is a pion TURN client on its own loopback socket.
func turnClient(t *testing.T, server netip.AddrPort, username, password string) (*turn.Client, net.PacketConn) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	noError(t, err, "listen")
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: server.String(),
		Conn:           conn,
		Username:       username,
		Password:       password,
		RTO:            50 * time.Millisecond,
		LoggerFactory:  quietPion(),
	})
	noError(t, err, "turn client")
	noError(t, c.Listen(), "turn listen")
	t.Cleanup(func() {
		c.Close()
		conn.Close()
	})
	return c, conn
}

// allocate allocates on the relay, and deallocates when the test ends.
func allocate(t *testing.T, c *turn.Client) net.PacketConn {
	t.Helper()
	relayed, err := c.Allocate()
	noError(t, err, "allocate")
	t.Cleanup(func() { relayed.Close() })
	return relayed
}

// sharedTURNClient is a pion TURN client on p's socket, for the relay r,
// as the peer library runs one: the rendezvous client and the relay see
// the same address, and what the rendezvous client does not take goes to
// the TURN client.
func (p *peer) sharedTURNClient(t *testing.T, r Relay) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: r.Addr.String(),
		Conn:           p.conn,
		Username:       r.Username,
		Password:       r.Password,
		RTO:            50 * time.Millisecond,
		LoggerFactory:  quietPion(),
	})
	noError(t, err, "turn client")
	f := func(b []byte, from netip.AddrPort) { c.HandleInbound(b, udpAddr(from)) }
	p.other.Store(&f)
	t.Cleanup(c.Close)
	return c
}

// relayRoundTrip sends a datagram each way between relayed and a plain
// loopback socket, through the relay.
func relayRoundTrip(t *testing.T, relayed net.PacketConn) {
	t.Helper()
	peer := rawSocket(t)
	peerAddr := peer.LocalAddr().(*net.UDPAddr)
	// The first write also makes the permission for the peer.
	_, err := relayed.WriteTo([]byte("to the peer"), peerAddr)
	noError(t, err, "write through the relay")
	buf := make([]byte, 1500)
	peer.SetReadDeadline(time.Now().Add(eventuallyWithin))
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	noError(t, err, "read at the peer")
	equal(t, string(buf[:n]), "to the peer", "datagram at the peer")
	equal(t, from.String(), relayed.LocalAddr().String(), "the peer sees the relayed address")

	_, err = peer.WriteToUDPAddrPort([]byte("back"), from)
	noError(t, err, "write to the relayed address")
	relayed.SetReadDeadline(time.Now().Add(eventuallyWithin))
	n, src, err := relayed.ReadFrom(buf)
	noError(t, err, "read through the relay")
	equal(t, [2]string{string(buf[:n]), src.String()}, [2]string{"back", peerAddr.String()}, "datagram through the relay, and its source")
}

func TestEmbeddedRelay(t *testing.T) {
	s, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1"})
	var rec relayRecorder
	a := newPeer(t, srv, 1, 480, keyed(t), withConfig(func(c *ClientConfig) { c.OnRelays = rec.record }))
	a.register(t)
	relays := a.client.Relays()
	equal(t, rec.got(), [][]Relay{relays}, "OnRelays calls")
	equal(t, len(relays), 1, "relays")
	r := relays[0]
	equal(t, r.Addr, srv, "the embedded relay's address: RelayIP and the server's port")
	if !strings.HasSuffix(r.Username, ":1:480") || time.Until(r.Expires) < 12*time.Hour-time.Minute || time.Until(r.Expires) > 15*time.Hour+time.Minute {
		t.Fatalf("credentials %+v: want a username for SteamID 1 valid for about 12 hours", r)
	}

	// The relay runs on the rendezvous port, behind the same credentials.
	c := a.sharedTURNClient(t, r)
	mapped, err := c.SendBindingRequestTo(udpAddr(r.Addr))
	noError(t, err, "binding through pion's TURN client")
	equal(t, mapped.String(), a.addr.String(), "XOR-MAPPED-ADDRESS for pion's TURN client")
	relayed := allocate(t, c)
	equal(t, relayed.LocalAddr().(*net.UDPAddr).IP.String(), "127.0.0.1", "relayed address")
	// A relays to the users it has met only: B, on loopback, once A has
	// looked it up.
	b := newPeer(t, srv, 2, 480, keyed(t))
	b.register(t)
	equal(t, a.lookup(t, 2, 0xab).Status, LookupOK, "A's lookup of B")
	relayRoundTrip(t, relayed)
	equal(t, s.turn.AllocationCount(), 1, "allocations")

	// A wrong password is refused.
	wrong, _ := turnClient(t, r.Addr, r.Username, base64.StdEncoding.EncodeToString(make([]byte, 20)))
	if _, err := wrong.Allocate(); err == nil {
		t.Fatal("allocated with a wrong password")
	}
	// And so is a right one for another user.
	other, _ := turnClient(t, r.Addr, strings.TrimSuffix(r.Username, ":1")+":2", r.Password)
	if _, err := other.Allocate(); err == nil {
		t.Fatal("allocated with another user's password")
	}
	equal(t, s.turn.AllocationCount(), 1, "allocations after the refusals")
}

// With a given secret, credentials are checked against it and refused once
// expired.
func TestEmbeddedRelayRefusesExpiredCredentials(t *testing.T) {
	const secret = "operator secret"
	s, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1", TURNSecret: secret})
	expired, password := turnCredentialsFor(secret, time.Now().Add(-time.Second).Unix(), 1, 480)
	c, _ := turnClient(t, srv, expired, password)
	if _, err := c.Allocate(); err == nil {
		t.Fatal("allocated with expired credentials")
	}
	fresh, password := turnCredentialsFor(secret, time.Now().Add(time.Minute).Unix(), 1, 480)
	c, _ = turnClient(t, srv, fresh, password)
	allocate(t, c)
	equal(t, s.turn.AllocationCount(), 1, "allocations")
}

// externalRelay is a TURN server that knows nothing of this package but the
// shared secret, as coturn with use-auth-secret: a stand-in for an
// operator's fleet.
func externalRelay(t *testing.T, secret string) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	noError(t, err, "listen")
	ts, err := turn.NewServer(turn.ServerConfig{
		Realm:         "fleet.example",
		LoggerFactory: quietPion(),
		AuthHandler: func(username, realm string, _ net.Addr) ([]byte, bool) {
			ts, _, ok := strings.Cut(username, ":")
			expiry, err := strconv.ParseInt(ts, 10, 64)
			if !ok || err != nil || expiry < time.Now().Unix() {
				return nil, false
			}
			h := hmac.New(sha1.New, []byte(secret))
			h.Write([]byte(username))
			return turn.GenerateAuthKey(username, realm, base64.StdEncoding.EncodeToString(h.Sum(nil))), true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		}},
	})
	noError(t, err, "external relay")
	t.Cleanup(func() { ts.Close() })
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestExternalRelayCredentials(t *testing.T) {
	const secret = "fleet secret"
	fleet := externalRelay(t, secret)
	_, srv := startServer(t, ServerConfig{TURN: []string{fleet.String()}, TURNSecret: secret, RelayCredentialTTL: time.Minute})
	a := newPeer(t, srv, 76561197960265729, 480, keyed(t))
	a.register(t)
	relays := a.client.Relays()
	equal(t, len(relays), 1, "relays")
	r := relays[0]
	wantUser, wantPassword := turnCredentialsFor(secret, r.Expires.Unix(), 76561197960265729, 480)
	equal(t, [3]any{r.Addr, r.Username, r.Password}, [3]any{fleet, wantUser, wantPassword}, "the external relay and its credentials")
	if d := time.Until(r.Expires); d < 59*time.Second || d > 76*time.Second {
		t.Fatalf("credentials valid for %v, want a minute and a bit", d)
	}
	c, _ := turnClient(t, r.Addr, r.Username, r.Password)
	relayRoundTrip(t, allocate(t, c))
}

// The embedded relay and an external one side by side, under one secret.
func TestEmbeddedAndExternalRelays(t *testing.T) {
	const secret = "fleet secret"
	fleet := externalRelay(t, secret)
	_, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1", TURN: []string{fleet.String()}, TURNSecret: secret})
	a := newPeer(t, srv, 1, 480, keyed(t))
	a.register(t)
	relays := a.client.Relays()
	equal(t, [2]any{len(relays), relays[0].Addr}, [2]any{2, srv}, "relays, the embedded one first")
	equal(t, relays[1].Addr, fleet, "the external relay")
	for _, r := range relays {
		c, _ := turnClient(t, r.Addr, r.Username, r.Password)
		allocate(t, c)
	}
}

func TestRelayAllocationCap(t *testing.T) {
	s, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1", MaxRelayAllocations: 1})
	a := newPeer(t, srv, 1, 480, keyed(t))
	a.register(t)
	r := a.client.Relays()[0]
	c, _ := turnClient(t, r.Addr, r.Username, r.Password)
	first := allocate(t, c)
	c2, _ := turnClient(t, r.Addr, r.Username, r.Password)
	if _, err := c2.Allocate(); err == nil {
		t.Fatal("allocated beyond MaxRelayAllocations")
	}
	// Deallocating gives the place back.
	noError(t, first.Close(), "deallocate")
	eventually(t, func() bool { return s.turn.AllocationCount() == 0 }, "the deallocation")
	c3, _ := turnClient(t, r.Addr, r.Username, r.Password)
	allocate(t, c3)
}

// Only public peers are relayed to, unless the relay itself is advertised
// on a loopback or private address.
func TestTURNPermissions(t *testing.T) {
	for _, tc := range []struct {
		relay, peer string
		ok          bool
	}{
		{"198.18.0.1", "198.18.0.2", true},
		{"198.18.0.1", "127.0.0.1", false},
		{"198.18.0.1", "10.1.2.3", false},
		{"198.18.0.1", "192.168.1.1", false},
		{"198.18.0.1", "169.254.0.1", false},
		{"198.18.0.1", "224.0.0.1", false},
		{"198.18.0.1", "255.255.255.255", false},
		{"198.18.0.1", "0.0.0.0", false},
		{"198.18.0.1", "2001:db8::1", true},
		{"198.18.0.1", "::1", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "10.1.2.3", true},
		{"10.0.0.1", "10.1.2.3", true},
		{"10.0.0.1", "127.0.0.1", false},
	} {
		got := turnPermissions(netip.MustParseAddr(tc.relay))(nil, net.ParseIP(tc.peer))
		equal(t, got, tc.ok, "relay %s to %s", tc.relay, tc.peer)
	}
}

func TestServerValidatesRelayConfig(t *testing.T) {
	for field, cfg := range map[string]ServerConfig{
		"RelayIP":             {RelayIP: "not an address"},
		"RelayIP ":            {RelayIP: "2001:db8::1"},
		"RelayIP  ":           {RelayIP: "0.0.0.0"},
		"TURN[0]":             {TURN: []string{"no port"}, TURNSecret: "s"},
		"TURN[1]":             {TURN: []string{"127.0.0.1:3478", "127.0.0.1:0"}, TURNSecret: "s"},
		"TURNSecret":          {TURN: []string{"127.0.0.1:3478"}},
		"RelayCredentialTTL":  {RelayCredentialTTL: -1},
		"MaxRelayAllocations": {MaxRelayAllocations: -1},
	} {
		cfg.ListenAddr = "127.0.0.1:0"
		_, err := NewServer(cfg)
		if !isConfigError(err) || !strings.Contains(err.Error(), strings.TrimSpace(field)) {
			t.Errorf("bad %s: NewServer error %v, want a ConfigError naming the field", field, err)
		}
	}
	if _, err := NewServer(ServerConfig{ListenAddr: "127.0.0.1:0", TURN: []string{"[::1]:3478"}, TURNSecret: "s"}); err == nil {
		t.Error("NewServer accepted an IPv6 external relay")
	}
}

// A client's relayed addresses reach the peers that look it up, and those
// it looks up.
func TestRelayedAddressesTravel(t *testing.T) {
	s, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t))
	obsA, obsB := a.register(t), b.register(t)
	relayedA := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:50000"), netip.MustParseAddrPort("198.18.0.11:50002")}
	a.client.SetRelayed(relayedA)
	eventually(t, func() bool {
		s.tab.mu.Lock()
		defer s.tab.mu.Unlock()
		return len(s.tab.regs[regKey{steamID: 1}].relayed) == 2
	}, "A's registration with its relayed addresses")

	equal(t, b.lookup(t, 1, 0xb0), LookupResult{Target: 1, Status: LookupOK, PublicKey: a.pub, Addrs: a.candidates(obsA), Relayed: relayedA}, "B's lookup of A")
	equal(t, a.lookup(t, 2, 0xa0), LookupResult{Target: 2, Status: LookupOK, PublicKey: b.pub, Addrs: b.candidates(obsB)}, "A's lookup of B")
	eventually(t, func() bool { _, ok := b.offerFor(0xa0); return ok }, "B to get A's offer")
	offer, _ := b.offerFor(0xa0)
	equal(t, offer, Offer{From: 1, PublicKey: a.pub, SessionID: 0xa0, Addrs: a.candidates(obsA), Relayed: relayedA}, "A's offer")
}

// An offer forged in the server's name, from its address, is dropped by a
// client that authenticated; the server's own offers come through.
func TestForgedOfferDropped(t *testing.T) {
	_, srv := startServer(t, ServerConfig{})
	a := newPeer(t, srv, 1, 480, keyed(t))
	b := newPeer(t, srv, 2, 480, keyed(t))
	a.register(t)
	b.register(t)

	forged := message{typ: msgOffer, txID: 1, steamID: 66, publicKey: key(66), sessionID: 666, addrs: []netip.AddrPort{v4a}, relayed: []netip.AddrPort{v4b}}
	for _, d := range [][]byte{forged.encode(nil), signedBytes(forged, key(66))} {
		if !a.client.HandleInbound(d, srv) {
			t.Fatal("a rendezvous datagram from the server's address not consumed")
		}
	}
	b.client.Lookup(1, 0xb0)
	eventually(t, func() bool { _, ok := a.offerFor(0xb0); return ok }, "B's offer to reach A")
	for _, o := range a.rec.gotOffers() {
		if o.SessionID != 0xb0 {
			t.Fatalf("A took a forged offer %+v", o)
		}
	}
}

// Everything, the relay included, ends with Close.
func TestRelayGoroutinesEndOnClose(t *testing.T) {
	relayGone := func() bool {
		st := allStacks()
		return len(ourGoroutines()) == 0 && !strings.Contains(st, "turn/v2/internal/allocation.") && !strings.Contains(st, "turn/v2.(*Server)")
	}
	if !poll(relayGone) {
		t.Fatalf("earlier tests' goroutines never ended:\n%s", allStacks())
	}
	s, err := NewServer(ServerConfig{ListenAddr: "127.0.0.1:0", RelayIP: "127.0.0.1"})
	noError(t, err, "NewServer")
	srv := s.Addr().(*net.UDPAddr).AddrPort()
	a := newPeer(t, srv, 1, 480, keyed(t))
	a.register(t)
	r := a.client.Relays()[0]
	c, _ := turnClient(t, r.Addr, r.Username, r.Password)
	relayed, err := c.Allocate() // left allocated: Close must end it
	noError(t, err, "allocate")
	t.Cleanup(func() { relayed.Close() })
	a.close()
	equal(t, s.turn.AllocationCount(), 1, "allocations")

	noError(t, s.Close(), "Close")
	if !poll(relayGone) {
		t.Fatalf("the server's or the relay's goroutines outlived Close:\n%s", allStacks())
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// One player's credentials cannot take the embedded relay from everyone
// else: the player holds at most maxAllocationsPerUser allocations, its
// newest closing its oldest (so allocations left behind by a crash or a
// NAT rebinding cannot lock it out), and another player still allocates.
func TestRelayAllocationsPerPlayer(t *testing.T) {
	s, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1"})
	a := newPeer(t, srv, 1, 480, keyed(t))
	a.register(t)
	r := a.client.Relays()[0]
	for i := 0; i < 3*maxAllocationsPerUser; i++ {
		c, _ := turnClient(t, r.Addr, r.Username, r.Password)
		if _, err := c.Allocate(); err != nil {
			t.Fatalf("allocation %d of a player refused: %v", i, err)
		}
	}
	if open := s.stats.relayOpen.Load(); open != maxAllocationsPerUser {
		t.Fatalf("one player's credentials hold %d open allocations, want %d", open, maxAllocationsPerUser)
	}
	b := newPeer(t, srv, 2, 480, keyed(t))
	b.register(t)
	rb := b.client.Relays()[0]
	cb, _ := turnClient(t, rb.Addr, rb.Username, rb.Password)
	allocate(t, cb)
	if open := s.stats.relayOpen.Load(); open != maxAllocationsPerUser+1 {
		t.Fatalf("%d open allocations after another player's, want %d", open, maxAllocationsPerUser+1)
	}
}

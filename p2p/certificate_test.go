package p2p_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// vouchedPlayer is a player's identity key and the back end's certificate
// for its public half.
type vouchedPlayer struct {
	priv [32]byte
	pub  [32]byte
	cert string
}

func newVouchedPlayer(t *testing.T, backend ed25519.PrivateKey, id p2p.SteamID) vouchedPlayer {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := vouchedPlayer{priv: [32]byte(k.Bytes()), pub: [32]byte(k.PublicKey().Bytes())}
	if p.cert, err = rendezvous.IssueCertificate(backend, uint64(id), 480, p.pub, time.Hour); err != nil {
		t.Fatal(err)
	}
	return p
}

// With back-end-vouched keys, a rendezvous that gives out a key of its own
// for a player is found out and the session refused. The rendezvous here is
// one that Mallory runs, where Mallory registered as B under a key of her
// own, with B's real certificate, copied off the wire: A, pointed at it,
// is told B's SteamID comes with Mallory's key. Without the back end's key
// (the control) A's session to B goes to Mallory; with it, A's send fails
// with DestinationNotLoggedOn and Mallory hears nothing, and Mallory's
// own session request in B's name never reaches A's game. Between the
// honest B and A, on an honest rendezvous, certificates change nothing.
func TestSubstitutedKeyIsDetected(t *testing.T) {
	t.Parallel()
	pub, backend, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const aID, bID = p2p.SteamID(1), p2p.SteamID(2)
	a, b := newVouchedPlayer(t, backend, aID), newVouchedPlayer(t, backend, bID)
	server := func() string {
		srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv.Addr().String()
	}
	mk := func(addr string, id p2p.SteamID, edit func(*p2p.Config)) *p2p.Networking {
		t.Helper()
		cfg := p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: addr, ListenAddr: "127.0.0.1:0", ConnectTimeout: 2 * time.Second}
		edit(&cfg)
		n, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	vouched := func(p vouchedPlayer) func(*p2p.Config) {
		return func(c *p2p.Config) { c.PrivateKey, c.Certificate, c.CertificateKey = p.priv, p.cert, pub }
	}

	// Honest: A and B connect with certificates checked.
	honest := server()
	na := mk(honest, aID, vouched(a))
	nb := mk(honest, bID, vouched(b))
	nb.AcceptP2PSessionWithUser(aID)
	if !na.SendP2PPacket(bID, []byte("hello B"), p2p.P2PSendReliable, 0) {
		t.Fatal("send to B")
	}
	if got := receive(t, nb, 0); string(got.Data) != "hello B" || got.Remote != aID {
		t.Fatalf("B received %q from %d", got.Data, got.Remote)
	}

	// Mallory's rendezvous.
	evil := server()
	mallory := mk(evil, bID, func(c *p2p.Config) { c.Certificate = b.cert })
	mallory.AcceptP2PSessionWithUser(aID)

	// The control: a player who does not check certificates talks to
	// Mallory as if she were B.
	naive := mk(evil, 3, func(*p2p.Config) {})
	mallory.AcceptP2PSessionWithUser(3)
	naive.SendP2PPacket(bID, []byte("for B's eyes only"), p2p.P2PSendReliable, 0)
	if got := receive(t, mallory, 0); string(got.Data) != "for B's eyes only" {
		t.Fatalf("Mallory received %q", got.Data)
	}

	// A checks: the session to "B" is refused.
	na2 := mk(evil, aID, vouched(a))
	fails := make(chan p2p.P2PSessionConnectFail, 4)
	requests := make(chan p2p.P2PSessionRequest, 4)
	na2.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) { fails <- f })
	na2.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) { requests <- r })
	na2.SendP2PPacket(bID, []byte("for B's eyes only"), p2p.P2PSendReliable, 0)
	// Mallory, as B, asks A for a session herself.
	mallory.SendP2PPacket(aID, []byte("it is me, B"), p2p.P2PSendReliable, 1)
	deadline := time.Now().Add(10 * time.Second)
	var fail p2p.P2PSessionConnectFail
	for got := false; !got; {
		na2.RunCallbacks()
		select {
		case fail = <-fails:
			got = true
		case r := <-requests:
			t.Fatalf("A's game was asked for a session by %d, through a key nobody vouched for", r.SteamIDRemote)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("A's send to the substituted key never failed")
		}
	}
	if fail.SteamIDRemote != bID || fail.SessionError != p2p.P2PSessionErrorDestinationNotLoggedOn {
		t.Fatalf("connect fail %+v, want B and DestinationNotLoggedOn", fail)
	}
	// Until Mallory's own attempt is over (her ConnectTimeout), A's game
	// hears nothing of it.
	malloryFailed := make(chan p2p.P2PSessionConnectFail, 1)
	mallory.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) { malloryFailed <- f })
	for done := false; !done; {
		na2.RunCallbacks()
		mallory.RunCallbacks()
		select {
		case <-malloryFailed:
			done = true
		case r := <-requests:
			t.Fatalf("A's game was asked for a session by %d, through a key nobody vouched for", r.SteamIDRemote)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("Mallory's attempt never ended")
		}
	}
	if size, ok := mallory.IsP2PPacketAvailable(0); ok {
		t.Fatalf("Mallory holds a %d-byte message from A", size)
	}
	if _, ok := na2.IsP2PPacketAvailable(1); ok {
		t.Fatal("A holds Mallory's message")
	}
}

// A player whose own certificate does not verify is told so by New, naming
// the field, rather than being refused by every peer later.
func TestCertificateConfig(t *testing.T) {
	pub, backend, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := newVouchedPlayer(t, backend, 1)
	other := newVouchedPlayer(t, backend, 2)
	for name, tc := range map[string]struct {
		cfg   p2p.Config
		field string
	}{
		"no certificate":        {p2p.Config{PrivateKey: p.priv, CertificateKey: pub}, "Certificate"},
		"no key":                {p2p.Config{Certificate: p.cert, CertificateKey: pub}, "PrivateKey"},
		"another's certificate": {p2p.Config{PrivateKey: p.priv, Certificate: other.cert, CertificateKey: pub}, "Certificate"},
		"garbage certificate":   {p2p.Config{PrivateKey: p.priv, Certificate: "garbage", CertificateKey: pub}, "Certificate"},
		"short CertificateKey":  {p2p.Config{PrivateKey: p.priv, Certificate: p.cert, CertificateKey: pub[:5]}, "CertificateKey"},
	} {
		tc.cfg.SteamID, tc.cfg.AppID, tc.cfg.RendezvousAddr = 1, 480, "127.0.0.1:9"
		_, err := p2p.New(tc.cfg)
		var ce *p2p.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%s: New error %v, want a ConfigError for %s", name, err, tc.field)
		}
	}
}

// A player that keeps its PrivateKey gets its SteamID back at once after
// a crash (no unregistration), where one with a new key is refused while
// the old registration lives.
func TestRestartKeepsTheIDWithTheSameKey(t *testing.T) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0", RegistrationTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0", PrivateKey: [32]byte(k.Bytes())}
	first, err := p2p.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A crash: the socket goes, no unregistration is sent.
	p2p.CrashForTest(first)

	fresh := cfg
	fresh.PrivateKey = [32]byte{}
	_, err = p2p.New(fresh)
	var refused *p2p.RefusedError
	if !errors.As(err, &refused) || refused.Reason != p2p.RefuseIDInUse {
		t.Fatalf("New with a new key while the old registration lives: %v, want a refusal for %v", err, p2p.RefuseIDInUse)
	}
	again, err := p2p.New(cfg)
	if err != nil {
		t.Fatalf("New with the same key after the crash: %v", err)
	}
	again.Close()
}

// SetCertificate takes a renewed certificate of our key, and refuses, with
// nothing changed, one that does not verify for us.
func TestSetCertificate(t *testing.T) {
	pub, backend, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := newVouchedPlayer(t, backend, 1)
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	n, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: srv.Addr().String(), PrivateKey: p.priv, Certificate: p.cert, CertificateKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	renewed, err := rendezvous.IssueCertificate(backend, 1, 480, p.pub, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetCertificate(renewed); err != nil {
		t.Fatalf("SetCertificate with a renewed certificate: %v", err)
	}
	other := newVouchedPlayer(t, backend, 1) // the same SteamID, another key
	if err := n.SetCertificate(other.cert); !errors.Is(err, rendezvous.ErrCertificate) {
		t.Fatalf("SetCertificate with another key's certificate: %v, want ErrCertificate", err)
	}
}

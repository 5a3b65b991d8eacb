package p2p_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v2"

	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// A rendezvous with a secret admits only players with a token for exactly
// their SteamID and AppID, and New says why it was refused.
func TestTokensAdmitOnlyTheirPlayer(t *testing.T) {
	secret := []byte("the game's back end secret")
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	token := func(secret []byte, id uint64, app uint32) string {
		tok, err := rendezvous.IssueToken(secret, id, app, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := []struct {
		name  string
		token string
		want  p2p.RefuseReason
	}{
		{"no token", "", p2p.RefuseTokenMissing},
		{"another server's token", token([]byte("another secret"), 7, 480), p2p.RefuseTokenInvalid},
		{"another player's token", token(secret, 8, 480), p2p.RefuseTokenWrongID},
		{"another game's token", token(secret, 7, 730), p2p.RefuseTokenWrongApp},
	}
	for _, c := range cases {
		_, err := p2p.New(p2p.Config{SteamID: 7, AppID: 480, Token: c.token, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0", RegisterTimeout: 5 * time.Second})
		var refused *p2p.RefusedError
		if !errors.As(err, &refused) || refused.Reason != c.want {
			t.Errorf("%s: New = %v, want refused with %v", c.name, err, c.want)
		}
	}
	n, err := p2p.New(p2p.Config{SteamID: 7, AppID: 480, Token: token(secret, 7, 480), RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("the right token: %v", err)
	}
	n.Close()
}

// With HidePresence, a lookup tells a stranger nothing: no
// DestinationNotLoggedOn at once, a Timeout after the connect timeout.
func TestHidePresenceGivesTimeout(t *testing.T) {
	t.Parallel()
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0", HidePresence: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	n, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0", ConnectTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var got []p2p.P2PSessionConnectFail
	n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) { got = append(got, f) })
	start := time.Now()
	n.SendP2PPacket(404, []byte("anyone?"), p2p.P2PSendReliable, 0)
	for len(got) == 0 && time.Since(start) < 10*time.Second {
		n.RunCallbacks()
		time.Sleep(5 * time.Millisecond)
	}
	if len(got) != 1 || got[0].SessionError != p2p.P2PSessionErrorTimeout {
		t.Fatalf("failures %+v, want one Timeout", got)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("failed after %v: before the connect timeout, so presence leaked", took)
	}
}

// watchNet records where every datagram a socket receives came from, and
// its bytes, so that a test can tell what a peer learned.
type watchNet struct {
	transport.Net
	mu   sync.Mutex
	from []netip.Addr
	data [][]byte
}

func (w *watchNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := w.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &watchConn{pc, w}, nil
}

type watchConn struct {
	net.PacketConn
	w *watchNet
}

func (c *watchConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		if ua, ok := a.(*net.UDPAddr); ok {
			ip, _ := netip.AddrFromSlice(ua.IP)
			c.w.mu.Lock()
			c.w.from = append(c.w.from, ip.Unmap())
			c.w.data = append(c.w.data, append([]byte(nil), b[:n]...))
			c.w.mu.Unlock()
		}
	}
	return n, a, err
}

// ForceRelay: the player is reached only through the relay, and the peer
// never learns its address: no datagram from it, none that names it.
func TestForceRelayHidesThePlayer(t *testing.T) {
	l := vnetlab.New(t, true, rendezvous.ServerConfig{})
	playerNet := l.Site(vnetlab.FullCone, 1)[0] // easy to reach directly, were it allowed
	peerNet := l.Site(vnetlab.FullCone, 1)[0]
	watch := &watchNet{Net: peerNet}
	mk := func(id p2p.SteamID, nw transport.Net, force bool) *p2p.Networking {
		n, err := p2p.New(p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: vnetlab.ServerAddr, Net: nw, ForceRelay: force, ConnectTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	player := mk(1, playerNet, true)
	peer := mk(2, watch, false)
	playerPublic := player.MappedAddr(5 * time.Second).Addr()
	if !playerPublic.IsValid() {
		t.Fatal("the player's public address is unknown")
	}
	peer.AcceptP2PSessionWithUser(1)
	player.AcceptP2PSessionWithUser(2)
	// Both ways: the peer starts one session, the player answers on it.
	peer.SendP2PPacket(1, []byte("to the player"), p2p.P2PSendReliable, 0)
	if p := receive(t, player, 0); string(p.Data) != "to the player" {
		t.Fatalf("player got %q", p.Data)
	}
	player.SendP2PPacket(2, []byte("from the player"), p2p.P2PSendReliable, 0)
	if p := receive(t, peer, 0); string(p.Data) != "from the player" {
		t.Fatalf("peer got %q", p.Data)
	}
	for _, n := range []*p2p.Networking{player, peer} {
		var remote p2p.SteamID = 1
		if n == player {
			remote = 2
		}
		if st, _ := n.GetP2PSessionState(remote); !st.ConnectionActive || !st.UsingRelay {
			t.Fatalf("want a relayed session, got %+v", st)
		}
	}
	if st, _ := peer.GetP2PSessionState(1); st.RemoteIP == ipv4(playerPublic) {
		t.Fatal("the peer's session shows the player's address")
	}
	watch.mu.Lock()
	defer watch.mu.Unlock()
	raw := playerPublic.As4()
	// STUN and TURN carry addresses XORed with the magic cookie.
	xored := []byte{raw[0] ^ 0x21, raw[1] ^ 0x12, raw[2] ^ 0xA4, raw[3] ^ 0x42}
	for i, from := range watch.from {
		if from == playerPublic {
			t.Fatalf("the peer received a datagram straight from the player's address %v", playerPublic)
		}
		if bytes.Contains(watch.data[i], raw[:]) || bytes.Contains(watch.data[i], xored) {
			t.Fatalf("a datagram the peer received (from %v) names the player's address", from)
		}
	}
}

func ipv4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

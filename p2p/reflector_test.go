package p2p_test

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v2/vnet"

	"github.com/p2pcompat/p2pcompat/internal/seal"
	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// countingSocket counts the datagrams and bytes that reach it.
type countingSocket struct {
	conn           net.PacketConn
	packets, bytes atomic.Int64
}

// listenCounting counts what reaches a port on nw's host.
func listenCounting(t *testing.T, nw *vnet.Net) *countingSocket {
	t.Helper()
	c, err := nw.ListenPacket("udp4", netip.AddrPortFrom(hostIP(t, nw), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	s := &countingSocket{conn: c}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			s.packets.Add(1)
			s.bytes.Add(int64(n))
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

func (s *countingSocket) addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// hostIP is the address of nw's one interface.
func hostIP(t *testing.T, nw *vnet.Net) netip.Addr {
	t.Helper()
	ifc, err := nw.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := ifc.Addrs()
	if err != nil || len(addrs) == 0 {
		t.Fatalf("eth0's addresses: %v %v", addrs, err)
	}
	ip, _ := netip.AddrFromSlice(addrs[0].(*net.IPNet).IP.To4())
	return ip
}

// A stranger cannot make a player a reflector: looking the player up with
// addresses of third parties as its candidates makes the player send
// nothing toward them while the game has not accepted the stranger, for
// longer than the fallback after which an accepted session probes public
// addresses in full. Toward the stranger's own observed address goes one
// opener per lookup at most. Run in virtual time, on a simulated network.
func TestStrangerCannotAimThePlayerAtOthers(t *testing.T) {
	synctest.Test(t, strangerCannotAimThePlayerAtOthers)
}

func strangerCannotAimThePlayerAtOthers(t *testing.T) {
	l := newNATLab(t, false)
	hosts := l.site(nil, 4) // the player, two third parties, the stranger
	player := l.peer(1, hosts[0], func(c *p2p.Config) { c.ConnectTimeout = 0 })
	var requests atomic.Int64
	player.OnP2PSessionRequest(func(p2p.P2PSessionRequest) { requests.Add(1) })

	victims := []*countingSocket{listenCounting(t, hosts[1]), listenCounting(t, hosts[2])}
	server := netip.MustParseAddrPort(vnetlab.ServerAddr)
	conn, err := hosts[3].ListenPacket("udp4", netip.AddrPortFrom(hostIP(t, hosts[3]), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys, err := seal.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	var lookedUp atomic.Int64
	client, err := rendezvous.NewClient(rendezvous.ClientConfig{
		SteamID: 666, AppID: 480, PublicKey: keys.Public, PrivateKey: keys.Private,
		Server:     server,
		LocalAddrs: []netip.AddrPort{victims[0].addr(), victims[1].addr()},
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
			return err
		},
		OnLookup: func(rendezvous.LookupResult) { lookedUp.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var fromPlayer, fromPlayerBytes atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			ap := from.(*net.UDPAddr).AddrPort()
			if ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()); ap == server {
				client.HandleInbound(buf[:n], ap)
				continue
			}
			fromPlayer.Add(1)
			fromPlayerBytes.Add(int64(n))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Register(ctx); err != nil {
		t.Fatal(err)
	}
	const lookups = 3
	for i := 0; i < lookups; i++ {
		client.Lookup(1, uint64(1000+i))
		deadline := time.Now().Add(5 * time.Second)
		for lookedUp.Load() <= int64(i) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	// The player's game runs, sees the requests and accepts none; an
	// accepted session would probe every candidate in full after 3 s.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		player.RunCallbacks()
		time.Sleep(10 * time.Millisecond)
	}
	if requests.Load() == 0 {
		t.Fatal("the stranger's lookups never reached the player's game")
	}
	for i, v := range victims {
		if v.packets.Load() != 0 {
			t.Errorf("third party %d, named by the stranger, received %d datagrams (%d B)", i, v.packets.Load(), v.bytes.Load())
		}
	}
	if fromPlayer.Load() > lookups {
		t.Errorf("the stranger's own address received %d datagrams (%d B) for %d lookups", fromPlayer.Load(), fromPlayerBytes.Load(), lookups)
	}
	t.Logf("%d lookups: third parties received %d and %d datagrams; the stranger %d (%d B)",
		lookups, victims[0].packets.Load(), victims[1].packets.Load(), fromPlayer.Load(), fromPlayerBytes.Load())
}

package relayfallback

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v2/vnet"
	"github.com/pion/turn/v2"
)

// TestBehindSymmetricNATOnVirtualNetwork puts the client behind a symmetric
// NAT on a pion vnet network, with the TURN server and two peers on the
// "public" side, inside a synctest bubble: time is virtual, so the test can
// let 15 minutes pass (allocation refreshes, permission renewals, the NAT
// forgetting idle mappings after 30 s), and the bubble fails the test if any
// goroutine outlives Close.
func TestBehindSymmetricNATOnVirtualNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		quiet := quietFactory()
		wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: quiet})
		must(t, err)
		newHost := func(r *vnet.Router, ip string) *vnet.Net {
			n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
			must(t, err)
			must(t, r.AddNet(n))
			return n
		}
		srvNet := newHost(wan, "198.18.0.10")
		peerNets := []*vnet.Net{newHost(wan, "198.18.0.30"), newHost(wan, "198.18.0.31")}
		lan, err := vnet.NewRouter(&vnet.RouterConfig{
			CIDR:          "198.19.0.0/24",
			StaticIPs:     []string{"198.18.0.20"},
			LoggerFactory: quiet,
			NATType: &vnet.NATType{
				Mode:              vnet.NATModeNormal,
				MappingBehavior:   vnet.EndpointAddrPortDependent,
				FilteringBehavior: vnet.EndpointAddrPortDependent,
			},
		})
		must(t, err)
		must(t, wan.AddRouter(lan))
		clientNet := newHost(lan, "198.19.0.2")
		must(t, wan.Start())
		defer wan.Stop()

		srvConn, err := srvNet.ListenPacket("udp4", "198.18.0.10:3478")
		must(t, err)
		srv, err := turn.NewServer(turn.ServerConfig{
			Realm:         testRealm,
			AuthHandler:   authHandler,
			LoggerFactory: quiet,
			PacketConnConfigs: []turn.PacketConnConfig{{
				PacketConn: srvConn,
				RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
					RelayAddress: net.IPv4(198, 18, 0, 10),
					Address:      "198.18.0.10",
					Net:          srvNet,
				},
			}},
		})
		must(t, err)
		defer srv.Close()

		// The peers: each reads into a channel.
		type peer struct {
			conn net.PacketConn
			addr netip.AddrPort
			in   chan datagram
		}
		var peers []peer
		for _, n := range peerNets {
			conn, err := n.ListenPacket("udp4", "0.0.0.0:0")
			must(t, err)
			defer conn.Close()
			p := peer{conn: conn, in: make(chan datagram, 16)}
			p.addr = netip.AddrPortFrom(hostIP(t, n), uint16(conn.LocalAddr().(*net.UDPAddr).Port))
			go func() {
				buf := make([]byte, 2048)
				for {
					n, from, err := conn.ReadFrom(buf)
					if err != nil {
						return
					}
					p.in <- datagram{bytes.Clone(buf[:n]), canonical(from.(*net.UDPAddr).AddrPort())}
				}
			}()
			peers = append(peers, p)
		}

		// The shared socket behind the NAT.
		sock, err := clientNet.ListenPacket("udp4", "0.0.0.0:0")
		must(t, err)
		data := make(chan datagram, 16)
		c, err := New(Config{
			Server: Server{Addr: "198.18.0.10:3478", Username: testUser, Password: testPass},
			Net:    clientNet,
			Send: func(b []byte, to netip.AddrPort) error {
				_, err := sock.WriteTo(b, net.UDPAddrFromAddrPort(to))
				return err
			},
			OnData: func(b []byte, from netip.AddrPort) { data <- datagram{bytes.Clone(b), from} },
		})
		must(t, err)
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			buf := make([]byte, 1<<16)
			for {
				n, from, err := sock.ReadFrom(buf)
				if err != nil {
					return
				}
				c.HandleInbound(buf[:n], from.(*net.UDPAddr).AddrPort())
			}
		}()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		relayed, err := c.Allocate(ctx)
		must(t, err)
		if relayed.Addr() != netip.MustParseAddr("198.18.0.10") {
			t.Fatalf("relayed address %v", relayed)
		}

		// Peer 0 is written to (so its IP is permitted and its address
		// bound to a channel), peer 1 only permitted.
		c.Permit(peers[1].addr)
		must(t, c.WriteTo([]byte("to 0"), peers[0].addr))
		synctest.Wait()
		expect(t, peers[0].in, "to 0", relayed)

		check := func(when string) {
			t.Helper()
			for _, p := range peers {
				if _, err := p.conn.WriteTo([]byte(when), net.UDPAddrFromAddrPort(relayed)); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				expect(t, data, when, p.addr)
			}
			must(t, c.WriteTo([]byte(when), peers[0].addr))
			synctest.Wait()
			expect(t, peers[0].in, when, relayed)
		}
		check("at once")
		// Beyond the allocation's lifetime (10 min), the permissions'
		// (5 min), the channel bindings' (10 min), and many times the
		// NAT's 30 s memory.
		time.Sleep(15 * time.Minute)
		check("15 minutes later")
		// pion's server makes nonces stale after an hour: our renewals
		// meet 438 Stale Nonce and must retry with the new one. At 62
		// minutes pion's own next allocation refresh (every 5 minutes)
		// has not yet learned the new nonce, so the deallocation in Close
		// meets 438 too.
		time.Sleep(47 * time.Minute)
		check("62 minutes later")
		if n := srv.AllocationCount(); n != 1 {
			t.Errorf("server has %d allocations, want 1", n)
		}

		must(t, c.Close())
		if n := srv.AllocationCount(); n != 0 {
			t.Errorf("server has %d allocations after Close, want 0", n)
		}
		sock.Close()
		<-readerDone
	})
}

func hostIP(t *testing.T, n *vnet.Net) netip.Addr {
	t.Helper()
	ifs, err := n.Interfaces()
	must(t, err)
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		must(t, err)
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && !ip.Unmap().IsLoopback() {
					return ip.Unmap()
				}
			}
		}
	}
	t.Fatal("no address")
	return netip.Addr{}
}

func expect(t *testing.T, ch <-chan datagram, want string, from netip.AddrPort) {
	t.Helper()
	select {
	case d := <-ch:
		if string(d.b) != want || d.from != from {
			t.Fatalf("got (%q, %v), want (%q, %v)", d.b, d.from, want, from)
		}
	default:
		t.Fatalf("%q from %v did not arrive", want, from)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestVirtualNetworkFailures runs the two ways an allocation fails, in
// virtual time: a server that does not exist costs pion's full
// retransmission schedule (7 transmissions, about 7.8 s with the default
// RTO), a wrong password costs two round trips.
func TestVirtualNetworkFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		quiet := quietFactory()
		wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: quiet})
		must(t, err)
		srvNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.18.0.10"}})
		must(t, err)
		must(t, wan.AddNet(srvNet))
		clientNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.18.0.2"}})
		must(t, err)
		must(t, wan.AddNet(clientNet))
		must(t, wan.Start())
		defer wan.Stop()

		srvConn, err := srvNet.ListenPacket("udp4", "198.18.0.10:3478")
		must(t, err)
		srv, err := turn.NewServer(turn.ServerConfig{
			Realm:         testRealm,
			AuthHandler:   authHandler,
			LoggerFactory: quiet,
			PacketConnConfigs: []turn.PacketConnConfig{{
				PacketConn: srvConn,
				RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
					RelayAddress: net.IPv4(198, 18, 0, 10),
					Address:      "198.18.0.10",
					Net:          srvNet,
				},
			}},
		})
		must(t, err)
		defer srv.Close()

		sock, err := clientNet.ListenPacket("udp4", "0.0.0.0:0")
		must(t, err)
		var clients []*Client
		newClient := func(addr, pass string) *Client {
			c, err := New(Config{
				Server: Server{Addr: addr, Username: testUser, Password: pass},
				Net:    clientNet,
				Send: func(b []byte, to netip.AddrPort) error {
					_, err := sock.WriteTo(b, net.UDPAddrFromAddrPort(to))
					return err
				},
			})
			must(t, err)
			clients = append(clients, c)
			return c
		}
		nowhere := newClient("198.18.0.99:3478", testPass)
		wrong := newClient("198.18.0.10:3478", "wrong")
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			buf := make([]byte, 1<<16)
			for {
				n, from, err := sock.ReadFrom(buf)
				if err != nil {
					return
				}
				for _, c := range clients {
					if c.HandleInbound(buf[:n], from.(*net.UDPAddr).AddrPort()) {
						break
					}
				}
			}
		}()

		start := time.Now()
		_, err = nowhere.Allocate(context.Background())
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Allocate at an absent server = %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el < 7*time.Second || el > 9*time.Second {
			t.Errorf("gave up after %v, want pion's 7.8 s", el)
		}

		start = time.Now()
		_, err = wrong.Allocate(context.Background())
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Allocate with a wrong password = %v, want ErrUnauthorized", err)
		}
		if el := time.Since(start); el != 0 {
			t.Errorf("ErrUnauthorized after %v of virtual time, want none", el)
		}

		for _, c := range clients {
			must(t, c.Close())
		}
		sock.Close()
		<-readerDone
	})
}

package rendezvous

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v2/vnet"
	"github.com/pion/turn/v2"
)

// TestBehindNATOnVirtualNetwork runs the server on a pion vnet network and
// puts the clients behind a port-restricted NAT, so that the observed
// address is the NAT's mapping, not the client's own.
func TestBehindNATOnVirtualNetwork(t *testing.T) {
	quiet := logging.NewDefaultLoggerFactory()
	quiet.Writer = io.Discard
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: quiet})
	noError(t, err, "wan router")
	srvNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.18.0.10"}})
	noError(t, err, "server net")
	noError(t, wan.AddNet(srvNet), "add server net")

	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR:          "198.19.0.0/24",
		StaticIPs:     []string{"198.18.0.20"},
		LoggerFactory: quiet,
		NATType: &vnet.NATType{
			Mode:              vnet.NATModeNormal,
			MappingBehavior:   vnet.EndpointIndependent,
			FilteringBehavior: vnet.EndpointAddrPortDependent,
		},
	})
	noError(t, err, "lan router")
	noError(t, wan.AddRouter(lan), "add lan router")
	var nets []*vnet.Net
	for _, ip := range []string{"198.19.0.2", "198.19.0.3"} {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		noError(t, err, "client net")
		noError(t, lan.AddNet(n), "add client net")
		nets = append(nets, n)
	}
	noError(t, wan.Start(), "start")
	t.Cleanup(func() { wan.Stop() })

	s, err := NewServer(ServerConfig{ListenAddr: "198.18.0.10:3478", Net: srvNet})
	noError(t, err, "NewServer")
	t.Cleanup(func() { s.Close() })
	// vnet reports IPv4 addresses in their 16-byte form.
	srv := canonical(s.Addr().(*net.UDPAddr).AddrPort())
	equal(t, srv, netip.MustParseAddrPort("198.18.0.10:3478"), "server address")

	type vpeer struct {
		client *Client
		rec    *recorder
		local  netip.AddrPort
	}
	var peers []vpeer
	for i, n := range nets {
		conn, err := n.ListenPacket("udp4", "0.0.0.0:0")
		noError(t, err, "listen")
		local := netip.AddrPortFrom(netip.MustParseAddr([]string{"198.19.0.2", "198.19.0.3"}[i]), uint16(conn.LocalAddr().(*net.UDPAddr).Port))
		rec := &recorder{}
		kp := newKeyPair(t)
		c, err := NewClient(ClientConfig{
			SteamID:    uint64(i + 1),
			AppID:      480,
			PublicKey:  kp.pub,
			PrivateKey: kp.priv,
			Server:     srv,
			LocalAddrs: []netip.AddrPort{local},
			Send: func(b []byte, to netip.AddrPort) error {
				_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
				return err
			},
			OnOffer:     rec.offer,
			OnLookup:    rec.lookup,
			OnDelivered: rec.delivered,
		})
		noError(t, err, "NewClient")
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			buf := make([]byte, 2048)
			for {
				n, from, err := conn.ReadFrom(buf)
				if err != nil {
					return
				}
				c.HandleInbound(buf[:n], from.(*net.UDPAddr).AddrPort())
			}
		}()
		t.Cleanup(func() {
			c.Close()
			conn.Close()
			<-readerDone
		})
		peers = append(peers, vpeer{c, rec, local})
	}

	var observed []netip.AddrPort
	for i, p := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
		o, err := p.client.Register(ctx)
		cancel()
		noError(t, err, "Register")
		equal(t, o.Addr(), netip.MustParseAddr("198.18.0.20"), "observed address (the NAT's)")
		equal(t, authenticated(s, uint64(i+1)), true, "registration authenticated through the NAT")
		observed = append(observed, o)
	}

	peers[0].client.Lookup(2, 42)
	eventually(t, func() bool { return len(peers[0].rec.gotResults()) == 1 }, "the answer")
	equal(t, peers[0].rec.gotResults()[0].Addrs, []netip.AddrPort{observed[1], peers[1].local}, "B's candidates")
	eventually(t, func() bool { return len(peers[1].rec.gotOffers()) > 0 }, "the offer")
	equal(t, peers[1].rec.gotOffers()[0].Addrs, []netip.AddrPort{observed[0], peers[0].local}, "A's candidates")
	// B's receipt for the offer comes back to A through both NATs' mappings.
	eventually(t, func() bool { return len(peers[0].rec.gotDeliveries()) > 0 }, "the report that B got the offer")
	equal(t, peers[0].rec.gotDeliveries()[0], delivery{2, 42}, "the report")
}

// TestEmbeddedRelayOnVirtualNetwork runs the server with its relay on a
// vnet network, so that relay sockets come from ServerConfig.Net, and
// relays between a client behind a NAT and a host on the "internet".
func TestEmbeddedRelayOnVirtualNetwork(t *testing.T) {
	quiet := logging.NewDefaultLoggerFactory()
	quiet.Writer = io.Discard
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: quiet})
	noError(t, err, "wan router")
	newNet := func(r *vnet.Router, ip string) *vnet.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		noError(t, err, "net %s", ip)
		noError(t, r.AddNet(n), "add net %s", ip)
		return n
	}
	srvNet := newNet(wan, "198.18.0.10")
	peerNet := newNet(wan, "198.18.0.30")
	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR:          "198.19.0.0/24",
		StaticIPs:     []string{"198.18.0.20"},
		LoggerFactory: quiet,
		NATType: &vnet.NATType{
			Mode:              vnet.NATModeNormal,
			MappingBehavior:   vnet.EndpointAddrPortDependent, // symmetric
			FilteringBehavior: vnet.EndpointAddrPortDependent,
		},
	})
	noError(t, err, "lan router")
	noError(t, wan.AddRouter(lan), "add lan router")
	clientNet := newNet(lan, "198.19.0.2")
	noError(t, wan.Start(), "start")
	t.Cleanup(func() { wan.Stop() })

	s, err := NewServer(ServerConfig{ListenAddr: "198.18.0.10:3478", RelayIP: "198.18.0.10", Net: srvNet})
	noError(t, err, "NewServer")
	t.Cleanup(func() { s.Close() })
	srv := netip.MustParseAddrPort("198.18.0.10:3478")

	// The rendezvous client, behind the NAT, shares its socket with a TURN
	// client, as a peer does: the relay sees the address the rendezvous
	// does.
	a := newVnetClient(t, clientNet, srv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
	defer cancel()
	_, err = a.c.Register(ctx)
	noError(t, err, "Register")
	relays := await(t, a.relays, "relays")
	equal(t, len(relays), 1, "relays")
	equal(t, relays[0].Addr, srv, "the embedded relay")
	tc, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: relays[0].Addr.String(),
		Conn:           a.conn,
		Username:       relays[0].Username,
		Password:       relays[0].Password,
		Net:            clientNet,
		LoggerFactory:  quiet,
	})
	noError(t, err, "turn client")
	t.Cleanup(tc.Close)
	a.other.Store(tc)
	relayed, err := tc.Allocate()
	noError(t, err, "allocate")
	t.Cleanup(func() { relayed.Close() })
	equal(t, relayed.LocalAddr().(*net.UDPAddr).IP.String(), "198.18.0.10", "relayed address")

	// The public host is a stranger until A looks it up.
	host := newVnetClient(t, peerNet, srv, 2)
	_, err = host.c.Register(ctx)
	noError(t, err, "Register the host")
	pconn, err := peerNet.ListenPacket("udp4", "198.18.0.30:4000")
	noError(t, err, "listen")
	t.Cleanup(func() { pconn.Close() })
	if err := tc.CreatePermission(pconn.LocalAddr()); err == nil {
		t.Fatal("the relay permitted a stranger")
	}
	a.c.Lookup(2, 7)
	equal(t, await(t, a.results, "A's lookup of the host").Status, LookupOK, "A's lookup of the host")
	noError(t, tc.CreatePermission(pconn.LocalAddr()), "permission for a contact")
	if err := tc.CreatePermission(&net.UDPAddr{IP: net.IPv4(198, 18, 0, 31), Port: 4000}); err == nil {
		t.Fatal("the relay permitted a stranger next to a contact")
	}

	// The public host and the client exchange datagrams through it.
	_, err = relayed.WriteTo([]byte("out"), pconn.LocalAddr())
	noError(t, err, "write through the relay")
	buf := make([]byte, 1500)
	noError(t, pconn.SetReadDeadline(time.Now().Add(eventuallyWithin)), "deadline")
	n, from, err := pconn.ReadFrom(buf)
	noError(t, err, "read at the peer")
	equal(t, [2]string{string(buf[:n]), from.String()}, [2]string{"out", relayed.LocalAddr().String()}, "datagram at the peer, and its source")
	_, err = pconn.WriteTo([]byte("in"), from)
	noError(t, err, "write to the relayed address")
	noError(t, relayed.SetReadDeadline(time.Now().Add(eventuallyWithin)), "deadline")
	n, from, err = relayed.ReadFrom(buf)
	noError(t, err, "read through the relay")
	equal(t, [2]string{string(buf[:n]), from.String()}, [2]string{"in", "198.18.0.30:4000"}, "datagram through the relay, and its source")
}

// vnetClient is a keyed rendezvous client on a vnet network, with its
// reader, which hands what the client does not take to other's TURN client.
type vnetClient struct {
	c       *Client
	conn    net.PacketConn
	relays  chan []Relay
	results chan LookupResult
	other   atomic.Pointer[turn.Client]
}

func newVnetClient(t *testing.T, nw *vnet.Net, srv netip.AddrPort, id uint64) *vnetClient {
	t.Helper()
	conn, err := nw.ListenPacket("udp4", "0.0.0.0:0")
	noError(t, err, "listen")
	kp := newKeyPair(t)
	v := &vnetClient{conn: conn, relays: make(chan []Relay, 4), results: make(chan LookupResult, 4)}
	v.c, err = NewClient(ClientConfig{
		SteamID: id, AppID: 480, PublicKey: kp.pub, PrivateKey: kp.priv, Server: srv,
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
			return err
		},
		OnRelays: func(r []Relay) { v.relays <- r },
		OnLookup: func(r LookupResult) { v.results <- r },
	})
	noError(t, err, "NewClient")
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if !v.c.HandleInbound(buf[:n], from.(*net.UDPAddr).AddrPort()) {
				if tc := v.other.Load(); tc != nil {
					tc.HandleInbound(buf[:n], from)
				}
			}
		}
	}()
	t.Cleanup(func() {
		v.c.Close()
		conn.Close()
		<-readerDone
	})
	return v
}

package rendezvous_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// peer is one user: a UDP socket of its own, shared in a real peer with
// STUN, TURN and the other peers, and a Client that is handed what the
// socket reads.
type peer struct {
	conn   net.PacketConn
	client *rendezvous.Client
}

// newPeer starts a peer for id; cfg brings the callbacks.
func newPeer(id uint64, server netip.AddrPort, cfg rendezvous.ClientConfig) *peer {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// The identity key: peers that look this user up get its public half.
	// With the private half the client also authenticates what it sends.
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	cfg.SteamID, cfg.AppID, cfg.Server = id, 480, server
	copy(cfg.PublicKey[:], key.PublicKey().Bytes())
	copy(cfg.PrivateKey[:], key.Bytes())
	cfg.Send = func(b []byte, to netip.AddrPort) error {
		_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
		return err
	}
	c, err := rendezvous.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			c.HandleInbound(buf[:n], from.(*net.UDPAddr).AddrPort())
		}
	}()
	return &peer{conn, c}
}

func (p *peer) close() {
	p.client.Close() // unregisters, through the socket: close it after
	p.conn.Close()
}

func ExampleClient_Lookup() {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	server := srv.Addr().(*net.UDPAddr).AddrPort()

	// The callbacks run on the socket readers' goroutines and must not
	// block: they hand their news over on buffered channels.
	results := make(chan rendezvous.LookupResult, 1)
	offers := make(chan rendezvous.Offer, 1)
	alice := newPeer(1001, server, rendezvous.ClientConfig{
		OnLookup: func(r rendezvous.LookupResult) { results <- r },
	})
	defer alice.close()
	bob := newPeer(1002, server, rendezvous.ClientConfig{
		OnOffer: func(o rendezvous.Offer) {
			select {
			case offers <- o:
			default: // a repeat of the offer
			}
		},
	})
	defer bob.close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range []*peer{alice, bob} {
		observed, err := p.client.Register(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("registered, seen at", observed.Addr())
	}

	// alice looks bob up. The server answers her with bob's key and
	// addresses, and forwards bob an offer carrying her session ID.
	alice.client.Lookup(1002, 42)
	select {
	case r := <-results:
		fmt.Printf("lookup of %d: %v, %d address(es)\n", r.Target, r.Status, len(r.Addrs))
	case <-ctx.Done():
		log.Fatal("no lookup result")
	}
	select {
	case o := <-offers:
		fmt.Printf("offer from %d, session %d\n", o.From, o.SessionID)
	case <-ctx.Done():
		log.Fatal("no offer")
	}
	// Output:
	// registered, seen at 127.0.0.1
	// registered, seen at 127.0.0.1
	// lookup of 1002: ok, 1 address(es)
	// offer from 1001, session 42
}

package relayfallback_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v2"

	"github.com/p2pcompat/p2pcompat/relayfallback"
)

// startTURN runs pion's TURN server on 127.0.0.1, with one long-term
// credential user, and returns it and its address.
func startTURN(user, pass string) (*turn.Server, netip.AddrPort) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	quiet := logging.NewDefaultLoggerFactory()
	quiet.Writer = io.Discard
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: "example.test",
		AuthHandler: func(username, realm string, _ net.Addr) ([]byte, bool) {
			return turn.GenerateAuthKey(username, realm, pass), username == user
		},
		LoggerFactory: quiet,
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1),
				Address:      "127.0.0.1",
			},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func Example() {
	srv, server := startTURN("alice", "secret")
	defer srv.Close()

	// The peer's one shared UDP socket. The client does not own it: it
	// writes through Config.Send and is handed what the socket reads.
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	fromPeer := make(chan string, 1)
	c, err := relayfallback.New(relayfallback.Config{
		Server: relayfallback.Server{Addr: server.String(), Username: "alice", Password: "secret"},
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := sock.WriteToUDPAddrPort(b, to)
			return err
		},
		// What peers send to our relayed address; b is reused after return.
		OnData: func(b []byte, from netip.AddrPort) {
			select {
			case fromPeer <- string(b):
			default:
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := sock.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed
			}
			// false: not TURN traffic (STUN, rendezvous, peers): the
			// caller's own.
			c.HandleInbound(buf[:n], from)
		}
	}()
	defer func() {
		c.Close() // deallocates: the reader must still run for the answer
		sock.Close()
		<-readerDone
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	relayed, err := c.Allocate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("allocated on", relayed.Addr())

	// A remote peer, reachable only through the relay in this story.
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()

	// Permit lets the peer's IP send to our relayed address. WriteTo
	// returns at once: until the permission is installed the datagram
	// waits in the client's queue.
	c.Permit(peerAddr)
	if err := c.WriteTo([]byte("hello through the relay"), peerAddr); err != nil {
		log.Fatal(err)
	}

	buf := make([]byte, 1500)
	deadline, _ := ctx.Deadline()
	peer.SetReadDeadline(deadline)
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("peer got %q, from our relayed address: %v\n", buf[:n], from == relayed)

	// The peer answers to the relayed address; it reaches OnData.
	if _, err := peer.WriteToUDPAddrPort(bytes.ToUpper(buf[:n]), from); err != nil {
		log.Fatal(err)
	}
	select {
	case m := <-fromPeer:
		fmt.Printf("we got %q\n", m)
	case <-ctx.Done():
		log.Fatal("no answer from the peer")
	}
	// Output:
	// allocated on 127.0.0.1
	// peer got "hello through the relay", from our relayed address: true
	// we got "HELLO THROUGH THE RELAY"
}

package p2p_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// The two users of the examples.
const (
	alice = p2p.SteamID(76561197960287930)
	bob   = p2p.SteamID(76561197960287931)
)

func ExampleNew() {
	// The rendezvous server stands in for Steam's back end. Games share
	// one (cmd/p2pcompat-server); this one runs in the process.
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// New returns once the rendezvous has registered us.
	n, err := p2p.New(p2p.Config{
		SteamID:        alice,
		AppID:          480, // sessions only open within one AppID
		RendezvousAddr: srv.Addr().String(),
		ListenAddr:     "127.0.0.1:0",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close() // SteamAPI_Shutdown

	fmt.Println("registered")
	// Output: registered
}

func ExampleNetworking_SendP2PPacket() {
	a, _, stop := users()
	defer stop()

	// No connect call: the first send opens the session. true means
	// queued, not delivered.
	fmt.Println(a.SendP2PPacket(bob, []byte("hello"), p2p.P2PSendReliable, 0))

	// false is a refusal; Send, the same call, says why.
	big := make([]byte, p2p.MaxUnreliablePacketSize+1)
	fmt.Println(a.SendP2PPacket(bob, big, p2p.P2PSendUnreliable, 0))
	err := a.Send(bob, big, p2p.P2PSendUnreliable, 0)
	fmt.Println(errors.Is(err, p2p.ErrPacketTooLarge))

	// The refusal to plan for is backpressure: too much already queued for
	// bob. Keep the packet and send it again next frame.
	if err := a.Send(bob, []byte("state"), p2p.P2PSendReliable, 0); errors.Is(err, p2p.ErrSendBufferFull) {
		fmt.Println("retry next frame")
	}
	// Output:
	// true
	// false
	// true
}

func ExampleNetworking_ReadP2PPacket() {
	a, b, stop := users()
	defer stop()
	b.AcceptP2PSessionWithUser(alice) // accepted ahead of alice's request
	for _, m := range []string{"one", "two", "three"} {
		a.SendP2PPacket(bob, []byte(m), p2p.P2PSendReliable, 0)
	}

	got := 0
	frames(func() bool {
		// Every frame, read until nothing is left: one packet a frame
		// falls behind a peer that sends two.
		for size, ok := b.IsP2PPacketAvailable(0); ok; size, ok = b.IsP2PPacketAvailable(0) {
			buf := make([]byte, size)
			n, from, _ := b.ReadP2PPacket(buf, 0)
			fmt.Printf("from %d: %s\n", from, buf[:n])
			got++
		}
		return got == 3
	}, a, b)
	// Output:
	// from 76561197960287930: one
	// from 76561197960287930: two
	// from 76561197960287930: three
}

func ExampleNetworking_OnP2PSessionRequest() {
	a, b, stop := users()
	defer stop()

	// The handler runs inside b.RunCallbacks, on the game's goroutine.
	b.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		fmt.Printf("session request from %d\n", r.SteamIDRemote)
		b.AcceptP2PSessionWithUser(r.SteamIDRemote) // not accepting refuses
	})

	a.SendP2PPacket(bob, []byte("hi"), p2p.P2PSendReliable, 0)
	frames(func() bool {
		_, ok := b.IsP2PPacketAvailable(0) // visible only once accepted
		return ok
	}, a, b)
	fmt.Println("accepted")
	// Output:
	// session request from 76561197960287930
	// accepted
}

func ExampleNetworking_OnP2PSessionConnectFail() {
	a, _, stop := users()
	defer stop()
	const nobody = p2p.SteamID(76561197960287999) // never logs on

	failed := false
	a.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		switch f.SessionError {
		case p2p.P2PSessionErrorDestinationNotLoggedOn:
			fmt.Printf("%d is not logged on\n", f.SteamIDRemote)
		case p2p.P2PSessionErrorTimeout:
			fmt.Printf("%d did not answer\n", f.SteamIDRemote)
		default:
			fmt.Printf("no session with %d: error %d\n", f.SteamIDRemote, f.SessionError)
		}
		// What was queued is gone. Close the session: a new attempt then
		// starts afresh and reports its own failure.
		a.CloseP2PSessionWithUser(f.SteamIDRemote)
		failed = true
	})

	a.SendP2PPacket(nobody, []byte("anyone there?"), p2p.P2PSendReliable, 0)
	frames(func() bool { return failed }, a)
	// Output: 76561197960287999 is not logged on
}

func ExampleNetworking_Receive() {
	a, b, stop := users()
	defer stop()
	b.AcceptP2PSessionWithUser(alice)
	a.SendP2PPacket(bob, []byte("ping"), p2p.P2PSendReliable, 1)

	// Receive blocks until a whole packet arrives on the channel, for
	// code that is not a frame loop.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pkt, err := b.Receive(ctx, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d on channel %d: %s\n", pkt.Remote, pkt.Channel, pkt.Data)
	// Output: 76561197960287930 on channel 1: ping
}

func ExampleNetworking_PacketReady() {
	a, b, stop := users()
	defer stop()
	b.AcceptP2PSessionWithUser(alice)
	for _, word := range []string{"one", "two", "three"} {
		a.SendP2PPacket(bob, []byte(word), p2p.P2PSendReliable, 2)
	}

	// A reader that blocks instead of polling, with a buffer of its own:
	// read until there is nothing, then wait on PacketReady alone.
	// Nothing on this path allocates.
	buf := make([]byte, p2p.MaxReliablePacketSize)
	for got := 0; got < 3; {
		size, _, ok := b.ReadP2PPacket(buf, 2)
		if !ok {
			<-b.PacketReady(2)
			continue
		}
		fmt.Println(string(buf[:size]))
		got++
	}
	// Output:
	// one
	// two
	// three
}

func ExampleNetworking_GetP2PSessionState() {
	a, b, stop := users()
	defer stop()

	_, ok := a.GetP2PSessionState(bob)
	fmt.Println("session:", ok)

	b.AcceptP2PSessionWithUser(alice)
	a.SendP2PPacket(bob, []byte("hi"), p2p.P2PSendReliable, 0)
	var st p2p.P2PSessionState
	frames(func() bool {
		st, _ = a.GetP2PSessionState(bob)
		return st.ConnectionActive
	}, a, b)
	fmt.Println("active:", st.ConnectionActive, "connecting:", st.Connecting, "relay:", st.UsingRelay)

	// RemoteIP is IPv4 in host byte order, as in P2PSessionState_t.
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], st.RemoteIP)
	fmt.Println("remote IP:", netip.AddrFrom4(ip))
	// Output:
	// session: false
	// active: true connecting: false relay: false
	// remote IP: 127.0.0.1
}

// users starts a rendezvous server and registers alice and bob with it, as
// ExampleNew does; stop closes all three.
func users() (a, b *p2p.Networking, stop func()) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	newUser := func(id p2p.SteamID) *p2p.Networking {
		n, err := p2p.New(p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	a, b = newUser(alice), newUser(bob)
	return a, b, func() {
		a.Close()
		b.Close()
		srv.Close()
	}
}

// frames is a game's frame loop in miniature: every 16 ms it runs the
// callbacks of each user, then asks done whether to stop. It gives up
// after 10 s.
func frames(done func() bool, users ...*p2p.Networking) {
	tick := time.NewTicker(16 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Second)
	for {
		for _, n := range users {
			n.RunCallbacks()
		}
		if done() {
			return
		}
		select {
		case <-tick.C:
		case <-limit:
			fmt.Println("timed out")
			return
		}
	}
}

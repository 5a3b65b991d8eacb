// Command quickstart is a tour of the session-less Steam P2P API in one
// process: a rendezvous server (the stand-in for Steam's back end) and two
// users, Alice and Bob, who talk to each other the way an ISteamNetworking
// game does.
//
//	go run ./examples/quickstart
//
// It prints what happens step by step and exits 0, or exits 1 with the step
// that failed. Everything runs on the main goroutine, as in a game whose
// frame loop calls SteamAPI_RunCallbacks once per frame.
package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

const (
	appID  = 480 // Spacewar, the Steamworks example AppID
	alice  = p2p.SteamID(76561197960287930)
	bob    = p2p.SteamID(76561197960287931)
	nobody = p2p.SteamID(76561197960287999) // never logs on
)

var sendNames = map[p2p.P2PSend]string{
	p2p.P2PSendUnreliable:            "Unreliable",
	p2p.P2PSendUnreliableNoDelay:     "UnreliableNoDelay",
	p2p.P2PSendReliable:              "Reliable",
	p2p.P2PSendReliableWithBuffering: "ReliableWithBuffering",
}

var userNames = map[p2p.SteamID]string{alice: "alice", bob: "bob", nobody: "nobody"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("done: every step passed")
}

func run() error {
	// 1. The rendezvous server. A real deployment runs cmd/p2pcompat-server.
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		return fmt.Errorf("start rendezvous: %w", err)
	}
	defer srv.Close()
	fmt.Println("rendezvous server on", srv.Addr())

	// 2. Two users. New returns once the rendezvous has registered them.
	a, err := newPeer(alice, srv.Addr().String())
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := newPeer(bob, srv.Addr().String())
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Printf("alice (%d) on %v, bob (%d) on %v\n", alice, a.LocalAddr(), bob, b.LocalAddr())

	// Callbacks are only ever run inside RunCallbacks, on our goroutine.
	b.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		fmt.Printf("bob:   P2PSessionRequest from %s -> AcceptP2PSessionWithUser\n", userNames[r.SteamIDRemote])
		b.AcceptP2PSessionWithUser(r.SteamIDRemote)
	})
	var fail *p2p.P2PSessionConnectFail
	a.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) { fail = &f })
	peers := []*p2p.Networking{a, b}

	// 3. No connect call: the first send opens the session by itself.
	fmt.Println("\n-- session")
	fmt.Println("alice: SendP2PPacket(bob, \"hello, bob\", Reliable, channel 0)")
	start := time.Now()
	if !a.SendP2PPacket(bob, []byte("hello, bob"), p2p.P2PSendReliable, 0) {
		return fmt.Errorf("SendP2PPacket to bob refused")
	}
	err = frameLoop("session to open", 5*time.Second, peers, func() bool {
		sa, _ := a.GetP2PSessionState(bob)
		sb, _ := b.GetP2PSessionState(alice)
		return sa.ConnectionActive && sb.ConnectionActive
	})
	if err != nil {
		return err
	}
	fmt.Printf("alice, bob: session active on both sides after %v\n", time.Since(start).Round(time.Millisecond))

	// 4. The four send types on two channels. UnreliableNoDelay is thrown
	// away while a session is not yet open (COMPAT C11), so this comes after.
	fmt.Println("\n-- four send types, two channels")
	want := map[string]bool{"hello, bob": true}
	for _, ch := range []int{0, 1} {
		for _, st := range []p2p.P2PSend{p2p.P2PSendUnreliable, p2p.P2PSendUnreliableNoDelay,
			p2p.P2PSendReliable, p2p.P2PSendReliableWithBuffering} {
			msg := fmt.Sprintf("%s on channel %d", sendNames[st], ch)
			if err := a.Send(bob, []byte(msg), st, ch); err != nil { // Send: SendP2PPacket with a reason
				return fmt.Errorf("send %q: %w", msg, err)
			}
			want[msg] = true
		}
	}
	err = frameLoop("all nine messages", 5*time.Second, peers, func() bool {
		for _, ch := range []int{0, 1} {
			// The classic receive loop: ask for the size, then read.
			for size, ok := b.IsP2PPacketAvailable(ch); ok; size, ok = b.IsP2PPacketAvailable(ch) {
				buf := make([]byte, size)
				n, from, _ := b.ReadP2PPacket(buf, ch)
				fmt.Printf("bob:   channel %d from %s: %q\n", ch, userNames[from], buf[:n])
				delete(want, string(buf[:n]))
			}
		}
		return len(want) == 0
	})
	if err != nil {
		return fmt.Errorf("%w (missing: %v)", err, want)
	}

	// 5. One maximal reliable message, fragmented and reassembled underneath.
	fmt.Println("\n-- 1 MiB reliable message")
	big := make([]byte, p2p.MaxReliablePacketSize)
	for i := range big {
		big[i] = byte(i * 7)
	}
	start = time.Now()
	if !a.SendP2PPacket(bob, big, p2p.P2PSendReliable, 1) {
		return fmt.Errorf("SendP2PPacket of %d bytes refused", len(big))
	}
	got := make([]byte, p2p.MaxReliablePacketSize)
	var n uint32
	err = frameLoop("the 1 MiB message", 10*time.Second, peers, func() bool {
		var ok bool
		n, _, ok = b.ReadP2PPacket(got, 1)
		return ok
	})
	if err != nil {
		return err
	}
	if !bytes.Equal(got[:n], big) {
		return fmt.Errorf("1 MiB message arrived damaged (%d bytes)", n)
	}
	el := time.Since(start)
	fmt.Printf("bob:   %d bytes intact after %v (%.1f MB/s)\n", n, el.Round(time.Millisecond), float64(n)/el.Seconds()/1e6)

	// 6. A user who is not online: the rendezvous says so at once.
	fmt.Println("\n-- connect failure")
	a.SendP2PPacket(nobody, []byte("anyone there?"), p2p.P2PSendReliable, 0)
	if err := frameLoop("P2PSessionConnectFail", 5*time.Second, peers, func() bool { return fail != nil }); err != nil {
		return err
	}
	fmt.Printf("alice: P2PSessionConnectFail for %s: %s (%d)\n", userNames[fail.SteamIDRemote], fail.SessionError, fail.SessionError)
	if fail.SteamIDRemote != nobody || fail.SessionError != p2p.P2PSessionErrorDestinationNotLoggedOn {
		return fmt.Errorf("want DestinationNotLoggedOn for %d, got %+v", nobody, *fail)
	}

	// 7. The state dump a developer reaches for when debugging a session.
	fmt.Println("\n-- GetP2PSessionState")
	printState("alice -> bob   ", a, bob)
	printState("bob   -> alice ", b, alice)
	printState("alice -> nobody", a, nobody)
	return nil
}

func newPeer(id p2p.SteamID, rendezvousAddr string) (*p2p.Networking, error) {
	n, err := p2p.New(p2p.Config{
		SteamID:        id,
		AppID:          appID,
		RendezvousAddr: rendezvousAddr,
		ListenAddr:     "127.0.0.1:0",
	})
	if err != nil {
		return nil, fmt.Errorf("p2p.New(%d): %w", id, err)
	}
	return n, nil
}

// frameLoop is a game's frame loop in miniature: once per ~16 ms frame it
// pumps every peer's callbacks, then asks done whether the step is over.
func frameLoop(what string, limit time.Duration, peers []*p2p.Networking, done func() bool) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, p := range peers {
			p.RunCallbacks() // SteamAPI_RunCallbacks
		}
		if done() {
			return nil
		}
		time.Sleep(16 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v waiting for %s", limit, what)
}

func printState(label string, n *p2p.Networking, remote p2p.SteamID) {
	s, ok := n.GetP2PSessionState(remote)
	if !ok {
		fmt.Printf("%s: no session\n", label)
		return
	}
	ip := fmt.Sprintf("%d.%d.%d.%d", byte(s.RemoteIP>>24), byte(s.RemoteIP>>16), byte(s.RemoteIP>>8), byte(s.RemoteIP))
	fmt.Printf("%s: active=%v connecting=%v error=%s relay=%v queued=%d bytes/%d packets remote=%s:%d\n",
		label, s.ConnectionActive, s.Connecting, s.SessionError, s.UsingRelay,
		s.BytesQueuedForSend, s.PacketsQueuedForSend, ip, s.RemotePort)
}

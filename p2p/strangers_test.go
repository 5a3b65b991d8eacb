package p2p_test

import (
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// Strangers compete only with strangers: when users the game never
// accepted fill their quota of the session table (a quarter of it), a
// newcomer's request still reaches the game, the oldest stranger making
// room, so a friend who has not been pre-accepted gets through.
func TestStrangersCannotLockAFriendOut(t *testing.T) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mk := func(id p2p.SteamID, maxSessions int) *p2p.Networking {
		n, err := p2p.New(p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: srv.Addr().String(), MaxSessions: maxSessions})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	const player, friend = 1, 2
	p := mk(player, 16) // room for 4 strangers
	var requests []p2p.SteamID
	p.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) { requests = append(requests, r.SteamIDRemote) })

	const strangers = 12
	for i := 0; i < strangers; i++ {
		s := mk(p2p.SteamID(100+i), 0)
		if !s.SendP2PPacket(player, []byte("let me in"), p2p.P2PSendReliable, 0) {
			t.Fatal("stranger's send refused")
		}
	}
	// Wait until the strangers hold the player's quota: their requests
	// have reached the game.
	deadline := time.Now().Add(10 * time.Second)
	for len(requests) < 4 && time.Now().Before(deadline) {
		p.RunCallbacks()
		time.Sleep(2 * time.Millisecond)
	}
	if len(requests) < 4 {
		t.Fatalf("only %d stranger requests arrived", len(requests))
	}

	f := mk(friend, 0)
	start := time.Now()
	if !f.SendP2PPacket(player, []byte("it's me"), p2p.P2PSendReliable, 0) {
		t.Fatal("friend's send refused")
	}
	accepted := false
	for time.Since(start) < 10*time.Second {
		p.RunCallbacks()
		for _, r := range requests {
			if r == friend && !accepted {
				accepted = p.AcceptP2PSessionWithUser(friend)
			}
		}
		if size, ok := p.IsP2PPacketAvailable(0); ok && size == 7 {
			buf := make([]byte, 16)
			for {
				n, from, ok := p.ReadP2PPacket(buf, 0)
				if !ok {
					break
				}
				if from == friend && string(buf[:n]) == "it's me" {
					t.Logf("the friend's message arrived %v after its send, past %d strangers", time.Since(start), strangers)
					return
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("the friend's message never arrived (accepted %v, %d requests seen)", accepted, len(requests))
}

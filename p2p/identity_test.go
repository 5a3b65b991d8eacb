package p2p_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/transport/v2/stdnet"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// What crosses the wire is sealed: captured packets hold none of the
// plaintext; a closed session's packets replayed into the next session of
// the same two users, or one pair's packets sent to another user, are
// dropped with no effect.
func TestCapturedTrafficIsSealedAndBoundToItsSession(t *testing.T) {
	sn, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordNet{Net: sn}
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mk := func(id p2p.SteamID, edit func(*p2p.Config)) *p2p.Networking {
		cfg := p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"}
		if edit != nil {
			edit(&cfg)
		}
		n, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := mk(1, func(c *p2p.Config) { c.Net = rec })
	b, c := mk(2, nil), mk(3, nil)
	b.AcceptP2PSessionWithUser(1)
	c.AcceptP2PSessionWithUser(1)

	secret := []byte("SECRET-PLAINTEXT-the quick brown fox 0123456789")
	big := bytes.Repeat(secret, p2p.MaxReliablePacketSize/len(secret))
	a.SendP2PPacket(2, secret, p2p.P2PSendReliable, 0)
	receive(t, b, 0)
	// Unreliable: not waited for (it may be lost); it is on the wire either way.
	a.SendP2PPacket(2, secret, p2p.P2PSendUnreliable, 5)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		// A maximal message needs an empty queue (C07).
		if st, _ := a.GetP2PSessionState(2); st.BytesQueuedForSend == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("queue never drained")
		}
	}
	if err := a.Send(2, big, p2p.P2PSendReliable, 1); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, b, 1); !bytes.Equal(p.Data, big) {
		t.Fatal("big message corrupted")
	}
	a.SendP2PPacket(3, secret, p2p.P2PSendReliable, 0)
	receive(t, c, 0)

	rec.mu.Lock()
	captured := append([][]byte(nil), rec.sent...)
	rec.mu.Unlock()
	for _, d := range captured {
		for _, probe := range [][]byte{secret[:16], secret[16:32], []byte("quick brown fox")} {
			if bytes.Contains(d, probe) {
				t.Fatalf("a captured datagram holds plaintext %q", probe)
			}
		}
	}

	// A new session of the same two users: the old one's packets, replayed
	// from anywhere, open in neither the new session nor C's.
	a.CloseP2PSessionWithUser(2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := b.GetP2PSessionState(1); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never saw the close")
		}
		time.Sleep(2 * time.Millisecond)
	}
	a.SendP2PPacket(2, []byte("new session"), p2p.P2PSendReliable, 0)
	if p := receive(t, b, 0); string(p.Data) != "new session" {
		t.Fatalf("got %q", p.Data)
	}
	attacker, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	for _, d := range captured {
		attacker.WriteTo(d, b.LocalAddr())
		attacker.WriteTo(d, c.LocalAddr())
	}
	a.SendP2PPacket(2, []byte("after the replay"), p2p.P2PSendReliable, 0)
	if p := receive(t, b, 0); string(p.Data) != "after the replay" {
		t.Fatalf("b got %q after the replay", p.Data)
	}
	a.SendP2PPacket(3, []byte("c after the replay"), p2p.P2PSendReliable, 0)
	if p := receive(t, c, 0); string(p.Data) != "c after the replay" {
		t.Fatalf("c got %q after the replay", p.Data)
	}
	for _, n := range []*p2p.Networking{b, c} {
		for ch := 0; ch < 2; ch++ {
			if _, ok := n.IsP2PPacketAvailable(ch); ok {
				t.Fatalf("a replayed packet was delivered on channel %d", ch)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if p, err := b.Receive(ctx, 1); err == nil {
		t.Fatalf("replayed big message delivered again (%d bytes)", len(p.Data))
	}
}

package p2p_test

import (
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// PacketReady fires when a packet arrives, is already closed while one
// waits, and lets ReadP2PPacket read into the caller's buffer; it is
// closed for every channel once the Networking closes.
func TestPacketReady(t *testing.T) {
	_, a, b := start(t, nil)
	b.AcceptP2PSessionWithUser(1)
	ready := b.PacketReady(3)
	select {
	case <-ready:
		t.Fatal("ready before anything was sent")
	default:
	}
	if !a.SendP2PPacket(2, []byte("one"), p2p.P2PSendReliable, 3) || !a.SendP2PPacket(2, []byte("two"), p2p.P2PSendReliable, 3) {
		t.Fatal("send refused")
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("PacketReady did not fire for an arriving packet")
	}
	buf := make([]byte, 16)
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < 2 {
		if n, from, ok := b.ReadP2PPacket(buf, 3); ok {
			if from != 1 {
				t.Fatalf("from %d", from)
			}
			got = append(got, string(buf[:n]))
			continue
		}
		select {
		case <-b.PacketReady(3):
		case <-deadline:
			t.Fatalf("got %q, then nothing", got)
		}
	}
	if got[0] != "one" || got[1] != "two" {
		t.Fatalf("got %q", got)
	}
	a.SendP2PPacket(2, []byte("three"), p2p.P2PSendReliable, 3)
	for {
		if _, ok := b.IsP2PPacketAvailable(3); ok {
			break
		}
		select {
		case <-b.PacketReady(3):
		case <-time.After(10 * time.Second):
			t.Fatal("third packet never arrived")
		}
	}
	select {
	case <-b.PacketReady(3):
	default:
		t.Fatal("not ready while a packet waits")
	}
	idle := b.PacketReady(9)
	b.Close()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("PacketReady not closed by Close")
	}
}

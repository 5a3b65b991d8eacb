package p2p_test

import (
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// A peer that sends on ever new channel numbers cannot hold our memory
// with them: the message that would open one channel past MaxChannels
// closes its session, and what it sent on the channels within the cap
// stays readable. A new session of the peer waits for the game's accept
// again.
func TestPeerOpeningTooManyChannelsIsCutOff(t *testing.T) {
	const limit, sent = 100, 5000
	_, a, b := start(t, func(c *p2p.Config) { c.MaxChannels = limit })
	b.AcceptP2PSessionWithUser(1)
	for ch := 0; ch < sent; ch++ {
		if !a.SendP2PPacket(2, []byte{1}, p2p.P2PSendReliable, ch) {
			t.Fatalf("send on channel %d refused", ch)
		}
	}
	receive(t, b, 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Closed; the peer may try again at once, but its new session
		// waits for the game's accept.
		if st, ok := b.GetP2PSessionState(1); !ok || !st.ConnectionActive {
			break
		}
		if time.Now().After(deadline) {
			st, _ := b.GetP2PSessionState(1)
			sa, _ := a.GetP2PSessionState(2)
			t.Fatalf("the session of a peer on 5,000 channels is still open: %+v (the peer: %+v)", st, sa)
		}
		time.Sleep(5 * time.Millisecond)
	}
	open := 1 // channel 0, read above
	for ch := 1; ch < sent; ch++ {
		if _, ok := b.IsP2PPacketAvailable(ch); ok {
			open++
		}
	}
	if open > limit {
		t.Fatalf("%d channels hold data from the peer, cap %d", open, limit)
	}
	t.Logf("%d of %d channels delivered before the cut", open, sent)
}

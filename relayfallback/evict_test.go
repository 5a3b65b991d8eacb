package relayfallback

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tableIP is the i-th of a block of loopback peer IPs, 127.20.x.y.
func tableIP(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 20, byte(i / 250), byte(i%250 + 1)}), 40000)
}

// drain keeps the harness's answer channels from filling while a test
// makes more than their buffers' worth of permissions and bindings.
func drain(t *testing.T, h *harness) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-h.permOK:
			case <-h.bindOK:
			case <-done:
				return
			}
		}
	}()
}

// settled reports whether every tracked IP has its permission round trip
// behind it and no write waiting.
func (c *Client) settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 {
		return false
	}
	for _, ip := range c.ips {
		if ip.pending > 0 || ip.state == permRequesting || ip.state == permNone {
			return false
		}
	}
	return true
}

func (c *Client) tracked() (n, permitted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ip := range c.ips {
		if ip.permitted {
			permitted++
		}
	}
	return len(c.ips), permitted
}

// A peer table full of IPs that were only written to (what probes to a
// peer's addresses leave behind) makes room for a peer that Permit asks
// for, and for a new write; one full of IPs that Permit asked for refuses
// a new write and evicts none of them.
func TestFullPeerTableEvictsWhatNoPermitAskedFor(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	drain(t, h)
	h.allocate()
	for i := range maxPeers {
		require.NoError(t, h.client.WriteTo([]byte("probe"), tableIP(i)))
		if i%maxQueued == maxQueued-1 { // the queue holds maxQueued writes
			require.Eventually(t, h.client.settled, 10*time.Second, time.Millisecond)
		}
	}
	require.Eventually(t, h.client.settled, 10*time.Second, time.Millisecond)
	n, permitted := h.client.tracked()
	require.Equal(t, maxPeers, n)
	require.Zero(t, permitted)

	// A friend's peer comes: it gets its permission and its data.
	peer := peerSocket(t)
	h.client.Permit(addrOf(peer))
	require.NoError(t, h.client.WriteTo([]byte("to the friend"), addrOf(peer)))
	d := readPeer(t, peer)
	assert.Equal(t, "to the friend", string(d.b))
	n, permitted = h.client.tracked()
	assert.Equal(t, maxPeers, n, "the table stays bounded")
	assert.Equal(t, 1, permitted)
	// A new write makes room too.
	require.NoError(t, h.client.WriteTo([]byte("probe"), tableIP(maxPeers)))
	require.Eventually(t, h.client.settled, 10*time.Second, time.Millisecond)

	// Now every entry is one that Permit asked for: nothing makes way.
	peers := make([]netip.AddrPort, 0, maxPeers)
	for i := range maxPeers - 1 {
		peers = append(peers, tableIP(2*maxPeers+i))
	}
	h.client.Permit(peers...)
	require.Eventually(t, h.client.settled, 10*time.Second, time.Millisecond)
	n, permitted = h.client.tracked()
	require.Equal(t, maxPeers, n)
	require.Equal(t, maxPeers, permitted)
	assert.ErrorIs(t, h.client.WriteTo([]byte("probe"), tableIP(3*maxPeers)), ErrTooManyPeers)
	h.client.Permit(tableIP(3*maxPeers + 1))
	n, permitted = h.client.tracked()
	assert.Equal(t, maxPeers, n)
	assert.Equal(t, maxPeers, permitted, "a permitted IP was evicted")
	assert.NotContains(t, h.client.PeerIPs(), tableIP(3*maxPeers+1).Addr())
	assert.Contains(t, h.client.PeerIPs(), addrOf(peer).Addr())
}

package compat_test

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// C50: GetP2PSessionState(remote) (state, ok): false if no session exists.
// Connecting while looking up, traversing or waiting for accept;
// ConnectionActive once established and accepted; SessionError the last
// error; UsingRelay when traffic goes through a TURN relay;
// BytesQueuedForSend / PacketsQueuedForSend what waits in our send queue
// for that user; RemoteIP (IPv4, host byte order) and RemotePort: the
// peer's address, or the relay's when relayed.
func TestC50_SessionState(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	st, ok := a.GetP2PSessionState(2)
	assert.False(t, ok, "no session: %+v, %v", st, ok)
	assert.Equal(t, p2p.P2PSessionState{}, st, "no session: %+v, %v", st, ok)
	a.SendP2PPacket(2, make([]byte, 700), p2p.P2PSendReliable, 0)
	a.SendP2PPacket(2, make([]byte, 300), p2p.P2PSendUnreliable, 1)
	eventually(t, "the request", func() bool { return req.n() > 0 }, b)
	st, ok = a.GetP2PSessionState(2)
	assert.True(t, ok && st.Connecting && !st.ConnectionActive && !st.UsingRelay && st.SessionError == p2p.P2PSessionErrorNone,
		"waiting for accept: %+v", st)
	assert.EqualValues(t, 2, st.PacketsQueuedForSend,
		"queued while waiting: %d packets, %d bytes; want 2 and at least 1000", st.PacketsQueuedForSend, st.BytesQueuedForSend)
	assert.GreaterOrEqual(t, st.BytesQueuedForSend, int32(1000),
		"queued while waiting: %d packets, %d bytes; want 2 and at least 1000", st.PacketsQueuedForSend, st.BytesQueuedForSend)
	b.AcceptP2PSessionWithUser(1)
	recv(t, b, 0, a, b)
	recv(t, b, 1, a, b)
	eventually(t, "active, queue drained", func() bool {
		st, _ := a.GetP2PSessionState(2)
		return st.ConnectionActive && st.BytesQueuedForSend == 0 && st.PacketsQueuedForSend == 0
	})
	for _, c := range []struct {
		n      *p2p.Networking
		remote p2p.SteamID
		peer   *p2p.Networking
	}{{a, 2, b}, {b, 1, a}} {
		st, _ := c.n.GetP2PSessionState(c.remote)
		addr := c.peer.LocalAddr().(*net.UDPAddr)
		ip := addr.IP.To4()
		want := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
		assert.True(t, st.ConnectionActive && !st.Connecting && !st.UsingRelay && st.RemoteIP == want && st.RemotePort == uint16(addr.Port),
			"established state toward %d: %+v; want remote %s (%#x)", c.remote, st, addr, want)
	}
	// A failed session reports its error.
	a.SendP2PPacket(31337, nil, p2p.P2PSendReliable, 0)
	eventually(t, "failure", func() bool {
		st, ok := a.GetP2PSessionState(31337)
		return ok && !st.Connecting && st.SessionError == p2p.P2PSessionErrorDestinationNotLoggedOn
	})
}

package compat_test

import (
	"testing"
	"time"

	"github.com/pion/transport/v2/vnet"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// relayPair puts two peers behind symmetric NATs on a simulated internet
// whose rendezvous also relays: they can only meet through the relay.
func relayPair(t *testing.T, edit ...func(*p2p.Config)) (*p2p.Networking, *p2p.Networking) {
	t.Helper()
	l := vnetlab.New(t, true, rendezvous.ServerConfig{})
	mk := func(id p2p.SteamID, nw *vnet.Net) *p2p.Networking {
		cfg := p2p.Config{SteamID: id, AppID: app, RendezvousAddr: vnetlab.ServerAddr, Net: nw, ConnectTimeout: 2 * time.Second}
		for _, e := range edit {
			e(&cfg)
		}
		n, err := p2p.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { n.Close() })
		return n
	}
	return mk(1, l.Site(vnetlab.Symmetric, 1)[0]), mk(2, l.Site(vnetlab.Symmetric, 1)[0])
}

// C51: AllowP2PPacketRelay(allow) always returns true. It applies to
// sessions created afterwards, and to existing ones when they reconnect.
// Relay is allowed by default.
func TestC51_AllowRelayAppliesToNewAttempts(t *testing.T) {
	t.Parallel()
	a, b := relayPair(t)
	autoAccept(b)
	f := fails(a)
	// Allowed by default: the only way between them is the relay.
	a.SendP2PPacket(2, []byte("relayed"), p2p.P2PSendReliable, 0)
	p := recv(t, b, 0, a, b)
	assert.Equal(t, "relayed", string(p.Data), "got %q", p.Data)
	eventually(t, "relayed session", func() bool { st, _ := a.GetP2PSessionState(2); return st.ConnectionActive && st.UsingRelay })
	// Disallowing changes nothing for the session that exists.
	assert.True(t, a.AllowP2PPacketRelay(false) && b.AllowP2PPacketRelay(false), "AllowP2PPacketRelay(false) returned false")
	a.SendP2PPacket(2, []byte("still"), p2p.P2PSendReliable, 0)
	p = recv(t, b, 0, a, b)
	assert.Equal(t, "still", string(p.Data), "got %q", p.Data)
	// A new session is created under the new setting, and cannot open.
	a.CloseP2PSessionWithUser(2)
	eventually(t, "b's side closed", func() bool { _, ok := b.GetP2PSessionState(1); return !ok }, a, b)
	a.SendP2PPacket(2, []byte("no relay"), p2p.P2PSendReliable, 0)
	eventually(t, "connect failure without relay", func() bool { return f.n() == 1 }, a, b)
	e := f.all()[0]
	assert.Equal(t, p2p.P2PSessionErrorTimeout, e.SessionError, "failure %+v", e)
	// Allowed again: the session reconnects over the relay on the next send.
	assert.True(t, a.AllowP2PPacketRelay(true) && b.AllowP2PPacketRelay(true), "AllowP2PPacketRelay(true) returned false")
	a.SendP2PPacket(2, []byte("relayed again"), p2p.P2PSendReliable, 0)
	p = recv(t, b, 0, a, b)
	assert.Equal(t, "relayed again", string(p.Data), "got %q", p.Data)
}

// C52: With relay disallowed and no direct path possible (both sides
// behind endpoint-dependent NAT), the session fails as C35.
func TestC52_NoRelayNoDirectPathFailsLikeTimeout(t *testing.T) {
	t.Parallel()
	a, b := relayPair(t)
	a.AllowP2PPacketRelay(false)
	b.AllowP2PPacketRelay(false)
	autoAccept(b)
	f := fails(a)
	for i := 0; i < 3; i++ {
		a.SendP2PPacket(2, []byte("stuck"), p2p.P2PSendReliable, 0)
	}
	eventually(t, "connect failure", func() bool { return f.n() == 1 }, a, b)
	e := f.all()[0]
	assert.Equal(t, p2p.SteamID(2), e.SteamIDRemote, "failure %+v", e)
	assert.Equal(t, p2p.P2PSessionErrorTimeout, e.SessionError, "failure %+v", e)
	st, _ := a.GetP2PSessionState(2)
	assert.True(t, !st.ConnectionActive && !st.Connecting && st.BytesQueuedForSend == 0, "after the failure: %+v; want the queue dropped", st)
	_, ok := b.IsP2PPacketAvailable(0)
	assert.False(t, ok, "a packet crossed without a path")
}

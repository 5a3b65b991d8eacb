// Package compat_test is the COMPAT.md suite: one test per row, named after
// the row, using only the public API of p2p and rendezvous.
package compat_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

const app = 480

// waitLimit bounds every wait in this suite; conditions are polled, and a
// wait that runs out is a failure, never a pass.
const waitLimit = 10 * time.Second

func newServer(t *testing.T, cfg rendezvous.ServerConfig) *rendezvous.Server {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	s, err := rendezvous.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// newPeer starts a Networking for id against srv; edit adjusts its Config.
func newPeer(t *testing.T, srv *rendezvous.Server, id p2p.SteamID, edit ...func(*p2p.Config)) *p2p.Networking {
	t.Helper()
	cfg := p2p.Config{SteamID: id, AppID: app, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"}
	for _, e := range edit {
		e(&cfg)
	}
	n, err := p2p.New(cfg)
	require.NoError(t, err, "New(%d): %v", id, err)
	t.Cleanup(func() { n.Close() })
	return n
}

// pair starts a server and two peers, 1 and 2.
func pair(t *testing.T, edit ...func(*p2p.Config)) (*rendezvous.Server, *p2p.Networking, *p2p.Networking) {
	srv := newServer(t, rendezvous.ServerConfig{})
	return srv, newPeer(t, srv, 1, edit...), newPeer(t, srv, 2, edit...)
}

// autoAccept makes n accept every request when its callbacks run.
func autoAccept(n *p2p.Networking) {
	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) { n.AcceptP2PSessionWithUser(r.SteamIDRemote) })
}

// eventually polls cond, pumping the given peers' callbacks the way a game
// loop does, until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool, pump ...*p2p.Networking) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		for _, n := range pump {
			n.RunCallbacks()
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting for "+what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv waits for the next packet on channel, pumping callbacks of pump.
func recv(t *testing.T, n *p2p.Networking, channel int, pump ...*p2p.Networking) p2p.Packet {
	t.Helper()
	var p p2p.Packet
	eventually(t, "a packet", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		var err error
		p, err = n.Receive(ctx, channel)
		return err == nil
	}, pump...)
	return p
}

// connect opens an established, accepted session 1 -> 2 by one reliable
// message on channel 99, which it reads off.
func connect(t *testing.T, a, b *p2p.Networking, aID, bID p2p.SteamID) {
	t.Helper()
	b.AcceptP2PSessionWithUser(aID)
	require.True(t, a.SendP2PPacket(bID, []byte("open"), p2p.P2PSendReliable, 99), "send failed")
	p := recv(t, b, 99, a, b)
	require.Equal(t, "open", string(p.Data), "got %q", p.Data)
	eventually(t, "both sides active", func() bool {
		sa, _ := a.GetP2PSessionState(bID)
		sb, _ := b.GetP2PSessionState(aID)
		return sa.ConnectionActive && sb.ConnectionActive
	})
}

// counter counts callback events of one kind.
type counter[T any] struct {
	mu sync.Mutex
	ev []T
}

func (c *counter[T]) add(e T) { c.mu.Lock(); c.ev = append(c.ev, e); c.mu.Unlock() }
func (c *counter[T]) n() int  { c.mu.Lock(); defer c.mu.Unlock(); return len(c.ev) }
func (c *counter[T]) all() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.ev...)
}

func requests(n *p2p.Networking) *counter[p2p.P2PSessionRequest] {
	c := &counter[p2p.P2PSessionRequest]{}
	n.OnP2PSessionRequest(c.add)
	return c
}

func fails(n *p2p.Networking) *counter[p2p.P2PSessionConnectFail] {
	c := &counter[p2p.P2PSessionConnectFail]{}
	n.OnP2PSessionConnectFail(c.add)
	return c
}

// cutNet is the real network with a switch that makes every socket opened
// through it drop all traffic: a peer that vanishes without a goodbye.
type cutNet struct {
	transport.Net
	cut atomic.Bool
}

func newCutNet(t *testing.T) *cutNet {
	t.Helper()
	n, err := stdnet.NewNet()
	require.NoError(t, err)
	return &cutNet{Net: n}
}

func (c *cutNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := c.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &cutConn{PacketConn: pc, net: c}, nil
}

type cutConn struct {
	net.PacketConn
	net *cutNet
}

func (c *cutConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.net.cut.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *cutConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.net.cut.Load() {
			return n, a, err
		}
	}
}

func payload(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed*7 + i>>9)
	}
	return b
}

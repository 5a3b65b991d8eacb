package compat_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// C01: Session-less: the first send to a user starts a session by itself
// (lookup, NAT traversal, relay if needed). No connect call exists. The
// first packet may be delayed while that runs.
func TestC01_FirstSendStartsSession(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	autoAccept(b)
	_, ok := a.GetP2PSessionState(2)
	require.False(t, ok, "a session exists before any send")
	require.True(t, a.SendP2PPacket(2, []byte("first"), p2p.P2PSendReliable, 0), "first send refused")
	st, ok := a.GetP2PSessionState(2)
	assert.True(t, ok && (st.Connecting || st.ConnectionActive), "after the first send: state %+v, ok %v; want a session connecting", st, ok)
	p := recv(t, b, 0, a, b)
	assert.Equal(t, "first", string(p.Data), "got %q from %d", p.Data, p.Remote)
	assert.Equal(t, p2p.SteamID(1), p.Remote, "got %q from %d", p.Data, p.Remote)
}

// C02: Returns true when the packet was queued. That does not mean it arrived.
func TestC02_TrueMeansQueuedNotDelivered(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t, func(c *p2p.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	f := fails(a)
	// b never accepts: the send is queued (true) and never delivered.
	require.True(t, a.SendP2PPacket(2, []byte("lost"), p2p.P2PSendReliable, 0), "send refused")
	eventually(t, "connect failure", func() bool { return f.n() == 1 }, a, b)
	_, ok := b.IsP2PPacketAvailable(0)
	assert.False(t, ok, "a packet to a user who never accepted was delivered")
}

// C03: Returns false only when: the SteamID is invalid (0); the packet is
// too large for its send type; the send type is unknown; the channel is
// negative; or too many bytes are already queued for that user
// (backpressure). Each case also has a typed error in the Go-style API
// (ErrInvalidSteamID, ErrPacketTooLarge, ErrInvalidSendType,
// ErrInvalidChannel, ErrSendBufferFull).
func TestC03_FalseOnlyForInvalidArguments(t *testing.T) {
	t.Parallel()
	_, a, _ := pair(t, func(c *p2p.Config) { c.SendBufferSize = 4096 })
	cases := []struct {
		name   string
		remote p2p.SteamID
		size   int
		st     p2p.P2PSend
		ch     int
		want   error
	}{
		{"invalid SteamID", 0, 10, p2p.P2PSendReliable, 0, p2p.ErrInvalidSteamID},
		{"unreliable too large", 2, 1201, p2p.P2PSendUnreliable, 0, p2p.ErrPacketTooLarge},
		{"reliable too large", 2, 1<<20 + 1, p2p.P2PSendReliable, 0, p2p.ErrPacketTooLarge},
		{"unknown send type", 2, 10, p2p.P2PSend(4), 0, p2p.ErrInvalidSendType},
		{"negative send type", 2, 10, p2p.P2PSend(-1), 0, p2p.ErrInvalidSendType},
		{"negative channel", 2, 10, p2p.P2PSendReliable, -1, p2p.ErrInvalidChannel},
	}
	for _, c := range cases {
		assert.False(t, a.SendP2PPacket(c.remote, make([]byte, c.size), c.st, c.ch), "%s: SendP2PPacket = true", c.name)
		err := a.Send(c.remote, make([]byte, c.size), c.st, c.ch)
		assert.ErrorIs(t, err, c.want, "%s: Send = %v, want %v", c.name, err, c.want)
	}
	// Backpressure: user 2 never accepts, so what we send stays queued.
	require.True(t, a.SendP2PPacket(2, make([]byte, 3000), p2p.P2PSendReliable, 0), "first send refused")
	assert.False(t, a.SendP2PPacket(2, make([]byte, 3000), p2p.P2PSendReliable, 0), "send over the queue cap accepted")
	err := a.Send(2, make([]byte, 3000), p2p.P2PSendReliable, 0)
	assert.ErrorIs(t, err, p2p.ErrSendBufferFull, "Send over the cap = %v, want ErrSendBufferFull", err)
	// Anything else is accepted.
	err = a.Send(3, []byte("x"), p2p.P2PSendUnreliable, 1<<30)
	assert.NoError(t, err, "valid send = %v", err)
	a.Close()
	err = a.Send(2, []byte("x"), p2p.P2PSendReliable, 0)
	assert.ErrorIs(t, err, net.ErrClosed, "Send after Close = %v, want net.ErrClosed", err)
}

// C04: Size limits: Unreliable and UnreliableNoDelay at most 1200 bytes;
// Reliable and ReliableWithBuffering at most 1,048,576 bytes. Both bounds
// are inclusive. Zero-length packets are legal and are delivered as
// zero-length packets.
func TestC04_SizeLimitsInclusiveAndZeroLength(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t, func(c *p2p.Config) { c.NagleDelay = time.Millisecond })
	connect(t, a, b, 1, 2)
	for _, st := range []p2p.P2PSend{p2p.P2PSendUnreliable, p2p.P2PSendUnreliableNoDelay} {
		assert.Error(t, a.Send(2, make([]byte, 1201), st, 0), "type %d: 1201 bytes accepted", st)
	}
	for _, st := range []p2p.P2PSend{p2p.P2PSendReliable, p2p.P2PSendReliableWithBuffering} {
		assert.Error(t, a.Send(2, make([]byte, p2p.MaxReliablePacketSize+1), st, 0), "type %d: 1 MiB + 1 accepted", st)
	}
	sends := []struct {
		st   p2p.P2PSend
		size int
	}{
		{p2p.P2PSendUnreliable, 1200}, {p2p.P2PSendUnreliableNoDelay, 1200},
		{p2p.P2PSendReliable, p2p.MaxReliablePacketSize}, {p2p.P2PSendReliableWithBuffering, p2p.MaxReliablePacketSize},
		{p2p.P2PSendUnreliable, 0}, {p2p.P2PSendUnreliableNoDelay, 0},
		{p2p.P2PSendReliable, 0}, {p2p.P2PSendReliableWithBuffering, 0},
	}
	for i, s := range sends {
		// A maximal message needs an empty queue (C07): let the last one be acked.
		eventually(t, "send queue drained", func() bool { st, _ := a.GetP2PSessionState(2); return st.BytesQueuedForSend == 0 })
		data := payload(s.size, i)
		err := a.Send(2, data, s.st, 10+i)
		require.NoError(t, err, "type %d, %d bytes: %v", s.st, s.size, err)
		p := recv(t, b, 10+i, a, b)
		assert.False(t, !bytes.Equal(p.Data, data) || p.Data == nil && s.size == 0 && len(p.Data) != 0,
			"type %d: got %d bytes, want %d", s.st, len(p.Data), s.size)
	}
	// A zero-length packet reads as size 0, ok true.
	a.Send(2, nil, p2p.P2PSendReliable, 30)
	eventually(t, "zero-length packet", func() bool { _, ok := b.IsP2PPacketAvailable(30); return ok })
	n, ok := b.IsP2PPacketAvailable(30)
	assert.True(t, ok, "IsP2PPacketAvailable = %d, %v", n, ok)
	assert.Zero(t, n, "IsP2PPacketAvailable = %d, %v", n, ok)
	n, from, ok := b.ReadP2PPacket(make([]byte, 8), 30)
	assert.True(t, ok && n == 0 && from == 1, "ReadP2PPacket = %d, %d, %v", n, from, ok)
}

// C05: Sending to your own SteamID loops back into your own receive queue.
func TestC05_SendToSelfLoopsBack(t *testing.T) {
	t.Parallel()
	_, a, _ := pair(t)
	for _, st := range []p2p.P2PSend{p2p.P2PSendUnreliable, p2p.P2PSendUnreliableNoDelay, p2p.P2PSendReliable, p2p.P2PSendReliableWithBuffering} {
		require.True(t, a.SendP2PPacket(1, []byte{byte(st)}, st, 5), "send to self, type %d, refused", st)
	}
	for st := 0; st < 4; st++ {
		buf := make([]byte, 4)
		n, from, ok := a.ReadP2PPacket(buf, 5)
		assert.True(t, ok && n == 1 && buf[0] == byte(st) && from == 1, "read %d: n=%d from=%d ok=%v data=%v", st, n, from, ok, buf[:n])
	}
}

// C06: Channels are any non-negative int. Different channels to one user
// share one session and one underlying path.
func TestC06_ChannelsShareOneSession(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	autoAccept(b)
	chans := []int{0, 1, 7, 1000, 1 << 20, 1<<31 - 1}
	for _, ch := range chans {
		require.True(t, a.SendP2PPacket(2, []byte{byte(ch)}, p2p.P2PSendReliable, ch), "channel %d refused", ch)
	}
	for _, ch := range chans {
		p := recv(t, b, ch, a, b)
		assert.True(t, len(p.Data) == 1 && p.Data[0] == byte(ch) && p.Channel == ch, "channel %d: got %+v", ch, p)
	}
	// One session, one path: the state names a single remote address.
	st, ok := b.GetP2PSessionState(1)
	port := uint16(a.LocalAddr().(*net.UDPAddr).Port)
	assert.True(t, ok && st.ConnectionActive && st.RemotePort == port, "state %+v, want one active session to port %d", st, port)
}

// C07: Backpressure: a per-user send queue cap (default 1 MiB,
// configurable). A message always fits into an empty queue, so one maximal
// reliable message is always accepted.
func TestC07_SendQueueCap(t *testing.T) {
	t.Parallel()
	srv, a, _ := pair(t)
	// Default cap: one maximal message fits the empty queue; then the queue is full.
	err := a.Send(2, make([]byte, p2p.MaxReliablePacketSize), p2p.P2PSendReliable, 0)
	assert.NoError(t, err, "maximal message into empty queue: %v", err)
	err = a.Send(2, make([]byte, 100), p2p.P2PSendReliable, 0)
	assert.ErrorIs(t, err, p2p.ErrSendBufferFull, "over the default cap: %v", err)
	// Another user has a queue of its own.
	err = a.Send(3, make([]byte, 100), p2p.P2PSendReliable, 0)
	assert.NoError(t, err, "other user's queue: %v", err)
	// Configurable: 10 KiB.
	c := newPeer(t, srv, 4, func(c *p2p.Config) { c.SendBufferSize = 10 << 10 })
	for i := 0; i < 10; i++ {
		err := c.Send(2, make([]byte, 1000), p2p.P2PSendReliable, 0)
		require.NoError(t, err, "send %d under a 10 KiB cap: %v", i, err)
	}
	err = c.Send(2, make([]byte, 1000), p2p.P2PSendReliable, 0)
	assert.ErrorIs(t, err, p2p.ErrSendBufferFull, "over a 10 KiB cap: %v", err)
	err = c.Send(5, make([]byte, p2p.MaxReliablePacketSize), p2p.P2PSendReliable, 0)
	assert.NoError(t, err, "maximal message into an empty 10 KiB queue: %v", err)
}

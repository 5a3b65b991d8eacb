package compat_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// C20: IsP2PPacketAvailable(channel) (size, ok): true if a packet is
// waiting on that channel; size is the size of the packet that the next
// ReadP2PPacket on that channel returns. On false, size is 0. Other
// channels are not examined.
func TestC20_IsP2PPacketAvailableReportsNextSize(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	connect(t, a, b, 1, 2)
	n, ok := b.IsP2PPacketAvailable(2)
	assert.False(t, ok, "empty channel: %d, %v", n, ok)
	assert.Zero(t, n, "empty channel: %d, %v", n, ok)
	a.SendP2PPacket(2, make([]byte, 10), p2p.P2PSendReliable, 2)
	a.SendP2PPacket(2, make([]byte, 20), p2p.P2PSendReliable, 2)
	a.SendP2PPacket(2, []byte("end"), p2p.P2PSendReliable, 4)
	eventually(t, "all three", func() bool { _, ok := b.IsP2PPacketAvailable(4); return ok })
	n, ok = b.IsP2PPacketAvailable(2)
	assert.True(t, ok, "first: %d, %v; want 10", n, ok)
	assert.EqualValues(t, 10, n, "first: %d, %v; want 10", n, ok)
	n, ok = b.IsP2PPacketAvailable(3)
	assert.False(t, ok, "channel 3 (nothing sent): %d, %v", n, ok)
	assert.Zero(t, n, "channel 3 (nothing sent): %d, %v", n, ok)
	b.ReadP2PPacket(make([]byte, 64), 2)
	n, ok = b.IsP2PPacketAvailable(2)
	assert.True(t, ok, "second: %d, %v; want 20", n, ok)
	assert.EqualValues(t, 20, n, "second: %d, %v; want 20", n, ok)
	n, ok = b.IsP2PPacketAvailable(-1)
	assert.False(t, ok, "negative channel: %d, %v", n, ok)
	assert.Zero(t, n, "negative channel: %d, %v", n, ok)
}

// C21: ReadP2PPacket(dest, channel) (size, remote, ok): non-blocking; false
// when nothing waits (size 0, remote 0). Packets on one channel come out in
// arrival order across all accepted users.
func TestC21_ReadNonBlockingArrivalOrderAcrossUsers(t *testing.T) {
	t.Parallel()
	srv, a, b := pair(t)
	c := newPeer(t, srv, 3)
	n, from, ok := b.ReadP2PPacket(make([]byte, 8), 0)
	assert.True(t, !ok && n == 0 && from == 0, "empty read: %d, %d, %v", n, from, ok)
	connect(t, a, b, 1, 2)
	connect(t, c, b, 3, 2)
	// Alternate senders, waiting for each arrival, so the arrival order is
	// known: each data packet is followed by a marker on a channel of its
	// own, and one user's reliable data is one ordered stream (C14).
	var order []p2p.SteamID
	for i := 0; i < 6; i++ {
		from, sender := p2p.SteamID(1), a
		if i%2 == 1 {
			from, sender = 3, c
		}
		sender.SendP2PPacket(2, []byte{byte(i)}, p2p.P2PSendReliable, 0)
		sender.SendP2PPacket(2, nil, p2p.P2PSendReliable, 100+i)
		order = append(order, from)
		eventually(t, "arrival", func() bool { _, ok := b.IsP2PPacketAvailable(100 + i); return ok })
	}
	buf := make([]byte, 1)
	for i, want := range order {
		n, from, ok := b.ReadP2PPacket(buf, 0)
		require.True(t, ok && n == 1 && buf[0] == byte(i) && from == want,
			"read %d: n=%d from=%d ok=%v byte=%d; want from %d", i, n, from, ok, buf[0], want)
	}
}

// C22: A destination buffer smaller than the packet truncates: the first
// len(dest) bytes are copied, the packet is consumed, and size reports the
// bytes copied (decision, the convention of the open re-implementations
// that legacy games were tested against; the Go-style Receive returns whole
// packets).
func TestC22_ReadTruncatesAndConsumes(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	connect(t, a, b, 1, 2)
	a.SendP2PPacket(2, []byte("0123456789"), p2p.P2PSendReliable, 0)
	a.SendP2PPacket(2, []byte("next"), p2p.P2PSendReliable, 0)
	a.SendP2PPacket(2, []byte("whole packet"), p2p.P2PSendReliable, 1)
	eventually(t, "packets", func() bool { _, ok := b.IsP2PPacketAvailable(1); return ok })
	dest := make([]byte, 4)
	n, from, ok := b.ReadP2PPacket(dest, 0)
	assert.True(t, ok && n == 4 && string(dest) == "0123" && from == 1,
		"truncated read: n=%d %q from=%d ok=%v", n, dest[:n], from, ok)
	n, _, ok = b.ReadP2PPacket(dest, 0)
	assert.True(t, ok, "the truncated packet was not consumed: next read %q", dest[:n])
	assert.Equal(t, "next", string(dest[:n]), "the truncated packet was not consumed: next read %q", dest[:n])
	p := recv(t, b, 1)
	assert.Equal(t, "whole packet", string(p.Data), "Receive = %q, want the whole packet", p.Data)
}

// C23: Only packets from accepted sessions are ever visible to reads.
func TestC23_OnlyAcceptedSessionsAreVisible(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	for _, st := range []p2p.P2PSend{p2p.P2PSendUnreliable, p2p.P2PSendReliable, p2p.P2PSendReliableWithBuffering} {
		a.SendP2PPacket(2, []byte{byte(st)}, st, 0)
	}
	eventually(t, "the request", func() bool { return req.n() > 0 }, b)
	// Keep a trying for a while: the hellos flow, the data must not.
	eventually(t, "a few hellos", func() bool { st, _ := b.GetP2PSessionState(1); return st.Connecting }, a, b)
	_, ok := b.IsP2PPacketAvailable(0)
	assert.False(t, ok, "a packet from an unaccepted user is visible")
	_, _, ok = b.ReadP2PPacket(make([]byte, 8), 0)
	assert.False(t, ok, "a packet from an unaccepted user was read")
	b.AcceptP2PSessionWithUser(1)
	var got []byte
	for i := 0; i < 3; i++ {
		got = append(got, recv(t, b, 0, a, b).Data...)
	}
	assert.Equal(t, []byte{0, 2, 3}, got, "after accept: %v", got)
}

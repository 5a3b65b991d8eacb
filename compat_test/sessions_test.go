package compat_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// C30: When a user we have no session with (or have not talked to
// recently) sends to us, a P2PSessionRequest callback is posted with their
// SteamID.
func TestC30_RequestPostedForNewUser(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	a.SendP2PPacket(2, []byte("hi"), p2p.P2PSendReliable, 0)
	eventually(t, "the request", func() bool { return req.n() > 0 }, b)
	r := req.all()[0]
	assert.Equal(t, p2p.SteamID(1), r.SteamIDRemote, "request from %d, want 1", r.SteamIDRemote)
}

// C31: While that user keeps trying and we have not accepted, the request
// is posted again periodically (default every 10 s, decision, after the
// successor's initial timeout).
func TestC31_RequestRepeatedWhileUnaccepted(t *testing.T) {
	t.Parallel()
	srv := newServer(t, rendezvous.ServerConfig{})
	a := newPeer(t, srv, 1)
	b := newPeer(t, srv, 2, func(c *p2p.Config) { c.SessionRequestRepeat = 100 * time.Millisecond })
	req := requests(b)
	a.SendP2PPacket(2, []byte("hi"), p2p.P2PSendReliable, 0)
	eventually(t, "three requests", func() bool { return req.n() >= 3 }, b)
	for _, r := range req.all() {
		assert.Equal(t, p2p.SteamID(1), r.SteamIDRemote, "request from %d", r.SteamIDRemote)
	}
	// Once accepted, no more requests.
	b.AcceptP2PSessionWithUser(1)
	recv(t, b, 0, a, b)
	n := req.n()
	eventually(t, "established", func() bool { st, _ := a.GetP2PSessionState(2); return st.ConnectionActive }, b)
	a.SendP2PPacket(2, []byte("more"), p2p.P2PSendReliable, 0)
	recv(t, b, 0, a, b)
	after := req.n()
	assert.Equal(t, n, after, "request posted after accept: %d, then %d", n, after)
}

// C32: AcceptP2PSessionWithUser(remote): accepts; idempotent; returns false
// only for an invalid SteamID; also valid before any request (pre-accepts
// that user).
func TestC32_AcceptIdempotentAndPreAccepts(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	assert.False(t, b.AcceptP2PSessionWithUser(0), "accept of SteamID 0 returned true")
	for i := 0; i < 3; i++ {
		require.True(t, b.AcceptP2PSessionWithUser(1), "pre-accept returned false")
	}
	assert.True(t, b.AcceptP2PSessionWithUser(12345), "accept of a user never seen returned false")
	a.SendP2PPacket(2, []byte("pre"), p2p.P2PSendReliable, 0)
	p := recv(t, b, 0, a, b)
	assert.Equal(t, "pre", string(p.Data), "got %q", p.Data)
	nreq := req.n()
	assert.Zero(t, nreq, "a pre-accepted user posted %d requests", nreq)
	assert.True(t, b.AcceptP2PSessionWithUser(1), "accept of an established session returned false")
}

// C33: Sending to a user implicitly accepts their session. If the request
// callback is still undispatched when the local app sends to that user, it
// is dropped (games exist that break on a request for a peer they already
// talk to).
func TestC33_SendingAcceptsAndDropsPendingRequest(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	a.SendP2PPacket(2, []byte("from a"), p2p.P2PSendReliable, 0)
	// b's session for a exists once the request is posted; b runs no callbacks.
	eventually(t, "b sees a", func() bool { _, ok := b.GetP2PSessionState(1); return ok })
	b.SendP2PPacket(1, []byte("from b"), p2p.P2PSendReliable, 0)
	p := recv(t, b, 0, a)
	assert.Equal(t, "from a", string(p.Data), "b got %q", p.Data)
	p = recv(t, a, 0, a)
	assert.Equal(t, "from b", string(p.Data), "a got %q", p.Data)
	b.RunCallbacks()
	nreq := req.n()
	assert.Zero(t, nreq, "%d requests dispatched for a user b already talks to", nreq)
}

// C34: Ignoring the request is how a game refuses. Data from an unaccepted
// user stays on the sender's side (bounded by the sender's send queue), so
// a refusing receiver holds no memory for it.
func TestC34_UnacceptedDataStaysWithSender(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	const total = 20 * 1000
	for i := 0; i < 20; i++ {
		require.True(t, a.SendP2PPacket(2, make([]byte, 1000), p2p.P2PSendReliable, 0), "send refused")
	}
	eventually(t, "the request", func() bool { return req.n() > 0 }, b)
	eventually(t, "hellos exchanged", func() bool { st, _ := b.GetP2PSessionState(1); return st.Connecting }, b)
	st, _ := a.GetP2PSessionState(2)
	assert.GreaterOrEqual(t, st.BytesQueuedForSend, int32(total),
		"sender's queue = %d bytes, %d packets; want all %d bytes waiting", st.BytesQueuedForSend, st.PacketsQueuedForSend, total)
	assert.EqualValues(t, 20, st.PacketsQueuedForSend,
		"sender's queue = %d bytes, %d packets; want all %d bytes waiting", st.BytesQueuedForSend, st.PacketsQueuedForSend, total)
	bs, _ := b.GetP2PSessionState(1)
	assert.False(t, bs.ConnectionActive, "refusing receiver's session: %+v", bs)
	assert.Zero(t, bs.BytesQueuedForSend, "refusing receiver's session: %+v", bs)
	_, ok := b.IsP2PPacketAvailable(0)
	assert.False(t, ok, "refusing receiver holds a packet")
}

// C35: The sender's session is Connecting until the receiver accepts. If it
// is not accepted and established within the connect timeout (default
// 20 s, configurable), the sender gets P2PSessionConnectFail{remote,
// Timeout} and every packet still queued for that user is dropped. A later
// send retries from scratch.
func TestC35_ConnectTimeoutFailsAndDropsQueue(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t, func(c *p2p.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	f := fails(a)
	for i := 0; i < 3; i++ {
		a.SendP2PPacket(2, []byte("waiting"), p2p.P2PSendReliable, 0)
	}
	st, _ := a.GetP2PSessionState(2)
	assert.True(t, st.Connecting, "before the timeout: %+v", st)
	assert.EqualValues(t, 3, st.PacketsQueuedForSend, "before the timeout: %+v", st)
	eventually(t, "connect failure", func() bool { return f.n() == 1 }, a, b)
	e := f.all()[0]
	assert.Equal(t, p2p.SteamID(2), e.SteamIDRemote, "failure %+v", e)
	assert.Equal(t, p2p.P2PSessionErrorTimeout, e.SessionError, "failure %+v", e)
	st, _ = a.GetP2PSessionState(2)
	assert.True(t, !st.Connecting && !st.ConnectionActive && st.PacketsQueuedForSend == 0 && st.BytesQueuedForSend == 0,
		"after the timeout: %+v; want the queue dropped", st)
	// A later send starts over; this time b accepts.
	autoAccept(b)
	a.SendP2PPacket(2, []byte("retry"), p2p.P2PSendReliable, 0)
	st, _ = a.GetP2PSessionState(2)
	assert.True(t, st.Connecting || st.ConnectionActive, "retry is not connecting: %+v", st)
	p := recv(t, b, 0, a, b)
	assert.Equal(t, "retry", string(p.Data), "got %q; the dropped packets must not arrive", p.Data)
}

// C36: P2PSessionConnectFail is posted once per failed session: after a
// failure, a retry that fails again posts nothing until the game calls
// CloseP2PSessionWithUser (observed Steam behaviour that wrappers rely on).
func TestC36_ConnectFailPostedOnceUntilClose(t *testing.T) {
	t.Parallel()
	_, a, _ := pair(t)
	f := fails(a)
	failed := func() bool {
		st, ok := a.GetP2PSessionState(777)
		return ok && !st.Connecting && st.SessionError == p2p.P2PSessionErrorDestinationNotLoggedOn
	}
	a.SendP2PPacket(777, []byte("x"), p2p.P2PSendReliable, 0)
	eventually(t, "first failure", func() bool { return f.n() == 1 }, a)
	a.SendP2PPacket(777, []byte("x"), p2p.P2PSendReliable, 0)
	eventually(t, "second failure", failed)
	a.RunCallbacks()
	nf := f.n()
	assert.Equal(t, 1, nf, "a retry that failed again posted: %d callbacks", nf)
	require.True(t, a.CloseP2PSessionWithUser(777), "close of the failed session returned false")
	a.SendP2PPacket(777, []byte("x"), p2p.P2PSendReliable, 0)
	eventually(t, "failure after close", func() bool { return f.n() == 2 }, a)
}

// C37: Error codes: Timeout (4) when the user cannot be reached or does not
// accept; DestinationNotLoggedOn (3) at once when the rendezvous knows no
// such user, and NotRunningApp (1) when the user is online under another
// AppID (decision: the old SDK's codes, which give fast, precise feedback;
// a server in privacy mode answers neither, and the sender then sees
// Timeout); NoRightsToApp (2) when the rendezvous refuses our own
// registration for that AppID.
func TestC37_ErrorCodes(t *testing.T) {
	t.Parallel()
	srv := newServer(t, rendezvous.ServerConfig{AllowedApps: []uint32{app, 730}})
	a := newPeer(t, srv, 1, func(c *p2p.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	newPeer(t, srv, 2)                                        // same app, never accepts
	newPeer(t, srv, 3, func(c *p2p.Config) { c.AppID = 730 }) // another app
	f := fails(a)
	start := time.Now()
	a.SendP2PPacket(404, []byte("x"), p2p.P2PSendReliable, 0)
	a.SendP2PPacket(3, []byte("x"), p2p.P2PSendReliable, 0)
	eventually(t, "two fast failures", func() bool { return f.n() == 2 }, a)
	took := time.Since(start)
	assert.Less(t, took, 300*time.Millisecond, "rendezvous answers took %v: not 'at once' (before the timeout)", took)
	a.SendP2PPacket(2, []byte("x"), p2p.P2PSendReliable, 0)
	eventually(t, "timeout", func() bool { return f.n() == 3 }, a)
	want := map[p2p.SteamID]p2p.P2PSessionError{
		404: p2p.P2PSessionErrorDestinationNotLoggedOn,
		3:   p2p.P2PSessionErrorNotRunningApp,
		2:   p2p.P2PSessionErrorTimeout,
	}
	for _, e := range f.all() {
		assert.Equal(t, want[e.SteamIDRemote], e.SessionError, "user %d: error %d, want %d", e.SteamIDRemote, e.SessionError, want[e.SteamIDRemote])
	}
	_, err := p2p.New(p2p.Config{SteamID: 9, AppID: 999, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
	assert.ErrorIs(t, err, p2p.ErrNoRightsToApp, "New for a refused AppID: %v, want ErrNoRightsToApp", err)
}

// C38: CloseP2PSessionWithUser(remote): returns false if there was no
// session; otherwise drops unsent outgoing and unread incoming data for
// that user, tells the remote side (best effort), and frees the session.
// Later traffic from that user posts a new request.
func TestC38_CloseDropsDataTellsPeerAndFrees(t *testing.T) {
	t.Parallel()
	srv, a, b := pair(t)
	assert.False(t, a.CloseP2PSessionWithUser(2), "close without a session returned true")
	req := requests(b)
	connect(t, a, b, 1, 2)
	a.SendP2PPacket(2, []byte("unread"), p2p.P2PSendReliable, 0)
	eventually(t, "unread packet", func() bool { _, ok := b.IsP2PPacketAvailable(0); return ok })
	require.True(t, b.CloseP2PSessionWithUser(1), "close returned false")
	_, ok := b.IsP2PPacketAvailable(0)
	assert.False(t, ok, "unread incoming data survived the close")
	_, ok = b.GetP2PSessionState(1)
	assert.False(t, ok, "session not freed")
	eventually(t, "the remote side told", func() bool { _, ok := a.GetP2PSessionState(2); return !ok })
	// Later traffic from that user posts a new request.
	a.SendP2PPacket(2, []byte("again"), p2p.P2PSendReliable, 0)
	eventually(t, "a new request", func() bool { return req.n() == 1 }, b)

	// Unsent outgoing data is dropped: c never accepts, a closes.
	c := newPeer(t, srv, 3)
	_ = c
	a.SendP2PPacket(3, make([]byte, 5000), p2p.P2PSendReliable, 0)
	st, _ := a.GetP2PSessionState(3)
	assert.GreaterOrEqual(t, st.BytesQueuedForSend, int32(5000), "queued %d", st.BytesQueuedForSend)
	assert.True(t, a.CloseP2PSessionWithUser(3), "close returned false")
	_, ok = a.GetP2PSessionState(3)
	assert.False(t, ok, "session with queued data not freed")
}

// C39: CloseP2PChannelWithUser(remote, channel): false if there is no
// session or that channel is not open; drops unread packets on that channel
// from that user; a channel is open once something was sent or received on
// it; closing the last open channel closes the session as C38.
func TestC39_CloseChannel(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	assert.False(t, b.CloseP2PChannelWithUser(1, 0), "close channel without a session returned true")
	connect(t, a, b, 1, 2) // opens channel 99 on both sides
	b.ReadP2PPacket(nil, 99)
	a.SendP2PPacket(2, []byte("zero"), p2p.P2PSendReliable, 0)
	a.SendP2PPacket(2, []byte("one"), p2p.P2PSendReliable, 1)
	eventually(t, "both", func() bool {
		_, ok0 := b.IsP2PPacketAvailable(0)
		_, ok1 := b.IsP2PPacketAvailable(1)
		return ok0 && ok1
	})
	assert.False(t, b.CloseP2PChannelWithUser(1, 5), "closing a channel never used returned true")
	assert.True(t, b.CloseP2PChannelWithUser(1, 0), "closing an open channel returned false")
	_, ok := b.IsP2PPacketAvailable(0)
	assert.False(t, ok, "unread packet on the closed channel survived")
	_, ok = b.IsP2PPacketAvailable(1)
	assert.True(t, ok, "a packet on another channel was dropped")
	assert.True(t, b.CloseP2PChannelWithUser(1, 99), "closing channel 99 returned false")
	_, ok = b.GetP2PSessionState(1)
	assert.True(t, ok, "session closed while channel 1 is still open")
	require.True(t, b.CloseP2PChannelWithUser(1, 1), "closing the last channel returned false")
	_, ok = b.GetP2PSessionState(1)
	assert.False(t, ok, "closing the last open channel did not close the session")
	_, ok = b.IsP2PPacketAvailable(1)
	assert.False(t, ok, "unread data survived the session close")
	eventually(t, "the remote side told", func() bool { _, ok := a.GetP2PSessionState(2); return !ok })
}

// C40: An established session with no traffic either way for the idle
// timeout (default 3 min, decision, the successor's value) is closed
// silently. Keepalives run on the library's own goroutines, so a game loop
// that stalls (loading a map, a debugger) does not cause a false timeout.
func TestC40_IdleClosedSilentlyAndStallIsNotTimeout(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		_, a, b := pair(t, func(c *p2p.Config) { c.IdleTimeout = 300 * time.Millisecond })
		fa, fb := fails(a), fails(b)
		connect(t, a, b, 1, 2)
		b.ReadP2PPacket(nil, 99)
		eventually(t, "idle close", func() bool {
			_, okA := a.GetP2PSessionState(2)
			_, okB := b.GetP2PSessionState(1)
			return !okA && !okB
		})
		a.RunCallbacks()
		b.RunCallbacks()
		assert.Zero(t, fa.n()+fb.n(), "idle close posted a connect failure")
	})
	t.Run("stalled game loop", func(t *testing.T) {
		t.Parallel()
		const timeout = 200 * time.Millisecond
		_, a, b := pair(t, func(c *p2p.Config) { c.ConnectTimeout = timeout })
		fa := fails(a)
		connect(t, a, b, 1, 2)
		// Both games stall: no calls at all for five connect timeouts. The
		// stall is the behaviour under test, so it is a real wait.
		time.Sleep(5 * timeout)
		a.RunCallbacks()
		st, _ := a.GetP2PSessionState(2)
		nf := fa.n()
		assert.True(t, st.ConnectionActive, "a stalled game loop broke the session: %+v, %d failures", st, nf)
		assert.Zero(t, nf, "a stalled game loop broke the session: %+v, %d failures", st, nf)
	})
}

// C41: An established session whose peer stops answering for the connect
// timeout fails like C35.
func TestC41_DeadPeerFailsLikeTimeout(t *testing.T) {
	t.Parallel()
	srv := newServer(t, rendezvous.ServerConfig{})
	cut := newCutNet(t)
	a := newPeer(t, srv, 1, func(c *p2p.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	b := newPeer(t, srv, 2, func(c *p2p.Config) { c.Net = cut })
	f := fails(a)
	connect(t, a, b, 1, 2)
	cut.cut.Store(true) // b vanishes without a goodbye
	a.SendP2PPacket(2, []byte("into the void"), p2p.P2PSendReliable, 0)
	eventually(t, "connect failure", func() bool { return f.n() == 1 }, a)
	e := f.all()[0]
	assert.Equal(t, p2p.SteamID(2), e.SteamIDRemote, "failure %+v", e)
	assert.Equal(t, p2p.P2PSessionErrorTimeout, e.SessionError, "failure %+v", e)
	st, _ := a.GetP2PSessionState(2)
	assert.False(t, st.ConnectionActive, "after failure: %+v", st)
	assert.Zero(t, st.BytesQueuedForSend, "after failure: %+v", st)
}

// C42: The session table is an LRU of bounded size (default 4096,
// configurable). When it is full, the least recently used session is
// closed as C38 to make room.
func TestC42_LRUEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	srv := newServer(t, rendezvous.ServerConfig{})
	a := newPeer(t, srv, 1, func(c *p2p.Config) { c.MaxSessions = 2 })
	b, c, d := newPeer(t, srv, 2), newPeer(t, srv, 3), newPeer(t, srv, 4)
	connect(t, a, b, 1, 2)
	connect(t, a, c, 1, 3)
	a.SendP2PPacket(2, []byte("touch"), p2p.P2PSendReliable, 0) // b is now the most recent
	connect(t, a, d, 1, 4)
	_, ok := a.GetP2PSessionState(3)
	assert.False(t, ok, "the least recently used session (3) was not evicted")
	for _, id := range []p2p.SteamID{2, 4} {
		_, ok := a.GetP2PSessionState(id)
		assert.True(t, ok, "session %d evicted", id)
	}
	// Closed as C38: the evicted peer is told.
	eventually(t, "evicted peer told", func() bool { _, ok := c.GetP2PSessionState(1); return !ok })
}

// C38 (decisions on the other side of a close): when the remote side
// closes, what it sent and we have not read stays readable, and our accept
// of that user stands for their next session.
func TestC38_RemoteCloseKeepsUnreadAndAccept(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	req := requests(b)
	connect(t, a, b, 1, 2)
	a.SendP2PPacket(2, []byte("goodbye"), p2p.P2PSendReliable, 0)
	eventually(t, "goodbye arrives", func() bool { _, ok := b.IsP2PPacketAvailable(0); return ok })
	a.CloseP2PSessionWithUser(2)
	eventually(t, "b told", func() bool { _, ok := b.GetP2PSessionState(1); return !ok })
	p := recv(t, b, 0)
	assert.Equal(t, "goodbye", string(p.Data), "unread message after the remote close: %q", p.Data)
	a.SendP2PPacket(2, []byte("back"), p2p.P2PSendReliable, 0)
	p = recv(t, b, 0, a, b)
	assert.Equal(t, "back", string(p.Data), "got %q", p.Data)
	nreq := req.n()
	assert.Zero(t, nreq, "%d requests for a user b had accepted", nreq)
}

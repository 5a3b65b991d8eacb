package compat_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// C60: Callbacks are queued and run only inside RunCallbacks(), on the
// goroutine that called it, in the order they were posted. No library
// goroutine ever calls game code.
func TestC60_CallbacksOnlyInsideRunCallbacksInOrder(t *testing.T) {
	t.Parallel()
	_, a, _ := pair(t)
	var inRun atomic.Bool
	var outside atomic.Int32
	var order []p2p.SteamID
	a.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		if !inRun.Load() {
			outside.Add(1)
		}
		order = append(order, f.SteamIDRemote) // no lock: only this goroutine may run it
	})
	failed := func(id p2p.SteamID) func() bool {
		return func() bool {
			st, ok := a.GetP2PSessionState(id)
			return ok && st.SessionError != p2p.P2PSessionErrorNone
		}
	}
	// Three failures, posted in a known order; nobody runs callbacks yet.
	for _, id := range []p2p.SteamID{501, 502, 503} {
		a.SendP2PPacket(id, nil, p2p.P2PSendReliable, 0)
		eventually(t, "failure", failed(id))
	}
	assert.Empty(t, order, "a handler ran before RunCallbacks")
	inRun.Store(true)
	a.RunCallbacks()
	inRun.Store(false)
	assert.Zero(t, outside.Load(), "a handler ran outside RunCallbacks")
	assert.Equal(t, []p2p.SteamID{501, 502, 503}, order, "dispatch order %v, want [501 502 503]", order)
	// On the calling goroutine: a handler sees the caller's goroutine state.
	done := make(chan bool)
	go func() {
		ran := false
		a.OnP2PSessionConnectFail(func(p2p.P2PSessionConnectFail) { ran = true })
		a.SendP2PPacket(504, nil, p2p.P2PSendReliable, 0)
		deadline := time.Now().Add(waitLimit)
		for !ran && time.Now().Before(deadline) {
			a.RunCallbacks()
			time.Sleep(time.Millisecond)
		}
		done <- ran
	}()
	assert.True(t, <-done, "handler did not run on the goroutine calling RunCallbacks")
}

// C61: Any number of handlers can be registered per callback type; each
// runs once per event, in registration order.
func TestC61_HandlersRunOnceInRegistrationOrder(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t)
	var calls []int
	for i := 0; i < 3; i++ {
		i := i
		b.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
			if r.SteamIDRemote == 1 {
				calls = append(calls, i)
			}
		})
	}
	a.SendP2PPacket(2, nil, p2p.P2PSendReliable, 0)
	eventually(t, "the request", func() bool { return len(calls) > 0 }, b)
	assert.Equal(t, []int{0, 1, 2}, calls, "handler calls %v, want [0 1 2]", calls)
	b.RunCallbacks()
	assert.Len(t, calls, 3, "handlers ran again without a new event: %v", calls)
}

// C70: Every method is safe to call from any goroutine at any time,
// including from inside a callback handler.
func TestC70_ConcurrentUseAndReentrantHandlers(t *testing.T) {
	t.Parallel()
	srv, a, b := pair(t)
	c := newPeer(t, srv, 3)
	// Handlers that call back into the API, including RunCallbacks itself.
	for _, n := range []*p2p.Networking{a, b, c} {
		n := n
		n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
			n.GetP2PSessionState(r.SteamIDRemote)
			n.AcceptP2PSessionWithUser(r.SteamIDRemote)
			n.SendP2PPacket(r.SteamIDRemote, []byte("hi"), p2p.P2PSendReliable, 7)
			n.IsP2PPacketAvailable(7)
			n.RunCallbacks()
		})
		n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
			n.CloseP2PSessionWithUser(f.SteamIDRemote)
		})
	}
	peers := []*p2p.Networking{a, b, c}
	ids := []p2p.SteamID{1, 2, 3}
	var wg sync.WaitGroup
	var received atomic.Int64
	stop := time.Now().Add(time.Second)
	for i, n := range peers {
		i, n := i, n
		wg.Add(3)
		go func() { // sender
			defer wg.Done()
			for k := 0; time.Now().Before(stop) && k < 2000; k++ {
				to := ids[(i+1+k%2)%3]
				n.SendP2PPacket(to, []byte{byte(k)}, p2p.P2PSend(k%4), k%3)
				if k%100 == 0 {
					n.SendP2PPacket(p2p.SteamID(900+k), nil, p2p.P2PSendReliable, 0) // fails fast
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			buf := make([]byte, 2048)
			for time.Now().Before(stop) {
				for ch := 0; ch < 3; ch++ {
					if _, _, ok := n.ReadP2PPacket(buf, ch); ok {
						received.Add(1)
					}
				}
				n.RunCallbacks()
			}
		}()
		go func() { // inspector
			defer wg.Done()
			for time.Now().Before(stop) {
				for _, id := range ids {
					n.GetP2PSessionState(id)
					n.IsP2PPacketAvailable(int(id))
					n.AllowP2PPacketRelay(true)
				}
				n.CloseP2PChannelWithUser(999, 0)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	assert.NotZero(t, received.Load(), "nothing was received under concurrent use")
	// Close from several goroutines at once.
	var cw sync.WaitGroup
	for _, n := range peers {
		for k := 0; k < 2; k++ {
			cw.Add(1)
			go func(n *p2p.Networking) { defer cw.Done(); n.Close() }(n)
		}
	}
	cw.Wait()
}

package session

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Manager takes its time from Config.Clock, and only with its lock
// held: a time read before waiting for the lock is what made the time of
// a step go backwards, or stale, when the time was passed in.
func TestClockIsReadUnderTheLock(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	var reads, outside int
	for _, n := range []*node{a, b} {
		n.m.cfg.Clock = func() time.Time {
			reads++
			if n.m.mu.TryLock() {
				n.m.mu.Unlock()
				outside++
			}
			return w.now
		}
	}
	a.send(2, "hello")
	w.pump()
	b.m.Accept(1)
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	require.Equal(t, "hello", b.read())
	b.m.Close(1)
	w.advance(time.Second, 100*time.Millisecond)
	assert.Positive(t, reads)
	assert.Zero(t, outside, "clock reads without the lock, of %d", reads)
}

// A clock that steps back (an NTP step, a virtual clock rewound) is held
// at the latest time it gave: the session goes on, its messages arrive,
// and its RTT estimate stays that of the path, where a time going back
// made the ACK delay wrap.
func TestClockSteppingBackIsHeld(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "first")
	w.pump()
	w.advance(100*time.Millisecond, 10*time.Millisecond)
	require.Equal(t, "first", b.read())
	latest := w.now

	w.now = w.now.Add(-5 * time.Second) // the clock steps back
	a.send(2, "after the step")
	w.pump()
	assert.Equal(t, latest, a.m.now, "the time of a step after the clock went back")
	w.advance(5100*time.Millisecond, 10*time.Millisecond)
	assert.Equal(t, "after the step", b.read())
	for _, n := range []*node{a, b} {
		snap, ok := n.m.SnapshotOf(3 - n.id)
		require.True(t, ok)
		st, _ := n.m.State(3 - n.id)
		assert.True(t, st.ConnectionActive, "%d: %+v", n.id, snap)
		assert.Less(t, snap.Stats.SmoothedRTT, time.Second, "%d's RTT estimate", n.id)
	}
}

// One session's state machine, alone, in virtual time: no peer, no
// socket, no goroutine. The test plays the rendezvous; the session looks
// the user up and sends an opener to the public address it was given;
// without a receipt from the peer it probes that address in full from
// directFallback on, at most helloMax apart; it fails with Timeout at
// 20 s, after which it sends nothing more.
func TestSessionAloneInVirtualTime(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{})
	start := w.now
	a.send(2, "anyone there?")
	require.Equal(t, []SteamID{2}, a.targets, "a lookup in the outbox")
	a.targets, a.lookups = nil, nil
	peerKeys := w.add(9, Config{}).keys // a key for the user; node 9 itself plays no part
	silent := netip.MustParseAddrPort("198.18.5.5:40000")
	a.m.OnLookup(LookupResult{Target: 2, Status: LookupFound, PublicKey: peerKeys.Public, Addrs: []netip.AddrPort{silent}})

	var hellos []time.Duration
	for w.now.Sub(start) < 25*time.Second {
		for _, d := range w.wire {
			if d.to == silent {
				hellos = append(hellos, w.now.Sub(start))
			}
		}
		w.wire = nil
		if len(a.fails) == 0 {
			a.cb.Run()
		}
		w.now = w.now.Add(10 * time.Millisecond)
		a.m.OnTimer()
	}
	a.cb.Run()
	require.Len(t, a.fails, 1)
	assert.Equal(t, ConnectFail{SteamIDRemote: 2, SessionError: ErrorTimeout}, a.fails[0])
	require.NotEmpty(t, hellos)
	assert.Equal(t, 1, a.openers, "openers to the public address")
	assert.GreaterOrEqual(t, hellos[0], directFallback, "a full probe before the fallback")
	last := hellos[len(hellos)-1]
	assert.LessOrEqual(t, last, 20*time.Second, "hellos after the timeout")
	assert.Greater(t, last, 18*time.Second, "hellos stopped early")
	gaps := make([]time.Duration, 0, len(hellos))
	for i := 1; i < len(hellos); i++ {
		if g := hellos[i] - hellos[i-1]; g > 0 {
			gaps = append(gaps, g)
		}
	}
	require.NotEmpty(t, gaps)
	for _, g := range gaps {
		assert.LessOrEqual(t, g, helloMax+10*time.Millisecond, "a gap between hellos")
	}
	t.Logf("%d hellos at %v", len(hellos), hellos)
}

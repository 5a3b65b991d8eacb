package session

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A user whose session with us made room for another stranger, after it
// had answered that user's probes, still connects once the game accepts:
// the initiator keeps looking us up until we accept, and each lookup
// brings us its offer again.
func TestEvictedStrangerConnectsOnAccept(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{})
	b := w.add(2, Config{MaxSessions: 4}) // room for one stranger
	c := w.add(3, Config{})
	a.send(2, "hi")
	w.advance(500*time.Millisecond, 10*time.Millisecond)
	if sa, _ := a.m.tab.lru.Peek(2); !sa.peerKnowsUs {
		t.Fatal("setup: B never answered A's probes")
	}
	c.send(2, "flood")
	w.pump()
	if _, ok := b.m.tab.lru.Peek(1); ok {
		t.Fatal("setup: A's session was not the one to make room")
	}
	b.m.Accept(1) // the game answers the request it saw
	w.advance(10*time.Second, 50*time.Millisecond)
	if st, _ := a.m.State(2); !st.ConnectionActive || len(a.fails) != 0 {
		t.Fatalf("A after B accepted: %+v, fails %v", st, a.fails)
	}
	if got := b.read(); got != "hi" {
		t.Fatalf("B read %q", got)
	}
}

// A game that refuses a stranger with CloseP2PSessionWithUser tells it so
// (C38), where its probe came from: the stranger's wait ends at once, not
// after its connect timeout.
func TestClosingAStrangerTellsIt(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{})
	b := w.add(2, Config{})
	start := w.now
	a.send(2, "hi")
	w.advance(500*time.Millisecond, 10*time.Millisecond)
	b.m.Close(1)
	w.advance(2*time.Second, 10*time.Millisecond)
	if len(a.fails) != 1 || a.fails[0].SessionError != ErrorTimeout {
		t.Fatalf("A's failures %v within %v of its send; want the refusal, long before the 20 s timeout", a.fails, w.now.Sub(start))
	}
}

// A game that accepts late still connects through a NAT that drops the
// initiator's packets until we have sent it a full-TTL datagram (as a
// symmetric NAT does, where an opener names another port): the fallback to
// full probes runs from the first opener, not from the accept, so an
// accept at 18 s still beats the initiator's 20 s timeout.
func TestLateAcceptProbesAtOnce(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{})
	b := w.add(2, Config{})
	opened := false
	w.drop = func(from, to netip.AddrPort) bool {
		if from == b.addr && to == a.addr {
			opened = true
		}
		return from == a.addr && to == b.addr && !opened
	}
	a.send(2, "hi")
	w.pump()
	w.advance(18*time.Second, 10*time.Millisecond)
	b.m.Accept(1)
	w.advance(1500*time.Millisecond, 10*time.Millisecond)
	if st, _ := a.m.State(2); !st.ConnectionActive || len(a.fails) != 0 {
		t.Fatalf("A 1.5 s after an accept at 18 s: %+v, fails %v", st, a.fails)
	}
}

// A stranger whose session made room for another and who comes back costs
// no second key agreement: the ended session's pair key is kept, and the
// new session takes it. Live sessions keep theirs themselves, not in the
// cache.
func TestReturningStrangerReusesItsPairKey(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{MaxSessions: 8}) // 2 strangers at most
	strangers := []*node{w.add(3, Config{}), w.add(4, Config{}), w.add(5, Config{})}
	strangers[0].send(1, "hi")
	w.pump()
	first, ok := a.m.tab.lru.Peek(3)
	require.True(t, ok)
	require.NotNil(t, first.pair)
	assert.Zero(t, a.m.tab.pairKeys.Len(), "live sessions' keys in the cache")
	key := first.pair
	for _, s := range strangers[1:] {
		s.send(1, "hi")
		w.pump()
	}
	_, live := a.m.tab.lru.Peek(3)
	require.False(t, live, "the oldest stranger's session made room")
	cached, ok := a.m.tab.pairKeys.Peek(pairKeyID{3, strangers[0].keys.Public})
	require.True(t, ok, "the ended session's pair key")
	assert.Same(t, key, cached)

	strangers[0].m.Close(1)
	strangers[0].send(1, "again")
	w.pump()
	again, ok := a.m.tab.lru.Peek(3)
	require.True(t, ok)
	assert.Same(t, key, again.pair, "the new session's pair key")
}

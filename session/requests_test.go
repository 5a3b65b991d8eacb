package session

import (
	"runtime"
	"testing"
	"time"
)

// Users waiting for the request rate whose sessions went away (they
// stopped trying) leave the timer idle: the deadline does not stay in the
// past, which would spin the timer loop, and the requests still come for
// the users who are there.
func TestWaitingRequestsOfGoneUsersDoNotSpin(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{RequestRate: 1, RequestBurst: 1, ConnectTimeout: time.Second})
	var strangers []*node
	for id := SteamID(2); id < 7; id++ {
		s := w.add(id, Config{ConnectTimeout: time.Second})
		strangers = append(strangers, s)
		s.send(1, "hi")
	}
	w.pump()
	if got := len(a.reqs); got != 1 {
		t.Fatalf("%d requests at once, want the burst of 1", got)
	}
	// The strangers give up; their sessions at a go away.
	for _, s := range strangers {
		s.m.Close(1)
	}
	w.advance(3*time.Second, 100*time.Millisecond)
	if d := a.m.Deadline(); !d.IsZero() && !d.After(w.now) {
		t.Fatalf("deadline %v is not after now %v: the timer loop would spin", d, w.now)
	}
}

// Closing a player with thousands of session requests the game has not
// dispatched cancels each in place: it allocates next to nothing, where
// removing them one by one copied the whole queue per session (4,096
// failed sessions made Close hold the lock 275-520 ms and allocate 384 MiB).
func TestCloseWithManyPendingRequestsIsLinear(t *testing.T) {
	w := newWorld(t)
	w.noRun = true
	const strangers = 2000
	a := w.add(1, Config{MaxSessions: 4 * strangers, RequestRate: 1e9, RequestBurst: 1e9})
	for id := SteamID(2); id < 2+strangers; id++ {
		w.add(id, Config{}).send(1, "hi")
	}
	w.pump()
	if n := a.cb.Len(); n != strangers {
		t.Fatalf("%d requests pending, want %d", n, strangers)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a.m.Shutdown()
	runtime.ReadMemStats(&after)
	if a.cb.Len() != 0 {
		t.Fatalf("%d requests left after Shutdown", a.cb.Len())
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("Shutdown with %d pending requests allocated %d MiB", strangers, alloc>>20)
	}
}

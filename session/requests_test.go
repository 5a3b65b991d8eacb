package session

import (
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
		s.m.Close(1, w.now)
	}
	w.advance(3*time.Second, 100*time.Millisecond)
	if d := a.m.Deadline(); !d.IsZero() && !d.After(w.now) {
		t.Fatalf("deadline %v is not after now %v: the timer loop would spin", d, w.now)
	}
}

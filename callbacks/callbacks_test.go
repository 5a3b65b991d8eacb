package callbacks

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

type request struct{ id int }
type fail struct{ id int }
type other struct{}

// recorder collects what handlers saw, in order.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) check(t *testing.T, want ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Equal(r.log, want) {
		t.Fatalf("handlers saw\n  %q\nwant\n  %q", r.log, want)
	}
}

func mustPost(t *testing.T, q *Queue, ev any) {
	t.Helper()
	if !q.Post(ev) {
		t.Fatalf("Post(%v) refused", ev)
	}
}

func mustRun(t *testing.T, q *Queue, want int) {
	t.Helper()
	if n := q.Run(); n != want {
		t.Fatalf("Run dispatched %d events, want %d", n, want)
	}
}

func TestOrderAcrossTypes(t *testing.T) {
	q := New(0)
	var r recorder
	Handle(q, func(ev request) { r.add("request %d", ev.id) })
	Handle(q, func(ev fail) { r.add("fail %d", ev.id) })

	mustPost(t, q, request{1})
	mustPost(t, q, fail{2})
	mustPost(t, q, request{3})
	mustPost(t, q, other{}) // no handler: dispatched all the same
	mustPost(t, q, fail{4})
	r.check(t) // nothing runs before Run
	if q.Len() != 5 {
		t.Fatalf("Len = %d, want 5", q.Len())
	}
	mustRun(t, q, 5)
	r.check(t, "request 1", "fail 2", "request 3", "fail 4")
	if q.Len() != 0 {
		t.Fatalf("Len = %d after Run, want 0", q.Len())
	}
	mustRun(t, q, 0)
}

func TestExactDynamicType(t *testing.T) {
	q := New(0)
	var r recorder
	Handle(q, func(ev request) { r.add("value %d", ev.id) })
	Handle(q, func(ev *request) { r.add("pointer %d", ev.id) })
	mustPost(t, q, &request{1})
	mustPost(t, q, request{2})
	mustRun(t, q, 2)
	r.check(t, "pointer 1", "value 2")
}

func TestMultipleHandlersInRegistrationOrder(t *testing.T) {
	q := New(0)
	var r recorder
	for i := range 4 {
		Handle(q, func(ev request) { r.add("h%d got %d", i, ev.id) })
	}
	mustPost(t, q, request{1})
	mustPost(t, q, request{2})
	mustRun(t, q, 2)
	r.check(t,
		"h0 got 1", "h1 got 1", "h2 got 1", "h3 got 1",
		"h0 got 2", "h1 got 2", "h2 got 2", "h3 got 2")
}

func TestHandlerRegisteredDuringRun(t *testing.T) {
	// The choice made: a handler registered from inside a handler does not
	// run for the event being dispatched, but does run for every event taken
	// after it, including later events of the same Run.
	q := New(0)
	var r recorder
	registered := false
	Handle(q, func(ev request) {
		r.add("first %d", ev.id)
		if !registered {
			registered = true
			Handle(q, func(ev request) { r.add("late %d", ev.id) })
		}
	})
	mustPost(t, q, request{1})
	mustPost(t, q, request{2})
	mustRun(t, q, 2)
	mustPost(t, q, request{3})
	mustRun(t, q, 1)
	r.check(t, "first 1", "first 2", "late 2", "first 3", "late 3")
}

func TestPostFromHandlerWaitsForNextRun(t *testing.T) {
	q := New(0)
	var r recorder
	Handle(q, func(ev request) {
		r.add("request %d", ev.id)
		if ev.id < 3 {
			q.Post(request{ev.id + 1})
		}
	})
	mustPost(t, q, request{1})
	mustRun(t, q, 1)
	r.check(t, "request 1")
	if q.Len() != 1 {
		t.Fatalf("Len = %d, want the event the handler posted", q.Len())
	}
	mustRun(t, q, 1)
	mustRun(t, q, 1)
	mustRun(t, q, 0)
	r.check(t, "request 1", "request 2", "request 3")
}

func TestNestedRun(t *testing.T) {
	q := New(0)
	var r recorder
	inner := -1
	Handle(q, func(ev request) {
		r.add("start %d", ev.id)
		if ev.id == 1 {
			mustPost(t, q, request{10}) // posted before the inner Run: it takes it
			inner = q.Run()
		}
		r.add("end %d", ev.id)
	})
	for id := 1; id <= 3; id++ {
		mustPost(t, q, request{id})
	}
	// The outer Run dispatched only event 1 itself; the inner one took the rest.
	mustRun(t, q, 1)
	if inner != 3 {
		t.Fatalf("inner Run dispatched %d events, want 3", inner)
	}
	r.check(t,
		"start 1",
		"start 2", "end 2",
		"start 3", "end 3",
		"start 10", "end 10",
		"end 1")
	mustRun(t, q, 0)
}

func TestOuterRunKeepsItsSnapshotAfterNestedRun(t *testing.T) {
	// The inner Run takes what was posted before it began; once it returns,
	// the outer Run must still stop at what was posted before the outer Run
	// began, leaving the rest for the next Run.
	q := New(0)
	var r recorder
	Handle(q, func(ev request) {
		r.add("request %d", ev.id)
		if ev.id == 1 {
			mustPost(t, q, request{2})
		}
	})
	Handle(q, func(ev fail) {
		r.add("fail %d", ev.id)
		r.add("inner ran %d", q.Run())
		mustPost(t, q, request{3})
	})
	mustPost(t, q, request{1})
	mustPost(t, q, fail{1})
	mustRun(t, q, 2)
	r.check(t, "request 1", "fail 1", "request 2", "inner ran 1")
	if q.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (request 3 waits)", q.Len())
	}
	mustRun(t, q, 1)
	r.check(t, "request 1", "fail 1", "request 2", "inner ran 1", "request 3")
}

func TestRemove(t *testing.T) {
	q := New(0)
	var r recorder
	Handle(q, func(ev request) { r.add("request %d", ev.id) })
	Handle(q, func(ev fail) { r.add("fail %d", ev.id) })
	for id := 1; id <= 6; id++ {
		mustPost(t, q, request{id})
		mustPost(t, q, fail{id})
	}
	n := q.Remove(func(ev any) bool {
		q.Len() // the predicate may use the queue
		e, ok := ev.(request)
		return ok && e.id%2 == 0
	})
	if n != 3 {
		t.Fatalf("Remove dropped %d events, want 3", n)
	}
	if q.Len() != 9 {
		t.Fatalf("Len = %d, want 9", q.Len())
	}
	if n := q.Remove(func(any) bool { return false }); n != 0 {
		t.Fatalf("Remove of nothing dropped %d", n)
	}
	mustRun(t, q, 9)
	r.check(t,
		"request 1", "fail 1", "fail 2", "request 3", "fail 3",
		"fail 4", "request 5", "fail 5", "fail 6")
}

func TestRemoveFromHandler(t *testing.T) {
	q := New(0)
	var r recorder
	Handle(q, func(ev request) {
		r.add("request %d", ev.id)
		if ev.id == 1 {
			// Like closing a session from a handler: its pending events go.
			n := q.Remove(func(ev any) bool { _, ok := ev.(fail); return ok })
			r.add("removed %d", n)
		}
	})
	Handle(q, func(ev fail) { r.add("fail %d", ev.id) })
	mustPost(t, q, request{1})
	mustPost(t, q, fail{1})
	mustPost(t, q, request{2})
	mustPost(t, q, fail{2})
	mustRun(t, q, 2)
	r.check(t, "request 1", "removed 2", "request 2")
	if q.Len() != 0 {
		t.Fatalf("Len = %d, want 0", q.Len())
	}
}

func TestLimit(t *testing.T) {
	q := New(3)
	for id := range 3 {
		mustPost(t, q, request{id})
	}
	if q.Post(request{3}) {
		t.Fatal("Post beyond the limit accepted")
	}
	if q.Len() != 3 {
		t.Fatalf("Len = %d, want 3", q.Len())
	}
	mustRun(t, q, 3)
	mustPost(t, q, request{4}) // room again
	q.Remove(func(any) bool { return true })
	for id := range 3 {
		mustPost(t, q, request{id})
	}
}

func TestDefaultLimit(t *testing.T) {
	for _, limit := range []int{0, -1} {
		q := New(limit)
		for i := range DefaultLimit {
			if !q.Post(i) {
				t.Fatalf("New(%d): Post %d refused", limit, i)
			}
		}
		if q.Post(DefaultLimit) {
			t.Fatalf("New(%d): Post beyond %d accepted", limit, DefaultLimit)
		}
	}
}

func TestSteadyStateStaysBounded(t *testing.T) {
	// A game that runs callbacks every frame while a few events arrive per
	// frame must not see the queue's storage creep upwards.
	q := New(8)
	for frame := range 10000 {
		for i := range 3 {
			mustPost(t, q, request{frame*3 + i})
		}
		mustRun(t, q, 3)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if c := cap(q.events); c > 16 {
		t.Fatalf("storage grew to %d entries for 3 events at a time", c)
	}
}

func TestPostNil(t *testing.T) {
	q := New(0)
	if q.Post(nil) {
		t.Fatal("Post(nil) accepted")
	}
	var p *request // a typed nil is a real event
	mustPost(t, q, p)
}

func TestHandlePanicsOnUnusableHandlers(t *testing.T) {
	q := New(0)
	for name, register := range map[string]func(){
		"nil handler":    func() { Handle[request](q, nil) },
		"interface type": func() { Handle(q, func(error) {}) },
		"any":            func() { Handle(q, func(any) {}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Handle did not panic")
				}
			}()
			register()
		})
	}
}

func TestHandlerPanicLeavesQueueUsable(t *testing.T) {
	q := New(0)
	var r recorder
	Handle(q, func(ev request) {
		if ev.id == 2 {
			panic("game bug")
		}
		r.add("request %d", ev.id)
	})
	for id := 1; id <= 3; id++ {
		mustPost(t, q, request{id})
	}
	func() {
		defer func() { _ = recover() }()
		q.Run()
	}()
	if q.Len() != 1 {
		t.Fatalf("Len = %d after the panic, want 1", q.Len())
	}
	mustRun(t, q, 1)
	r.check(t, "request 1", "request 3")
}

func TestConcurrentPost(t *testing.T) {
	// Eight goroutines post while the test goroutine runs the queue, registers
	// handlers and removes events; -race checks the locking, and each poster's
	// events must arrive in its own posting order.
	const posters, perPoster = 8, 2000
	type ev struct{ poster, i int }
	q := New(0) // room for every event: refusals would break the count
	next := make([]int, posters)
	got := 0
	Handle(q, func(e ev) {
		if e.i != next[e.poster] {
			t.Errorf("poster %d: got event %d, want %d", e.poster, e.i, next[e.poster])
		}
		next[e.poster] = e.i + 1
		got++
	})
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			for i := range perPoster {
				if !q.Post(ev{p, i}) {
					t.Errorf("poster %d: Post %d refused", p, i)
					return
				}
				if i%500 == 0 {
					q.Len()
					q.Post(other{})
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			q.Remove(func(e any) bool { _, ok := e.(other); return ok })
		}
	})
	wg.Go(func() {
		for range 10 {
			Handle(q, func(other) {})
		}
	})
	for range 50 {
		q.Run()
	}
	wg.Wait()
	q.Run()
	if got != posters*perPoster {
		t.Fatalf("dispatched %d events, want %d", got, posters*perPoster)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d, want 0", q.Len())
	}
}

// Cancel drops exactly the event its ticket names, once, and only while it
// is undispatched; cancelled events neither run nor count, and posting and
// cancelling without Run holds no memory.
func TestCancel(t *testing.T) {
	q := New(4)
	var got []int
	Handle(q, func(v int) { got = append(got, v) })
	var tickets []Ticket
	for i := range 4 {
		tk, ok := q.PostTicket(i)
		if !ok {
			t.Fatalf("post %d refused", i)
		}
		tickets = append(tickets, tk)
	}
	if !q.Cancel(tickets[1]) || q.Cancel(tickets[1]) || q.Cancel(Ticket{}) {
		t.Fatal("Cancel: want true once, then false, and false for the zero Ticket")
	}
	if q.Len() != 3 {
		t.Fatalf("Len %d after a cancel, want 3", q.Len())
	}
	if !q.Post(9) {
		t.Fatal("a cancelled event still counted against the limit")
	}
	if n := q.Run(); n != 4 || len(got) != 4 || got[0] != 0 || got[1] != 2 || got[2] != 3 || got[3] != 9 {
		t.Fatalf("Run dispatched %d: %v", n, got)
	}
	if q.Cancel(tickets[0]) {
		t.Fatal("cancelled a dispatched event")
	}
	big := New(0)
	for range 100000 {
		tk, _ := big.PostTicket(1)
		big.Cancel(tk)
	}
	if big.Len() != 0 || cap(big.events) > 1024 {
		t.Fatalf("after 100,000 posts and cancels: Len %d, %d entries held", big.Len(), cap(big.events))
	}
}

// Cancelling every event of a full queue, one by one, allocates nothing
// and copies nothing: freeing thousands of sessions with requests pending
// is linear, not quadratic (Remove copies the queue per call).
func TestCancelAllocatesNothing(t *testing.T) {
	q := New(0)
	tickets := make([]Ticket, 4096)
	allocs := testing.AllocsPerRun(3, func() {
		for i := range tickets {
			tickets[i], _ = q.PostTicket(i)
		}
		for _, tk := range tickets {
			q.Cancel(tk)
		}
		q.Run()
	})
	// The posts box their ints; the cancels must add nothing.
	if allocs > 4096+16 {
		t.Fatalf("%.0f allocations for 4,096 posts and cancels", allocs)
	}
}

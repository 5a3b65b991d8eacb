// Package callbacks is the queue behind RunCallbacks: the library posts typed
// events from any goroutine, and game code sees them only when the game calls
// Run, on the game's own goroutine, in the order they were posted (COMPAT C60).
//
// Any number of handlers may be registered for an event type; each runs once
// per event, in registration order (C61). Every method may be called from any
// goroutine, including from inside a handler (C70): no lock is held while game
// code runs, so a handler may post, register, remove or run the queue again.
package callbacks

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// DefaultLimit is the number of undispatched events a Queue holds when New is
// given no limit.
const DefaultLimit = 65536

type entry struct {
	seq uint64 // posting order; Run dispatches only what was posted before it began
	ev  any    // nil: cancelled (Cancel), skipped by Run
}

// Ticket names one posted event, for Cancel. The zero Ticket names none.
type Ticket struct{ seq uint64 } // the event's seq + 1

// Queue holds posted events until Run dispatches them. The zero value is not
// usable; use New.
type Queue struct {
	mu       sync.Mutex
	events   []entry // events[head:] are pending, oldest first
	head     int
	dead     int // cancelled entries in events[head:]
	nextSeq  uint64
	limit    int
	handlers map[reflect.Type][]func(any)
}

// New returns an empty queue that holds at most limit undispatched events;
// limit <= 0 means DefaultLimit. The queue is filled by network activity while
// the game may not be calling Run, so it must be bounded.
func New(limit int) *Queue {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Queue{limit: limit, handlers: make(map[reflect.Type][]func(any))}
}

// Post queues ev for the next Run. It reports false, dropping ev, if the queue
// already holds its limit of events or ev is nil.
func (q *Queue) Post(ev any) bool {
	_, ok := q.PostTicket(ev)
	return ok
}

// PostTicket is Post, and also returns the Ticket that Cancel takes to drop
// ev if it is still undispatched.
func (q *Queue) PostTicket(ev any) (Ticket, bool) {
	if ev == nil {
		return Ticket{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.events)-q.head-q.dead >= q.limit {
		return Ticket{}, false
	}
	if q.dead > 64 && 2*q.dead > len(q.events)-q.head {
		// Mostly cancelled: drop them, so that posting and cancelling
		// while the game does not run the queue holds no memory.
		live := slices.DeleteFunc(q.events[q.head:], func(e entry) bool { return e.ev == nil })
		n := copy(q.events, live)
		clear(q.events[n:])
		q.events, q.head, q.dead = q.events[:n], 0, 0
	}
	// Reclaim the dispatched prefix once it is at least half the slice, so a
	// queue that never quite empties neither grows forever nor copies on
	// every Post.
	if q.head > 0 && q.head >= len(q.events)/2 && len(q.events) == cap(q.events) {
		n := copy(q.events, q.events[q.head:])
		clear(q.events[n:])
		q.events = q.events[:n]
		q.head = 0
	}
	q.events = append(q.events, entry{seq: q.nextSeq, ev: ev})
	q.nextSeq++
	return Ticket{q.nextSeq}, true
}

// Cancel drops the event t names if it has not been dispatched yet, and
// reports whether it did. It takes a binary search of the queue, no copy,
// so that dropping every event of a full queue one by one costs little:
// freeing thousands of sessions with requests pending must not be
// quadratic.
func (q *Queue) Cancel(t Ticket) bool {
	if t.seq == 0 {
		return false
	}
	seq := t.seq - 1
	q.mu.Lock()
	defer q.mu.Unlock()
	pending := q.events[q.head:]
	i, found := slices.BinarySearchFunc(pending, seq, func(e entry, s uint64) int {
		switch {
		case e.seq < s:
			return -1
		case e.seq > s:
			return 1
		}
		return 0
	})
	if !found || pending[i].ev == nil {
		return false
	}
	pending[i].ev = nil
	q.dead++
	return true
}

// Remove drops every undispatched event for which match returns true and
// reports how many it dropped. match runs without the queue's lock held, so it
// may use the queue itself; an event that Run dispatches, or that is posted,
// while match is running is neither dropped nor counted.
func (q *Queue) Remove(match func(ev any) bool) int {
	q.mu.Lock()
	pending := make([]entry, len(q.events)-q.head)
	copy(pending, q.events[q.head:])
	q.mu.Unlock()

	var doomed []uint64 // ascending, like the queue itself
	for _, e := range pending {
		if e.ev != nil && match(e.ev) {
			doomed = append(doomed, e.seq)
		}
	}
	if len(doomed) == 0 {
		return 0
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.events[:q.head]
	removed := 0
	for _, e := range q.events[q.head:] {
		if e.ev == nil {
			continue // cancelled
		}
		for len(doomed) > 0 && doomed[0] < e.seq {
			doomed = doomed[1:] // dispatched meanwhile
		}
		if len(doomed) > 0 && doomed[0] == e.seq {
			doomed = doomed[1:]
			removed++
			continue
		}
		kept = append(kept, e)
	}
	clear(q.events[len(kept):])
	q.events = kept
	q.dead = 0
	if q.head == len(q.events) {
		q.events, q.head = q.events[:0], 0
	}
	return removed
}

// Handle registers fn to run for every event whose dynamic type is exactly T,
// after the handlers already registered for T. Handlers are never removed.
//
// A handler registered while Run is dispatching runs for the events Run takes
// after that, even in the same Run, but not for the event being dispatched:
// each event's handlers are fixed when Run takes it from the queue.
//
// Handle panics if fn is nil or T is an interface type, because events are
// matched by their exact dynamic type and such a handler could never run.
func Handle[T any](q *Queue, fn func(T)) {
	t := reflect.TypeFor[T]()
	if fn == nil {
		panic("callbacks: nil handler for " + t.String())
	}
	if t.Kind() == reflect.Interface {
		panic(fmt.Sprintf("callbacks: handler for interface type %v would never run; register a concrete type", t))
	}
	h := func(ev any) { fn(ev.(T)) }
	q.mu.Lock()
	// Appending never changes the elements a running Run has already read,
	// so its copy of the slice header stays valid without copying.
	q.handlers[t] = append(q.handlers[t], h)
	q.mu.Unlock()
}

// Run dispatches the events posted before Run was called, oldest first, to
// every handler of the event's exact dynamic type in registration order, on
// the calling goroutine, and reports how many events it dispatched (events
// with no handler count too). Events posted after Run began, by handlers or by
// other goroutines, wait for a later Run, so a handler that posts cannot keep
// Run from returning.
//
// Run takes one event at a time and holds no lock while a handler runs, so a
// handler may call Run again: the inner Run carries on along the same queue,
// taking what was posted before it began, and no event is dispatched twice or
// out of order. If a handler panics, the event it was handling is gone and the
// rest stay queued.
func (q *Queue) Run() int {
	q.mu.Lock()
	end := q.nextSeq
	q.mu.Unlock()

	n := 0
	for {
		q.mu.Lock()
		if q.head == len(q.events) || q.events[q.head].seq >= end {
			q.mu.Unlock()
			return n
		}
		ev := q.events[q.head].ev
		q.events[q.head] = entry{} // let the event be collected once handled
		q.head++
		if q.head == len(q.events) {
			q.events = q.events[:0]
			q.head = 0
		}
		if ev == nil {
			q.dead--
			q.mu.Unlock()
			continue
		}
		hs := q.handlers[reflect.TypeOf(ev)]
		q.mu.Unlock()

		for _, h := range hs {
			h(ev)
		}
		n++
	}
}

// Len reports how many events are waiting to be dispatched.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events) - q.head - q.dead
}

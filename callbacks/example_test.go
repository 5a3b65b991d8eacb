package callbacks_test

import (
	"fmt"
	"sync"

	"github.com/p2pcompat/p2pcompat/callbacks"
)

// Events are plain types; handlers are matched by the exact dynamic type.
type connected struct{ user string }
type message struct {
	from, text string
}

func Example() {
	// The queue is bounded: the network fills it while the game may not be
	// calling Run. 0 means DefaultLimit.
	q := callbacks.New(0)

	// Typed handlers; several may share a type and run in this order.
	callbacks.Handle(q, func(ev connected) { fmt.Println("connected:", ev.user) })
	callbacks.Handle(q, func(ev message) { fmt.Printf("%s says %q\n", ev.from, ev.text) })
	callbacks.Handle(q, func(ev message) { fmt.Println("  (logged)") })

	// The network side posts from its own goroutine. Nothing runs yet:
	// Post only queues.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.Post(connected{user: "bob"})
		q.Post(message{from: "bob", text: "hello"})
	}()
	wg.Wait()
	fmt.Println("pending:", q.Len())

	// The game loop pumps the queue once a frame: handlers run here, on
	// the game's goroutine, in the order the events were posted.
	fmt.Println("dispatched:", q.Run())
	fmt.Println("pending:", q.Len())
	// Output:
	// pending: 2
	// connected: bob
	// bob says "hello"
	//   (logged)
	// dispatched: 2
	// pending: 0
}

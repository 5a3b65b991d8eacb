package channels_test

import (
	"fmt"
	"log"
	"time"

	"github.com/p2pcompat/p2pcompat/channels"
)

func ExampleNew() {
	// The engine has no clock of its own: the owner passes the time in.
	// A virtual clock makes the exchange below exact and instant.
	now := time.Unix(1_700_000_000, 0)

	a, err := channels.New(channels.Config{}, now, func(ch int, data []byte) {})
	if err != nil {
		log.Fatal(err)
	}
	var b *channels.Engine // the deliver function below refers to b
	b, err = channels.New(channels.Config{}, now, func(ch int, data []byte) {
		fmt.Printf("b got %q on channel %d\n", data, ch)
		// Delivered messages count against b's receive window until the
		// application says it has read them.
		b.Consumed(channels.Cost(len(data)))
	})
	if err != nil {
		log.Fatal(err)
	}
	// No packet leaves an engine before its session is open (the
	// handshake is the session layer's job).
	a.SetEstablished(now)
	b.SetEstablished(now)

	if err := a.Send([]byte("hello"), channels.Reliable, 1, now); err != nil {
		log.Fatal(err)
	}

	// The "network": whatever one engine wants sent is handed straight to
	// the other. Each step advances the clock by one millisecond and fires
	// due timers (such as b's delayed ACK), until a's queue is empty: the
	// message is acknowledged.
	buf := make([]byte, 2048) // at least Config.MaxPayload
	move := func(from, to *channels.Engine, name string) {
		for {
			pn, payload, ok := from.NextPacket(buf, now)
			if !ok {
				return
			}
			fmt.Printf("%s: packet %d\n", name, pn)
			if err := to.HandlePacket(pn, payload, now); err != nil {
				log.Fatal(err)
			}
		}
	}
	for step := 0; step < 1000; step++ {
		move(a, b, "a -> b")
		move(b, a, "b -> a")
		if bytes, _ := a.Queued(); bytes == 0 {
			fmt.Println("acknowledged")
			break
		}
		now = now.Add(time.Millisecond)
		for _, e := range []*channels.Engine{a, b} {
			if d := e.Deadline(); !d.IsZero() && !d.After(now) {
				e.OnTimer(now)
			}
		}
	}
	// Output:
	// a -> b: packet 1
	// b got "hello" on channel 1
	// b -> a: packet 1
	// acknowledged
}

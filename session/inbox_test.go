package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The game's reads take the receive queues' lock only: while the Manager
// is busy under its own lock (handling packets for every session), a
// read of a waiting packet still returns.
func TestReadsDoNotWaitForTheManager(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	a.send(2, "hello")
	w.pump()
	w.advance(100*time.Millisecond, 10*time.Millisecond)

	b.m.mu.Lock() // the Manager, busy
	done := make(chan string, 1)
	go func() {
		size, ok := b.m.Peek(0)
		buf := make([]byte, 64)
		n, _, from, read := b.m.ReadInto(buf, 0)
		if !ok || !read || size != n || from != 1 {
			done <- "nothing to read"
			return
		}
		done <- string(buf[:n])
	}()
	var got string
	select {
	case got = <-done:
	case <-time.After(10 * time.Second): // a deadlock's bound, not a timing
	}
	b.m.mu.Unlock()
	if got == "" {
		got = <-done
		t.Fatalf("the read waited for the Manager's lock (then read %q)", got)
	}
	assert.Equal(t, "hello", got)
}

// What the game reads returns its window to the sender's engine: reads
// settle their debt themselves once it reaches settleAt, and the Manager
// takes up the rest at its next flush, so that a transfer of many times
// the receive window completes.
func TestReadsReopenTheWindow(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.m.Accept(1)
	msg := make([]byte, 64<<10)
	const total = 160 // 10 MiB: 2.5 windows of 4 MiB
	sent, read := 0, 0
	for i := 0; i < 100000 && read < total; i++ {
		for sent < total && a.m.Send(2, msg, 2, 0) == nil {
			sent++
		}
		w.pump()
		w.now = w.now.Add(time.Millisecond)
		a.m.OnTimer()
		b.m.OnTimer()
		for {
			d, _, ok := b.m.Read(0)
			if !ok {
				break
			}
			require.Len(t, d, len(msg))
			read++
		}
	}
	assert.Equal(t, total, read, "messages read of %d sent", sent)
}

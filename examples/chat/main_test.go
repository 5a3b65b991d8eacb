package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// waitLimit bounds every wait of these tests; on loopback each condition
// holds within milliseconds.
const waitLimit = 15 * time.Second

// TestChatTwoPeers is the README's two-terminal story: each chat prints the
// other's line with the sender's ID, the one that did not type first sees
// and accepts a session request, and end of input ends both cleanly.
func TestChatTwoPeers(t *testing.T) {
	addr := startServer(t)
	one := startChat(t, "-server", addr, "-id", "1", "-peer", "2")
	two := startChat(t, "-server", addr, "-id", "2", "-peer", "1")
	one.out.waitFor(t, "* you are 1, chatting with 2", 1)
	two.out.waitFor(t, "* you are 2, chatting with 1", 1)

	one.typeLine(t, "hello from one")
	two.out.waitFor(t, "* 1 wants to chat: accepted", 1)
	two.out.waitFor(t, "[1] hello from one\n", 1)

	two.typeLine(t, "hello from two")
	one.out.waitFor(t, "[2] hello from two\n", 1)

	one.endInput(t)
	two.endInput(t)
	one.out.waitFor(t, "* bye", 1)
	two.out.waitFor(t, "* bye", 1)
}

// TestChatDeliversLastLine ends a chat's input right after a line, as
// `echo hi | chat ...` does: the line still reaches the peer, because the
// chat waits for it to be acknowledged before it closes.
func TestChatDeliversLastLine(t *testing.T) {
	addr := startServer(t)
	two := startChat(t, "-server", addr, "-id", "2", "-peer", "1")
	two.out.waitFor(t, "* you are 2", 1)
	one := startChat(t, "-server", addr, "-id", "1", "-peer", "2")
	one.out.waitFor(t, "* you are 1", 1)

	one.typeLine(t, "last words")
	one.endInput(t)
	two.out.waitFor(t, "[1] last words\n", 1)
	if s := one.out.String(); strings.Contains(s, "unacknowledged") {
		t.Errorf("the chat quit before its line was acknowledged:\n%s", s)
	}
	two.endInput(t)
}

// TestChatConnectFailRetry types at a peer that is not running: the
// failure is printed with its reason, closing the session makes the next
// line fail again visibly, and once the peer is up a line gets through.
func TestChatConnectFailRetry(t *testing.T) {
	addr := startServer(t)
	one := startChat(t, "-server", addr, "-id", "1", "-peer", "3")
	one.out.waitFor(t, "* you are 1", 1)

	const failed = "* could not reach 3: DestinationNotLoggedOn (3)"
	one.typeLine(t, "anyone there?")
	one.out.waitFor(t, failed, 1)
	one.typeLine(t, "still nobody?")
	one.out.waitFor(t, failed, 2)

	three := startChat(t, "-server", addr, "-id", "3", "-peer", "1")
	three.out.waitFor(t, "* you are 3", 1)
	one.typeLine(t, "there you are")
	three.out.waitFor(t, "[1] there you are\n", 1)

	one.endInput(t)
	three.endInput(t)
}

// TestChatInterrupt ends a chat the way Ctrl-C does, through its context,
// while its input is still open.
func TestChatInterrupt(t *testing.T) {
	addr := startServer(t)
	c := startChat(t, "-server", addr, "-id", "1", "-peer", "2")
	c.out.waitFor(t, "* you are 1", 1)
	c.cancel()
	c.wait(t)
	c.out.waitFor(t, "* bye", 1)
}

// TestChatUsage refuses to start without the two IDs.
func TestChatUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-peer", "2"},
		{"-id", "1"},
		{"-id", "1", "-peer", "2", "extra"},
		{"-id", "x", "-peer", "2"},
	} {
		if err := run(context.Background(), args, strings.NewReader(""), newOutput()); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}

func startServer(t *testing.T) string {
	t.Helper()
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr().String()
}

// runningChat is one chat's run on its own goroutine, with a pipe for its
// standard input.
type runningChat struct {
	in     *io.PipeWriter
	out    *output
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
}

func startChat(t *testing.T, args ...string) *runningChat {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	c := &runningChat{in: pw, out: newOutput(), cancel: cancel, errc: make(chan error, 1)}
	go func() { c.errc <- run(ctx, args, pr, c.out) }()
	// Whatever happens to the test, the chat ends and is waited for.
	t.Cleanup(func() {
		cancel()
		pw.Close()
		pr.Close()
		c.wait(t)
	})
	return c
}

func (c *runningChat) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		t.Fatalf("typing %q: %v", line, err)
	}
}

// endInput closes standard input, as Ctrl-D does, and asserts that run
// returns nil.
func (c *runningChat) endInput(t *testing.T) {
	t.Helper()
	c.in.Close()
	if err := c.wait(t); err != nil {
		t.Errorf("run after end of input = %v, want nil\noutput:\n%s", err, c.out.String())
	}
}

// wait waits (bounded) for run to return, and returns its error.
func (c *runningChat) wait(t *testing.T) error {
	t.Helper()
	c.once.Do(func() {
		select {
		case c.err = <-c.errc:
		case <-time.After(waitLimit):
			c.err = errors.New("run did not return")
			t.Errorf("run did not return within %v\noutput:\n%s", waitLimit, c.out.String())
		}
	})
	return c.err
}

// output is a chat's standard output: safe for the chat's goroutine to
// write while the test reads, and able to wait for a line to appear.
type output struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits until want occurs at least n times in the output, and
// fails the test if it does not within waitLimit.
func (o *output) waitFor(t *testing.T, want string, n int) {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for {
		o.mu.Lock()
		s, changed := o.b.String(), o.changed
		o.mu.Unlock()
		if strings.Count(s, want) >= n {
			return
		}
		select {
		case <-changed:
		case <-limit.C:
			t.Fatalf("%q did not appear %d time(s) within %v; output:\n%s", want, n, waitLimit, s)
		}
	}
}

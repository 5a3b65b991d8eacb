package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// testLimit bounds each test; a match of a few dozen frames on loopback
// takes about a second.
const testLimit = 60 * time.Second

// TestGameloopTwoPlayers plays a 90-frame match between two players in one
// process and checks what each received: positions (unreliable, so some),
// and every event the other sent (reliable, so exactly those, in order),
// then the bye that closes the match.
func TestGameloopTwoPlayers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()
	o := options{app: 480, frames: 90, connectWait: 15 * time.Second, linger: 15 * time.Second}
	res, err := playLocal(ctx, o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the match outlived its %v limit", testLimit)
	}
	for i, s := range res {
		peer := res[1-i]
		t.Logf("\n%s", s.summary())
		if s.Frames != 90 {
			t.Errorf("player %d: %d frames, want 90", s.ID, s.Frames)
		}
		// Frames 10, 30, 50, 70 fire; frames 44 and 89 score.
		if s.FiresSent != 4 || s.ScoresSent != 2 {
			t.Errorf("player %d sent %d fire and %d score events, want 4 and 2", s.ID, s.FiresSent, s.ScoresSent)
		}
		if s.PositionsSent == 0 || s.PositionsReceived == 0 {
			t.Errorf("player %d: positions sent %d, received %d; want some of each", s.ID, s.PositionsSent, s.PositionsReceived)
		}
		if got := s.PositionsReceived + s.PositionsStale; got > peer.PositionsSent {
			t.Errorf("player %d received %d positions, more than the %d sent", s.ID, got, peer.PositionsSent)
		}
		if s.FiresRecv != peer.FiresSent || s.ScoresRecv != peer.ScoresSent {
			t.Errorf("player %d received %d fire and %d score events, the peer sent %d and %d",
				s.ID, s.FiresRecv, s.ScoresRecv, peer.FiresSent, peer.ScoresSent)
		}
		if s.EventsOutOfOrder != 0 {
			t.Errorf("player %d: %d events out of order", s.ID, s.EventsOutOfOrder)
		}
		if !s.PeerBye || s.PeerEventsSent != peer.EventsSent() {
			t.Errorf("player %d: bye %v saying %d events, want the peer's %d", s.ID, s.PeerBye, s.PeerEventsSent, peer.EventsSent())
		}
		if !s.HaveState || !s.State.ConnectionActive || s.State.UsingRelay {
			t.Errorf("player %d: session state %+v (present %v), want active and direct", s.ID, s.State, s.HaveState)
		}
		if err := s.check(); err != nil {
			t.Error(err)
		}
	}
}

// TestGameloopRun runs the command with no setup, as the package comment
// shows, and checks that it prints a summary of each player.
func TestGameloopRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-frames", "30"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("run outlived its %v limit", testLimit)
	}
	for _, want := range []string{"player 1 (vs 2): 30 frames\n", "player 2 (vs 1): 30 frames\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range []string{
		// Frame 10 fires; nothing scores before frame 44.
		"events:    sent 1 (1 fire, 0 score), received 1 of 1 (1 fire, 0 score)\n",
		"session:   active=true connecting=false relay=false error=None",
	} {
		if got := strings.Count(out.String(), want); got != 2 {
			t.Errorf("%q appears %d times, want once per player:\n%s", want, got, out.String())
		}
	}
}

// TestGameloopOnePlayerEach runs each player as its own run against one
// rendezvous server, as two processes would; whichever registers second,
// both end the match having received every event of the other.
func TestGameloopOnePlayerEach(t *testing.T) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()

	type result struct {
		out bytes.Buffer
		err error
	}
	var res [2]result
	done := make(chan int, 2)
	for i, args := range [][]string{
		{"-server", srv.Addr().String(), "-id", "1", "-peer", "2", "-frames", "60"},
		{"-server", srv.Addr().String(), "-id", "2", "-peer", "1", "-frames", "60"},
	} {
		go func() {
			res[i].err = run(ctx, args, &res[i].out)
			done <- i
		}()
	}
	<-done
	<-done
	if ctx.Err() != nil {
		t.Fatalf("the match outlived its %v limit", testLimit)
	}
	for i := range res {
		out := res[i].out.String()
		if res[i].err != nil {
			t.Errorf("player %d: %v\n%s", i+1, res[i].err, out)
			continue
		}
		// Fire at frames 10, 30 and 50, score at 44.
		if want := "received 4 of 4 (3 fire, 1 score)"; !strings.Contains(out, want) {
			t.Errorf("player %d output lacks %q:\n%s", i+1, want, out)
		}
	}
}

// TestGameloopInterrupt ends an hour-long match the way Ctrl-C does,
// through run's context: run returns nil and still prints both summaries.
func TestGameloopInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &notifyingWriter{first: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-duration", "1h"}, out) }()
	select {
	case <-out.first: // the server is up: the players are starting
	case <-time.After(testLimit):
		t.Fatal("run printed nothing")
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	case <-time.After(testLimit):
		t.Fatal("run did not return after its context was cancelled")
	}
	for _, want := range []string{"player 1 (vs 2):", "player 2 (vs 1):"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// notifyingWriter closes first on its first write.
type notifyingWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	first chan struct{}
	once  sync.Once
}

func (w *notifyingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.first) })
	return w.b.Write(p)
}

func (w *notifyingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestGameloopFlags refuses contradictory command lines.
func TestGameloopFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-server", "127.0.0.1:27015"},
		{"-server", "127.0.0.1:27015", "-id", "1"},
		{"-server", "127.0.0.1:27015", "-id", "1", "-peer", "1"},
		{"-id", "1", "-peer", "2"},
		{"-duration", "0"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) = nil error, want one", args)
		}
	}
}

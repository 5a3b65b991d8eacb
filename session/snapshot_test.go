package session

import (
	"slices"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/channels"
)

func TestSnapshot(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	w.add(3, Config{})
	began := w.now
	a.send(2, "hello")
	if err := a.m.Send(3, []byte("x"), channels.Reliable, 4); err != nil {
		t.Fatal(err)
	}
	w.pump()

	// Before b accepts: b has a session it has not accepted, without an
	// engine, so without counters; a is still connecting.
	ss := b.m.Snapshot()
	if len(ss) != 1 || ss[0].Remote != 1 || ss[0].State != "connecting" || ss[0].Accepted || ss[0].Stats != (channels.Stats{}) {
		t.Fatalf("b before accepting: %+v", ss)
	}
	b.m.Accept(1)
	w.advance(200*time.Millisecond, 10*time.Millisecond)
	if got := b.read(); got != "hello" {
		t.Fatalf("read %q", got)
	}

	ss = a.m.Snapshot()
	if len(ss) != 2 || ss[0].Remote != 2 || ss[1].Remote != 3 {
		t.Fatalf("a's sessions, ascending: %+v", ss)
	}
	s := ss[0]
	if s.State != "established" || s.Path != "direct" || s.RemoteAddr != b.addr || s.RelayServer.IsValid() {
		t.Fatalf("established session: %+v", s)
	}
	if !s.Accepted || !s.RemoteAccepted || s.LastError != ErrorNone || !slices.Equal(s.Channels, []int{0}) {
		t.Fatalf("flags or channels: %+v", s)
	}
	if s.Age != w.now.Sub(began) || s.Idle < 0 || s.Idle > s.Age {
		t.Fatalf("age %v, idle %v; began %v ago", s.Age, s.Idle, w.now.Sub(began))
	}
	if s.Stats.PacketsSent == 0 || s.Stats.BytesSent == 0 || s.Stats.BytesRecv == 0 || s.Stats.MinRTT <= 0 || s.Stats.SmoothedRTT <= 0 {
		t.Fatalf("stats: %+v", s.Stats)
	}
	if len(s.Candidates) != 1 || s.Candidates[0].Addr != b.addr || len(s.Pairs) != 1 ||
		!s.Pairs[0].Active || s.Pairs[0].Via != "socket" || s.Pairs[0].Addr != b.addr {
		t.Fatalf("candidates %+v, pairs %+v", s.Candidates, s.Pairs)
	}
	// 3 never accepts, though it answers probes: a has a path and waits,
	// with the message queued and no RTT sample, so no RTT at all rather
	// than the engine's initial guess.
	if q := ss[1]; q.State != "connecting" || q.Path != "direct" || q.RemoteAccepted || q.QueuedBytes == 0 || q.QueuedPackets != 1 ||
		q.Stats.SmoothedRTT != 0 || q.Stats.RTTVar != 0 || !slices.Equal(q.Channels, []int{4}) {
		t.Fatalf("unanswered session: %+v", q)
	}

	// The snapshot is a copy.
	s.Channels[0] = 99
	if again, _ := a.m.SnapshotOf(2); again.Channels[0] != 0 {
		t.Fatal("a snapshot shares its channels with the session")
	}
	if _, ok := a.m.SnapshotOf(404); ok {
		t.Fatal("a snapshot of no session")
	}

	// A failed session: no path in use, the error named.
	w.advance(21*time.Second, time.Second)
	q, ok := a.m.SnapshotOf(3)
	if !ok || q.State != "failed" || q.LastError != ErrorTimeout || q.Path != "" || q.Stats != (channels.Stats{}) {
		t.Fatalf("failed session: %+v", q)
	}
}

// Rates come from samples at least rateSpacing apart, measured from the
// newest one that old, and not at all while there is none.
func TestRateWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var w rateWindow
	if in, out, win := w.rate(at(0), 100, 100); in != 0 || out != 0 || win != 0 {
		t.Fatalf("no sample: %v %v %v", in, out, win)
	}
	w.record(at(0), 0, 0)
	if in, out, win := w.rate(at(0), 0, 0); in != 0 || out != 0 || win != 0 {
		t.Fatalf("a zero window: %v %v %v", in, out, win)
	}
	// Younger than a second: no rate yet, however much went by.
	if in, out, win := w.rate(at(999), 1000, 2000); in != 0 || out != 0 || win != 0 {
		t.Fatalf("within a second: %v %v %v", in, out, win)
	}
	if in, out, win := w.rate(at(1000), 1000, 2000); in != 1000 || out != 2000 || win != time.Second {
		t.Fatalf("at 1 s: %v %v %v", in, out, win)
	}
	w.record(at(500), 1000, 2000) // too soon: not kept
	if w.last.at != at(0) || !w.prev.at.IsZero() {
		t.Fatalf("a sample within a second was kept: %+v", w)
	}
	w.record(at(1200), 3000, 3000)
	// The last sample is 0.3 s old: the one before it is the base.
	if in, out, win := w.rate(at(1500), 4500, 6000); in != 3000 || out != 4000 || win != 1500*time.Millisecond {
		t.Fatalf("at 1.5 s: %v %v %v", in, out, win)
	}
	// The last sample is 1.3 s old: it is the base.
	if in, out, win := w.rate(at(2500), 4300, 3000); in != 1000 || out != 0 || win != 1300*time.Millisecond {
		t.Fatalf("at 2.5 s: %v %v %v", in, out, win)
	}
	// Counters that went back belong to another engine: no rate.
	if in, out, win := w.rate(at(2500), 10, 10); in != 0 || out != 0 || win != 0 {
		t.Fatalf("counters went back: %v %v %v", in, out, win)
	}

	// observe samples an engine once a second, and starts over for a new
	// engine.
	e1, err1 := channels.New(channels.Config{}, t0, func(int, []byte) {})
	e2, err2 := channels.New(channels.Config{}, t0, func(int, []byte) {})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	var o rateWindow
	o.observe(at(0), e1)
	o.observe(at(999), e1)
	if o.engine != e1 || o.last.at != at(0) || !o.prev.at.IsZero() {
		t.Fatalf("observe within a second: %+v", o)
	}
	o.observe(at(1000), e1)
	if o.last.at != at(1000) || o.prev.at != at(0) {
		t.Fatalf("observe after a second: %+v", o)
	}
	o.observe(at(1001), e2)
	if o.engine != e2 || o.last.at != at(1001) || !o.prev.at.IsZero() {
		t.Fatalf("observe of a new engine: %+v", o)
	}
	o.observe(at(5000), nil)
	if o.engine != e2 {
		t.Fatal("observe of no engine changed the samples")
	}
}

package channels

import (
	"container/heap"
	"math/rand"
	"testing"
	"time"
)

// link is a simulated one-way path with fixed delay plus jitter (which
// reorders), loss and duplication, driven by a seeded generator.
type link struct {
	delay, jitter time.Duration
	loss, dup     float64
}

type delivery struct {
	at      time.Time
	seq     int
	to      int
	pn      uint64
	payload []byte
}

type deliveries []delivery

func (d deliveries) Len() int { return len(d) }
func (d deliveries) Less(i, j int) bool {
	if d[i].at.Equal(d[j].at) {
		return d[i].seq < d[j].seq
	}
	return d[i].at.Before(d[j].at)
}
func (d deliveries) Swap(i, j int) { d[i], d[j] = d[j], d[i] }
func (d *deliveries) Push(x any)   { *d = append(*d, x.(delivery)) }
func (d *deliveries) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

type received struct {
	ch   int
	data []byte
}

// sim runs two engines over a link in virtual time.
type sim struct {
	t      *testing.T
	now    time.Time
	rng    *rand.Rand
	link   link
	eng    [2]*Engine
	got    [2][]received
	queue  deliveries
	seq    int
	buf    []byte
	sentPk [2]int
}

func newSim(t *testing.T, seed int64, l link, cfg Config) *sim {
	s := &sim{t: t, now: time.Unix(1_700_000_000, 0), rng: rand.New(rand.NewSource(seed)), link: l, buf: make([]byte, 2048)}
	for i := range s.eng {
		i := i
		s.eng[i] = mustNew(cfg, s.now, func(ch int, data []byte) {
			s.got[i] = append(s.got[i], received{ch, data})
			s.eng[i].Consumed(Cost(len(data))) // the application reads at once
		})
		s.eng[i].SetEstablished(s.now)
	}
	return s
}

func (s *sim) pump() {
	for i, e := range s.eng {
		for {
			pn, payload, ok := e.NextPacket(s.buf, s.now)
			if !ok {
				break
			}
			s.sentPk[i]++
			copies := 1
			if s.rng.Float64() < s.link.loss {
				copies = 0
			} else if s.rng.Float64() < s.link.dup {
				copies = 2
			}
			for c := 0; c < copies; c++ {
				d := s.link.delay
				if s.link.jitter > 0 {
					d += time.Duration(s.rng.Int63n(int64(s.link.jitter)))
				}
				s.seq++
				heap.Push(&s.queue, delivery{s.now.Add(d), s.seq, 1 - i, pn, append([]byte(nil), payload...)})
			}
		}
	}
}

// step advances to the next event; false when nothing is left to happen.
func (s *sim) step() bool {
	s.pump()
	next := time.Time{}
	if len(s.queue) > 0 {
		next = s.queue[0].at
	}
	for _, e := range s.eng {
		if d := e.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if next.IsZero() {
		return false
	}
	if next.After(s.now) {
		s.now = next
	}
	for len(s.queue) > 0 && !s.queue[0].at.After(s.now) {
		d := heap.Pop(&s.queue).(delivery)
		if err := s.eng[d.to].HandlePacket(d.pn, d.payload, s.now); err != nil {
			s.t.Fatalf("engine %d rejected packet %d: %v", d.to, d.pn, err)
		}
	}
	for _, e := range s.eng {
		if d := e.Deadline(); !d.IsZero() && !d.After(s.now) {
			e.OnTimer(s.now)
		}
	}
	return true
}

// runUntil steps until cond holds, failing after limit of virtual time.
func (s *sim) runUntil(limit time.Duration, cond func() bool) {
	s.t.Helper()
	end := s.now.Add(limit)
	for !cond() {
		if !s.step() || s.now.After(end) {
			s.t.Fatalf("condition not reached after %v of virtual time (at %v)", limit, s.now.Sub(end.Add(-limit)))
		}
	}
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
	return b
}

// TestLossyLinkDeliversEverythingInOrder is the engine's core promise: over a
// link with 10% loss, reordering and duplication, a 1 MiB reliable message
// and 1,000 small ones arrive exactly once, intact, in send order.
func TestLossyLinkDeliversEverythingInOrder(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		s := newSim(t, seed, link{delay: 20 * time.Millisecond, jitter: 10 * time.Millisecond, loss: 0.10, dup: 0.10}, Config{SendBufferSize: 4 << 20})
		var want []received
		big := pattern(MaxReliableSize, int(seed))
		if err := s.eng[0].Send(big, Reliable, 3, s.now); err != nil {
			t.Fatal(err)
		}
		want = append(want, received{3, big})
		for i := 0; i < 1000; i++ {
			m := pattern(1+i%300, i)
			if err := s.eng[0].Send(m, Reliable, i%5, s.now); err != nil {
				t.Fatal(err)
			}
			want = append(want, received{i % 5, m})
		}
		s.runUntil(10*time.Minute, func() bool { return len(s.got[1]) == len(want) })
		for i := range want {
			if s.got[1][i].ch != want[i].ch || string(s.got[1][i].data) != string(want[i].data) {
				t.Fatalf("seed %d: message %d differs (channel %d, %d bytes; want channel %d, %d bytes)",
					seed, i, s.got[1][i].ch, len(s.got[1][i].data), want[i].ch, len(want[i].data))
			}
		}
		// Everything acked: the send queue drains.
		s.runUntil(time.Minute, func() bool { b, p := s.eng[0].Queued(); return b == 0 && p == 0 })
		if st := s.eng[0].Stats(); st.PacketsLost == 0 {
			t.Fatalf("seed %d: a 10%% loss link lost nothing: the simulation is not exercising recovery", seed)
		}
		// Duplicated packets never produce a second copy of a message.
		s.runUntil(time.Minute, func() bool { return len(s.queue) == 0 })
		if len(s.got[1]) != len(want) {
			t.Fatalf("seed %d: %d messages delivered, want %d", seed, len(s.got[1]), len(want))
		}
	}
}

// TestBothDirectionsAtOnce checks that data and acks interleave correctly
// when both sides send reliable streams over a lossy link.
func TestBothDirectionsAtOnce(t *testing.T) {
	s := newSim(t, 7, link{delay: 5 * time.Millisecond, jitter: 5 * time.Millisecond, loss: 0.05, dup: 0.05}, Config{})
	for i := 0; i < 300; i++ {
		for side := 0; side < 2; side++ {
			if err := s.eng[side].Send(pattern(500+i, side), Reliable, side, s.now); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.runUntil(5*time.Minute, func() bool { return len(s.got[0]) == 300 && len(s.got[1]) == 300 })
	for side := 0; side < 2; side++ {
		for i, m := range s.got[side] {
			if string(m.data) != string(pattern(500+i, 1-side)) {
				t.Fatalf("side %d message %d corrupt", side, i)
			}
		}
	}
}

func TestUnreliableBeforeEstablishedTravelsReliablyInOrder(t *testing.T) {
	s := newSim(t, 11, link{delay: 10 * time.Millisecond, loss: 0.3}, Config{})
	a := mustNew(Config{}, s.now, func(int, []byte) {})
	// Before establishment: Unreliable joins the stream (C15), NoDelay is dropped (C11).
	for i := 0; i < 50; i++ {
		st := Unreliable
		if i%2 == 1 {
			st = Reliable
		}
		if err := a.Send([]byte{byte(i)}, st, 1, s.now); err != nil {
			t.Fatal(err)
		}
		if err := a.Send([]byte{0xFF}, UnreliableNoDelay, 1, s.now); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, ok := a.NextPacket(s.buf, s.now); ok {
		t.Fatal("a packet left before the session was established")
	}
	s.eng[0] = a
	a.deliver = func(ch int, d []byte) { s.got[0] = append(s.got[0], received{ch, d}) }
	a.SetEstablished(s.now)
	s.runUntil(time.Minute, func() bool { return len(s.got[1]) == 50 })
	for i, m := range s.got[1] {
		if len(m.data) != 1 || m.data[0] != byte(i) {
			t.Fatalf("message %d = %v, want [%d]", i, m.data, i)
		}
	}
}

func TestNagleHoldsUntilDelayThresholdOrReliable(t *testing.T) {
	s := newSim(t, 1, link{delay: time.Millisecond}, Config{NagleDelay: 200 * time.Millisecond})
	start := s.now
	for i := 0; i < 10; i++ {
		if err := s.eng[0].Send([]byte("buffered"), ReliableWithBuffering, 0, s.now); err != nil {
			t.Fatal(err)
		}
	}
	s.runUntil(time.Second, func() bool { return len(s.got[1]) == 10 })
	// Sent no earlier than the delay: the first arrival is at delay + link delay.
	if d := s.now.Sub(start); d < 200*time.Millisecond || d > 250*time.Millisecond {
		t.Fatalf("buffered messages arrived after %v, want about 200ms", d)
	}
	if s.sentPk[0] != 1 {
		t.Fatalf("10 buffered messages took %d packets, want 1 (coalesced)", s.sentPk[0])
	}

	// A Reliable send flushes what is buffered at once (C12).
	start = s.now
	s.eng[0].Send([]byte("held"), ReliableWithBuffering, 0, s.now)
	s.eng[0].Send([]byte("now"), Reliable, 1, s.now)
	s.runUntil(time.Second, func() bool { return len(s.got[1]) == 12 })
	if d := s.now.Sub(start); d > 10*time.Millisecond {
		t.Fatalf("reliable send did not flush: took %v", d)
	}
	// About one MTU of buffered data goes without waiting.
	start = s.now
	for i := 0; i < 4; i++ {
		s.eng[0].Send(make([]byte, 400), ReliableWithBuffering, 0, s.now)
	}
	s.runUntil(time.Second, func() bool { return len(s.got[1]) >= 14 })
	if d := s.now.Sub(start); d > 10*time.Millisecond {
		t.Fatalf("a full MTU of buffered data waited %v", d)
	}
}

func TestSendBufferCap(t *testing.T) {
	e := mustNew(Config{SendBufferSize: 1 << 20}, time.Now(), func(int, []byte) {})
	// A maximal message always fits an empty queue (C07).
	if err := e.Send(make([]byte, MaxReliableSize), Reliable, 0, time.Now()); err != nil {
		t.Fatalf("max message into empty queue: %v", err)
	}
	if err := e.Send([]byte{1}, Reliable, 0, time.Now()); err != ErrSendBufferFull {
		t.Fatalf("second send = %v, want ErrSendBufferFull", err)
	}
	if b, p := e.Queued(); p != 1 || b < MaxReliableSize {
		t.Fatalf("Queued = %d bytes, %d packets", b, p)
	}
}

// The cap counts a message until its last byte has been sent, not until it
// is acknowledged: a sender keeps the next message queued while the last
// is in flight.
func TestSendBufferCapCountsUnsentMessages(t *testing.T) {
	now := time.Now()
	e := mustNew(Config{SendBufferSize: 64 << 10}, now, func(int, []byte) {})
	e.SetEstablished(now)
	if err := e.Send(make([]byte, 30<<10), Reliable, 0, now); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if _, _, ok := e.NextPacket(buf, now); !ok {
		t.Fatal("nothing to send")
	}
	if err := e.Send(make([]byte, 40<<10), Reliable, 0, now); err != ErrSendBufferFull {
		t.Fatalf("with the first message partly sent: %v, want ErrSendBufferFull", err)
	}
	// Send the rest (it fits the initial congestion window); no ACK comes.
	for {
		if _, _, ok := e.NextPacket(buf, now); !ok {
			break
		}
	}
	if b, _ := e.Queued(); b < 30<<10 {
		t.Fatalf("Queued = %d bytes: the unacknowledged message must still count there", b)
	}
	if err := e.Send(make([]byte, 40<<10), Reliable, 0, now); err != nil {
		t.Fatalf("with the first message all sent, unacknowledged: %v", err)
	}
	if err := e.Send(make([]byte, 30<<10), Reliable, 0, now); err != ErrSendBufferFull {
		t.Fatalf("with the second message unsent: %v, want ErrSendBufferFull", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		n   int
		st  SendType
		ch  int
		err error
	}{
		{1200, Unreliable, 0, nil},
		{1201, Unreliable, 0, ErrPacketTooLarge},
		{1201, UnreliableNoDelay, 0, ErrPacketTooLarge},
		{MaxReliableSize, Reliable, 0, nil},
		{MaxReliableSize + 1, ReliableWithBuffering, 0, ErrPacketTooLarge},
		{0, Reliable, 0, nil},
		{1, SendType(4), 0, ErrInvalidSendType},
		{1, SendType(-1), 0, ErrInvalidSendType},
		{1, Reliable, -1, ErrInvalidChannel},
	}
	for _, c := range cases {
		if err := Validate(make([]byte, c.n), c.st, c.ch); err != c.err {
			t.Errorf("Validate(%d bytes, %d, ch %d) = %v, want %v", c.n, c.st, c.ch, err, c.err)
		}
	}
}

func TestReceiveWindowBoundsUnreadData(t *testing.T) {
	s := newSim(t, 3, link{delay: time.Millisecond}, Config{SendBufferSize: 32 << 20})
	var unread int
	s.eng[1].deliver = func(ch int, d []byte) { s.got[1] = append(s.got[1], received{ch, d}); unread += Cost(len(d)) }
	for i := 0; i < 20; i++ {
		s.eng[0].Send(make([]byte, 1<<20), Reliable, 0, s.now)
	}
	// The receiver's app reads nothing: the sender stops at the window.
	for i := 0; i < 20000 && s.step(); i++ {
	}
	win := s.eng[1].cfg.RecvWindow
	if unread > win+MaxReliableSize {
		t.Fatalf("receiver holds %d unread bytes, window is %d", unread, win)
	}
	if len(s.got[1]) == 20 {
		t.Fatal("all 20 MiB delivered to a receiver that read nothing")
	}
	// Reading reopens the window and the rest follows.
	s.eng[1].Consumed(unread)
	s.eng[1].deliver = func(ch int, d []byte) { s.got[1] = append(s.got[1], received{ch, d}); s.eng[1].Consumed(Cost(len(d))) }
	s.runUntil(time.Minute, func() bool { return len(s.got[1]) == 20 })
}

// A peer that sends empty messages to a receiver that reads nothing is
// stopped by the window as one sending large ones is: each message costs.
func TestEmptyMessageFloodIsBounded(t *testing.T) {
	s := newSim(t, 5, link{delay: time.Millisecond}, Config{SendBufferSize: 64 << 20})
	delivered := 0
	s.eng[1].deliver = func(int, []byte) { delivered++ }
	for i := 0; i < 200_000; i++ {
		if err := s.eng[0].Send(nil, Reliable, i%3, s.now); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100_000 && s.step(); i++ {
	}
	// One packet may overshoot: at most one message per two stream bytes.
	if max := s.eng[1].cfg.RecvWindow/MessageOverhead + s.eng[1].cfg.MaxPayload/2; delivered > max || delivered == 0 {
		t.Fatalf("%d empty messages delivered unread, window allows %d", delivered, max)
	}
}

// Slivers of stream beyond a gap are held up to a fixed count; what does
// not fit is left unacknowledged rather than lost.
func TestOutOfOrderFragmentsAreCapped(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	e := mustNew(Config{}, now, func(int, []byte) {})
	e.SetEstablished(now)
	for i := 0; i < 3*maxOutOfOrder; i++ {
		off := uint64(10 + 2*(3*maxOutOfOrder-i))
		p := append([]byte{frameStream}, appendUvarint(nil, off)...)
		p = append(append(p, 1), 'x')
		if err := e.HandlePacket(uint64(i+1), p, now); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.ooo) > maxOutOfOrder {
		t.Fatalf("%d out-of-order fragments held, cap %d", len(e.ooo), maxOutOfOrder)
	}
	if !e.recvPN.contains(1) || e.recvPN.contains(uint64(3*maxOutOfOrder)) {
		t.Fatal("packets over the cap must stay unacknowledged, the others acknowledged")
	}
}

// A peer that grants a huge window and withholds the ACK of the first
// packet cannot make us hold more than the cap plus maxPeerWindow: sends
// are refused once that much waits for acknowledgement.
func TestWithheldAckBoundsWhatWeHold(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	e := mustNew(Config{SendBufferSize: 1 << 20}, now, func(int, []byte) {})
	e.SetEstablished(now)
	var got rangeSet
	buf := make([]byte, 2048)
	msg := make([]byte, 1000)
	peerPN := uint64(1)
	refused := 0
	for round := 0; round < 20000 && refused < 100; round++ {
		if err := e.Send(msg, Reliable, 0, now); err == ErrSendBufferFull {
			refused++
		}
		for {
			pn, _, ok := e.NextPacket(buf, now)
			if !ok {
				break
			}
			// Withhold the ACK of every packet that carries the stream's
			// first byte, first sending or retransmission alike.
			first := false
			if sp := e.sent[len(e.sent)-1]; sp.pn == pn {
				for _, r := range sp.spans[:sp.nspans] {
					first = first || r.start == 0
				}
			}
			if !first {
				got.add(pn, pn+1)
			}
		}
		if !got.empty() {
			ack := appendAck(nil, &got, 0, 1<<40)
			if err := e.HandlePacket(peerPN, ack, now); err != nil {
				t.Fatal(err)
			}
			peerPN++
		}
		now = now.Add(100 * time.Microsecond)
		e.OnTimer(now)
	}
	if refused == 0 {
		t.Fatal("no send was ever refused")
	}
	if held := e.writeOff - e.ackedOff; held > (1<<20)+maxPeerWindow+2*MaxReliableSize {
		t.Fatalf("holding %d bytes for a peer that withholds one ACK", held)
	}
}

// An ACK delay from the wire is clamped to the maximum ACK delay (RFC 9002
// §5.3): a peer claiming one of years, or one whose microseconds overflow
// a Duration, moves neither the RTT estimate nor the probe timeout.
func TestAckDelayFromTheWireIsClamped(t *testing.T) {
	for _, delayUs := range []uint64{(1<<64 - 1<<62) / 1000, 1 << 62, 146 * 365 * 24 * 3600 * 1_000_000, 1<<64 - 1} {
		now := time.Unix(1_700_000_000, 0)
		e := mustNew(Config{}, now, func(int, []byte) {})
		e.SetEstablished(now)
		buf := make([]byte, 2048)
		peerPN := uint64(1)
		for i := 0; i < 20; i++ {
			if err := e.Send([]byte("x"), Reliable, 0, now); err != nil {
				t.Fatal(err)
			}
			pn, _, ok := e.NextPacket(buf, now)
			if !ok {
				t.Fatal("nothing to send")
			}
			now = now.Add(10 * time.Millisecond)
			var got rangeSet
			got.add(pn, pn+1)
			if err := e.HandlePacket(peerPN, appendAck(nil, &got, delayUs, 1<<40), now); err != nil {
				t.Fatal(err)
			}
			peerPN++
		}
		if r := e.rtt; r.smoothed < 5*time.Millisecond || r.smoothed > 20*time.Millisecond || e.rtt.pto(e.cfg.MaxAckDelay) <= 0 || e.rtt.pto(e.cfg.MaxAckDelay) > time.Second {
			t.Errorf("ack delay %d µs: smoothed RTT %v, PTO %v (the path's RTT is 10 ms)", delayUs, r.smoothed, e.rtt.pto(e.cfg.MaxAckDelay))
		}
	}
}

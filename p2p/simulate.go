package p2p

import (
	"container/heap"
	"math/rand"
	"net/netip"
	"sync"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// Simulation makes the network worse on purpose, so that a game can be
// tested under bad conditions on a good network. It applies to peer
// packets only (handshakes and data), never to the rendezvous, STUN or
// TURN. Send settings act as our packets leave, directly or through our
// relay; Recv settings act on what arrives directly (packets that reach
// us through our relay are not simulated on receive). A peer whose
// packets go both ways through two simulating Networkings meets both
// sides' settings.
//
// Percentages run from 0 to 100; durations must not be negative. The zero
// value simulates nothing and costs nothing.
type Simulation struct {
	// FakePacketLossSend and FakePacketLossRecv are the percentages of
	// packets dropped.
	FakePacketLossSend float32
	FakePacketLossRecv float32
	// FakePacketLagSend and FakePacketLagRecv delay every packet.
	FakePacketLagSend time.Duration
	FakePacketLagRecv time.Duration
	// FakePacketReorderSend and FakePacketReorderRecv are the percentages
	// of packets held back a further FakePacketReorderTime, so that later
	// packets overtake them.
	FakePacketReorderSend float32
	FakePacketReorderRecv float32
	FakePacketReorderTime time.Duration
	// FakePacketDupSend and FakePacketDupRecv are the percentages of
	// packets duplicated; the copy comes a random time of up to
	// FakePacketDupTimeMax after the original.
	FakePacketDupSend    float32
	FakePacketDupRecv    float32
	FakePacketDupTimeMax time.Duration
	// Seed seeds the random choices, for repeatable runs; 0 means a seed
	// from the clock.
	Seed int64
}

// Caps on what the simulation holds back: beyond them a delayed packet is
// dropped, as a full queue would drop it.
const (
	simMaxPackets = 4096
	simMaxBytes   = 8 << 20
)

// enabled reports whether s changes anything.
func (s Simulation) enabled() bool {
	return s.FakePacketLossSend > 0 || s.FakePacketLossRecv > 0 ||
		s.FakePacketLagSend > 0 || s.FakePacketLagRecv > 0 ||
		(s.FakePacketReorderTime > 0 && (s.FakePacketReorderSend > 0 || s.FakePacketReorderRecv > 0)) ||
		s.FakePacketDupSend > 0 || s.FakePacketDupRecv > 0
}

func (s Simulation) validate() error {
	for _, p := range []struct {
		name string
		v    float32
	}{
		{"FakePacketLossSend", s.FakePacketLossSend},
		{"FakePacketLossRecv", s.FakePacketLossRecv},
		{"FakePacketReorderSend", s.FakePacketReorderSend},
		{"FakePacketReorderRecv", s.FakePacketReorderRecv},
		{"FakePacketDupSend", s.FakePacketDupSend},
		{"FakePacketDupRecv", s.FakePacketDupRecv},
	} {
		if !(p.v >= 0 && p.v <= 100) { // NaN too
			return cfgerr.New("p2p.Config", "Simulate."+p.name, "must be a percentage between 0 and 100")
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"FakePacketLagSend", s.FakePacketLagSend},
		{"FakePacketLagRecv", s.FakePacketLagRecv},
		{"FakePacketReorderTime", s.FakePacketReorderTime},
		{"FakePacketDupTimeMax", s.FakePacketDupTimeMax},
	} {
		if d.v < 0 {
			return cfgerr.Negative("p2p.Config", "Simulate."+d.name)
		}
	}
	return nil
}

// simPath is where a simulated packet goes when its time comes.
type simPath uint8

const (
	simSend      simPath = iota // out of the socket
	simOpener                   // out of the socket with the opener TTL
	simRelay                    // out through our relay
	simRecv                     // into the session table, as read from the socket
	simRecvRelay                // into the session table, as our relay delivered it
)

type simPacket struct {
	due  time.Time
	seq  uint64 // equal due times leave in the order they came
	path simPath
	addr netip.AddrPort
	b    []byte
}

type simHeap []simPacket

func (h simHeap) Len() int { return len(h) }
func (h simHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h simHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simHeap) Push(x any)   { *h = append(*h, x.(simPacket)) }
func (h *simHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = simPacket{}
	*h = old[:len(old)-1]
	return x
}

// simulator holds back and drops packets for a Networking. One goroutine
// (run) delivers what is due, on one timer reset to the earliest packet.
type simulator struct {
	cfg  Simulation
	n    *Networking
	wake chan struct{} // buffer 1: a sooner packet was queued

	mu    sync.Mutex
	rng   *rand.Rand
	q     simHeap
	bytes int
	seq   uint64
}

func newSimulator(n *Networking, cfg Simulation) *simulator {
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &simulator{cfg: cfg, n: n, wake: make(chan struct{}, 1), rng: rand.New(rand.NewSource(seed))}
}

// isPeerPacket reports whether b is a handshake or data packet, the only
// ones simulated.
func isPeerPacket(b []byte) bool {
	if wire.IsSTUN(b) || wire.IsChannelData(b) {
		return false
	}
	k, _ := wire.Classify(b)
	return k == wire.KindHandshake || k == wire.KindData
}

// chance reports true with probability pct percent; s.mu is held.
func (s *simulator) chance(pct float32) bool {
	return pct > 0 && s.rng.Float32()*100 < pct
}

// handle applies the simulation to b on its way along path. What is not
// held back is delivered before handle returns; b is copied when held.
func (s *simulator) handle(path simPath, b []byte, addr netip.AddrPort) {
	loss, lag, reorder, dup := s.cfg.FakePacketLossSend, s.cfg.FakePacketLagSend, s.cfg.FakePacketReorderSend, s.cfg.FakePacketDupSend
	if path == simRecv || path == simRecvRelay {
		loss, lag, reorder, dup = s.cfg.FakePacketLossRecv, s.cfg.FakePacketLagRecv, s.cfg.FakePacketReorderRecv, s.cfg.FakePacketDupRecv
	}
	now := time.Now()
	s.mu.Lock()
	if s.chance(loss) {
		s.mu.Unlock()
		return
	}
	delay := lag
	if s.cfg.FakePacketReorderTime > 0 && s.chance(reorder) {
		delay += s.cfg.FakePacketReorderTime
	}
	copies, dupDelay := 1, time.Duration(0)
	if s.chance(dup) {
		copies = 2
		dupDelay = delay
		if m := s.cfg.FakePacketDupTimeMax; m > 0 {
			dupDelay += time.Duration(s.rng.Int63n(int64(m) + 1))
		}
	}
	now1 := 0 // copies to deliver at once
	sooner := false
	for i := 0; i < copies; i++ {
		d := delay
		if i == 1 {
			d = dupDelay
		}
		if d <= 0 {
			now1++
			continue
		}
		if len(s.q) >= simMaxPackets || s.bytes+len(b) > simMaxBytes {
			continue // full: dropped
		}
		p := simPacket{due: now.Add(d), seq: s.seq, path: path, addr: addr, b: append([]byte(nil), b...)}
		s.seq++
		s.bytes += len(p.b)
		heap.Push(&s.q, p)
		if s.q[0].seq == p.seq {
			sooner = true
		}
	}
	s.mu.Unlock()
	if sooner {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	for ; now1 > 0; now1-- {
		s.deliver(path, b, addr)
	}
}

func (s *simulator) deliver(path simPath, b []byte, addr netip.AddrPort) {
	n := s.n
	switch path {
	case simSend:
		n.send(b, addr)
	case simOpener:
		n.sendOpener(b, addr)
	case simRelay:
		if r := n.relay.Load(); r != nil {
			r.WriteTo(b, addr)
		}
	case simRecv:
		n.mgr.HandlePacket(b, addr, false)
	case simRecvRelay:
		n.mgr.HandlePacket(b, addr, true)
	}
}

// run delivers held packets when they are due, until the Networking
// closes; what is still held then is dropped.
func (s *simulator) run(done <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []simPacket
	for {
		now := time.Now()
		wait := time.Hour
		s.mu.Lock()
		for len(s.q) > 0 && !s.q[0].due.After(now) {
			p := heap.Pop(&s.q).(simPacket)
			s.bytes -= len(p.b)
			due = append(due, p)
		}
		if len(s.q) > 0 {
			wait = s.q[0].due.Sub(now)
		}
		s.mu.Unlock()
		for i := range due {
			s.deliver(due[i].path, due[i].b, due[i].addr)
			due[i] = simPacket{}
		}
		due = due[:0]
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-done:
			return
		}
	}
}

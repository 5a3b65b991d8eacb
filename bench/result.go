package main

import (
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// tput is the outcome of one one-way run: what the receiver got, and the
// time from the first send to the last receive.
type tput struct {
	Bytes   int64
	Msgs    int64
	Elapsed time.Duration
	Mallocs uint64 // heap allocations of the whole process during the run
	Capped  bool   // the run stopped at its time cap before its count
}

func (t tput) MBps() float64 {
	if t.Elapsed <= 0 || t.Bytes == 0 {
		return math.NaN()
	}
	return float64(t.Bytes) / t.Elapsed.Seconds() / 1e6
}

func (t tput) MsgsPerSec() float64 {
	if t.Elapsed <= 0 || t.Msgs == 0 {
		return math.NaN()
	}
	return float64(t.Msgs) / t.Elapsed.Seconds()
}

func (t tput) AllocsPerMsg() float64 {
	if t.Msgs == 0 {
		return math.NaN()
	}
	return float64(t.Mallocs) / float64(t.Msgs)
}

// meter is shared by the two sides of a run: the sender stamps the first
// send, the receiver counts and stamps every receive.
type meter struct {
	start    time.Time // first send; written before the receiver can see data
	mallocs0 uint64
	bytes    atomic.Int64
	msgs     atomic.Int64
	last     atomic.Int64 // UnixNano of the last receive
	sendDone atomic.Bool
}

// begin is called right before the first send.
func (m *meter) begin() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs0 = ms.Mallocs
	m.start = time.Now()
}

// got records n bytes in k messages received now.
func (m *meter) got(n, k int) {
	m.bytes.Add(int64(n))
	m.msgs.Add(int64(k))
	m.last.Store(time.Now().UnixNano())
}

// result is called after both sides have stopped.
func (m *meter) result(capped bool) tput {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t := tput{Bytes: m.bytes.Load(), Msgs: m.msgs.Load(), Mallocs: ms.Mallocs - m.mallocs0, Capped: capped}
	if l := m.last.Load(); l != 0 {
		t.Elapsed = time.Unix(0, l).Sub(m.start)
	}
	return t
}

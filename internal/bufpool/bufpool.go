// Package bufpool recycles the byte slices that carry messages through
// the engine: a copy of each message sent, kept until it is acknowledged,
// and each message received, kept until the game reads it. Without it a
// transfer allocates twice per message and the collector runs all the
// time.
//
// Slices come in power-of-two classes from 64 bytes to Max, which holds
// the largest reliable message with its header; larger ones are allocated
// and left to the collector.
package bufpool

import (
	"math/bits"
	"sync"
	"unsafe"
)

const (
	minShift = 6
	maxShift = 21
	// Max is the largest slice the pool holds.
	Max = 1 << maxShift
)

// The pools hold a pointer to each slice's first byte, not the slice: an
// unsafe.Pointer goes into an interface without an allocation, a slice
// header does not.
var pools [maxShift - minShift + 1]sync.Pool

func class(n int) int {
	if n <= 1<<minShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a slice of length n. Its contents are not zeroed.
func Get(n int) []byte {
	if n > Max {
		return make([]byte, n)
	}
	c := class(n)
	if p, _ := pools[c].Get().(unsafe.Pointer); p != nil {
		return unsafe.Slice((*byte)(p), 1<<(c+minShift))[:n]
	}
	return make([]byte, n, 1<<(c+minShift))
}

// Put gives b back for reuse. b must not be used afterwards, by the caller
// or anyone it shared b with. Slices not made by Get are ignored, unless
// their capacity happens to be a class size, which does no harm.
func Put(b []byte) {
	c := cap(b)
	if c < 1<<minShift || c > Max || c&(c-1) != 0 {
		return
	}
	pools[class(c)].Put(unsafe.Pointer(unsafe.SliceData(b[:1])))
}

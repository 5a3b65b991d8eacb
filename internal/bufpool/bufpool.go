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
	maxShift = 20
	// Max is the largest slice the pool holds: a maximal reliable message
	// (1 MiB) with its header. Above 1 MiB there is this one class rather
	// than 2 MiB, which would double what each maximal message holds.
	Max = 1<<maxShift + 64
)

// The pools hold a pointer to each slice's first byte, not the slice: an
// unsafe.Pointer goes into an interface without an allocation, a slice
// header does not. The last pool is the Max class.
var pools [maxShift - minShift + 2]sync.Pool

// class returns the pool for n bytes and its slices' size.
func class(n int) (int, int) {
	switch {
	case n <= 1<<minShift:
		return 0, 1 << minShift
	case n > 1<<maxShift:
		return len(pools) - 1, Max
	}
	c := bits.Len(uint(n-1)) - minShift
	return c, 1 << (c + minShift)
}

// Get returns a slice of length n. Its contents are not zeroed.
func Get(n int) []byte {
	if n > Max {
		return make([]byte, n)
	}
	c, size := class(n)
	if p, _ := pools[c].Get().(unsafe.Pointer); p != nil {
		return unsafe.Slice((*byte)(p), size)[:n]
	}
	return make([]byte, n, size)
}

// Put gives b back for reuse. b must not be used afterwards, by the caller
// or anyone it shared b with. Slices not made by Get are ignored, unless
// their capacity happens to be a class size, which does no harm.
func Put(b []byte) {
	n := cap(b)
	if n < 1<<minShift || n > Max || n != Max && n&(n-1) != 0 {
		return
	}
	c, _ := class(n)
	pools[c].Put(unsafe.Pointer(unsafe.SliceData(b[:1])))
}

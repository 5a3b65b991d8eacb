package bufpool

import (
	"testing"
)

func TestGetSizesAndClasses(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 1200, 1 << 12, 1 << 20, 1<<20 + 1, Max - 1, Max, Max + 1, 2 << 20} {
		b := Get(n)
		if len(b) != n {
			t.Fatalf("Get(%d): len %d", n, len(b))
		}
		if n <= Max && (cap(b) < n || cap(b) != Max && cap(b)&(cap(b)-1) != 0 || cap(b) < 64) {
			t.Fatalf("Get(%d): cap %d is not a class", n, cap(b))
		}
		Put(b)
	}
}

func TestPutIgnoresForeignSlices(t *testing.T) {
	Put(nil)
	Put(make([]byte, 0, 100))    // not a class size
	Put(make([]byte, 10, 2<<20)) // above Max
	Put(make([]byte, 0, 32))     // below the smallest class
}

// A maximal message with its header takes the Max class, not twice its size.
func TestMaximalMessageClass(t *testing.T) {
	b := Get(1<<20 + 5)
	if cap(b) != Max {
		t.Fatalf("cap %d for a maximal message, want %d", cap(b), Max)
	}
	Put(b)
}

func TestRecycledSliceIsReused(t *testing.T) {
	// sync.Pool may drop items at any GC, so only allocation counts are
	// checked, over many rounds: a Get after a Put allocates nothing.
	allocs := testing.AllocsPerRun(1000, func() {
		b := Get(1200)
		b[0] = 1
		Put(b)
	})
	if allocs > 0.01 {
		t.Fatalf("%.2f allocations per Get/Put round", allocs)
	}
}

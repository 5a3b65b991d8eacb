package channels

import (
	"math/rand"
	"testing"
)

// The set against a model: a boolean per number, through random adds,
// removes and drops; after every step the spans are sorted, disjoint,
// non-adjacent and hold exactly the model's numbers.
func TestRangeSetAgainstModel(t *testing.T) {
	const size = 200
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		var r rangeSet
		var model [size]bool
		floor := uint64(0)
		for step := 0; step < 100; step++ {
			a := uint64(rng.Intn(size))
			b := a + uint64(rng.Intn(20))
			if b > size {
				b = size
			}
			switch op := rng.Intn(10); {
			case op < 5:
				r.add(a, b)
				for x := a; x < b; x++ {
					model[x] = true
				}
			case op < 9:
				r.remove(a, b)
				for x := a; x < b; x++ {
					model[x] = false
				}
			default:
				r.dropBelow(a)
				for x := uint64(0); x < a; x++ {
					model[x] = false
				}
				floor = max(floor, a)
			}
			for k, sp := range r.s {
				if sp.start >= sp.end || k > 0 && r.s[k-1].end >= sp.start {
					t.Fatalf("round %d step %d: bad spans %v", round, step, r.s)
				}
			}
			for x := uint64(0); x < size; x++ {
				if r.contains(x) != model[x] {
					t.Fatalf("round %d step %d: contains(%d) = %v, model %v; spans %v", round, step, x, r.contains(x), model[x], r.s)
				}
			}
		}
	}
}

// Once its array has grown, the set changes without allocating.
func TestRangeSetSteadyStateAllocatesNothing(t *testing.T) {
	var r rangeSet
	for i := uint64(0); i < 16; i++ {
		r.add(i*10, i*10+5)
	}
	next := uint64(160)
	allocs := testing.AllocsPerRun(1000, func() {
		r.add(next, next+5)
		r.remove(next+1, next+2) // splits a span
		r.dropBelow(next - 150)
		next += 10
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per round", allocs)
	}
}

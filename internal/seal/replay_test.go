package seal

import (
	"math"
	"testing"
)

// receive is what a caller does with a packet that opened: check, then accept.
func receive(w *ReplayWindow, pn uint64) bool {
	if !w.Check(pn) {
		return false
	}
	w.Accept(pn)
	return true
}

func TestReplayInOrder(t *testing.T) {
	var w ReplayWindow
	for pn := uint64(0); pn < 3*WindowSize; pn++ {
		if !receive(&w, pn) {
			t.Fatalf("pn %d refused", pn)
		}
		if w.Check(pn) {
			t.Fatalf("pn %d accepted twice", pn)
		}
	}
}

func TestReplayCheckDoesNotRecord(t *testing.T) {
	var w ReplayWindow
	for range 3 {
		if !w.Check(5) {
			t.Fatal("Check refused a new pn")
		}
	}
	// A forged packet with a huge pn is checked but never accepted; it must
	// not slide the window past genuine packets.
	w.Check(math.MaxUint64)
	if !receive(&w, 0) {
		t.Fatal("pn 0 refused after Check of a far pn")
	}
}

func TestReplayOutOfOrderWithinWindow(t *testing.T) {
	var w ReplayWindow
	order := []uint64{10, 7, 12, 8, 11, 9, 0, 1}
	for _, pn := range order {
		if !receive(&w, pn) {
			t.Fatalf("pn %d refused", pn)
		}
	}
	for _, pn := range order {
		if w.Check(pn) {
			t.Fatalf("duplicate pn %d accepted", pn)
		}
	}
	for _, pn := range []uint64{2, 3, 4, 5, 6, 13} {
		if !w.Check(pn) {
			t.Fatalf("unseen pn %d refused", pn)
		}
	}
}

func TestReplayDuplicate(t *testing.T) {
	var w ReplayWindow
	if !receive(&w, 42) {
		t.Fatal("first pn refused")
	}
	if receive(&w, 42) {
		t.Fatal("duplicate of the highest pn accepted")
	}
	receive(&w, 100)
	if receive(&w, 42) {
		t.Fatal("duplicate below the highest pn accepted")
	}
}

func TestReplayTooOld(t *testing.T) {
	var w ReplayWindow
	receive(&w, 5000)
	oldest := uint64(5000 - WindowSize + 1)
	if !w.Check(oldest) {
		t.Fatalf("pn %d, the oldest in the window, refused", oldest)
	}
	if w.Check(oldest - 1) {
		t.Fatalf("pn %d, just outside the window, accepted", oldest-1)
	}
	if w.Check(0) {
		t.Fatal("pn 0, far outside the window, accepted")
	}
	// Accepting a too-old pn must not disturb the window.
	w.Accept(0)
	if w.Check(5000) || !w.Check(4999) {
		t.Fatal("Accept of a too-old pn changed the window")
	}
}

func TestReplayBigJumpForward(t *testing.T) {
	var w ReplayWindow
	for pn := uint64(0); pn < 100; pn++ {
		receive(&w, pn)
	}
	// Every slot of the ring is now stale; none may shadow a new number.
	const far = 1_000_000
	if !receive(&w, far) {
		t.Fatal("far pn refused")
	}
	for pn := uint64(far - WindowSize + 1); pn < far; pn++ {
		if !w.Check(pn) {
			t.Fatalf("pn %d refused after jump", pn)
		}
	}
	if w.Check(99) {
		t.Fatal("pre-jump pn accepted")
	}
}

func TestReplaySlideClearsPassedSlots(t *testing.T) {
	// Jumps shorter than the window clear only the slots they pass over; try
	// every jump length against a full window, starting at an odd offset so
	// that word boundaries fall in the middle of the gap.
	for gap := uint64(1); gap < WindowSize; gap++ {
		var w ReplayWindow
		const start = 37
		for pn := uint64(start); pn < start+WindowSize; pn++ {
			w.Accept(pn)
		}
		top := uint64(start + WindowSize - 1)
		w.Accept(top + gap)
		for pn := top + gap - WindowSize + 1; pn <= top+gap; pn++ {
			want := pn > top && pn != top+gap
			if got := w.Check(pn); got != want {
				t.Fatalf("gap %d: pn %d: Check = %v, want %v", gap, pn, got, want)
			}
		}
	}
}

func TestReplayNearMaxUint64(t *testing.T) {
	var w ReplayWindow
	receive(&w, math.MaxUint64-10)
	if !receive(&w, math.MaxUint64) {
		t.Fatal("max pn refused")
	}
	if w.Check(math.MaxUint64) || !w.Check(math.MaxUint64-1) {
		t.Fatal("window wrong at the top of the range")
	}
}

func TestReplayWindowDoesNotAllocate(t *testing.T) {
	var w ReplayWindow
	var pn uint64
	if n := testing.AllocsPerRun(100, func() {
		pn += 3
		receive(&w, pn)
	}); n != 0 {
		t.Fatalf("%v allocations per packet, want 0", n)
	}
}

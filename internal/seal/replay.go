package seal

// WindowSize is how far behind the highest accepted packet number a packet
// may arrive and still be accepted once.
const WindowSize = 1024

const windowWords = WindowSize / 64

// ReplayWindow remembers which of the last WindowSize packet numbers have been
// accepted, so that a captured packet replayed later is dropped even though it
// still opens. The zero value is ready to use. It is not safe for concurrent
// use: it belongs to the one goroutine that receives for its session.
//
// The bitmap is a ring indexed by pn mod WindowSize, so sliding the window
// forward only clears the bits it passes over and never allocates.
type ReplayWindow struct {
	bits    [windowWords]uint64
	top     uint64 // highest accepted pn; meaningful only when started
	started bool   // pn 0 is valid, so "nothing yet" needs its own flag
}

// Check reports whether pn may be new: false if pn was already accepted or
// is too old for the window to tell. It records nothing, so that a forged
// packet, which will fail to open, cannot move the window.
func (w *ReplayWindow) Check(pn uint64) bool {
	if !w.started || pn > w.top {
		return true
	}
	if w.top-pn >= WindowSize {
		return false
	}
	i := pn % WindowSize
	return w.bits[i/64]&(1<<(i%64)) == 0
}

// Accept records pn. Call it only after the packet has opened.
func (w *ReplayWindow) Accept(pn uint64) {
	switch {
	case !w.started:
		w.started = true
		w.top = pn
	case pn > w.top:
		w.advance(pn)
	case w.top-pn >= WindowSize:
		return // too old to record; Check already refuses it
	}
	i := pn % WindowSize
	w.bits[i/64] |= 1 << (i % 64)
}

// advance moves top to pn, clearing the bits of the numbers skipped over:
// their slots in the ring last held numbers WindowSize older.
func (w *ReplayWindow) advance(pn uint64) {
	gap := pn - w.top
	if gap >= WindowSize {
		w.bits = [windowWords]uint64{}
		w.top = pn
		return
	}
	p := w.top + 1
	for n := gap; n > 0; {
		i := p % WindowSize
		if i%64 == 0 && n >= 64 {
			w.bits[i/64] = 0
			p += 64
			n -= 64
			continue
		}
		w.bits[i/64] &^= 1 << (i % 64)
		p++
		n--
	}
	w.top = pn
}

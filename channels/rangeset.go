package channels

// span is the half-open interval [start, end).
type span struct{ start, end uint64 }

// rangeSet is a sorted set of disjoint, non-adjacent spans. It tracks
// received packet numbers, acknowledged stream bytes and stream bytes that
// wait for retransmission; all three stay small (a few dozen spans) because
// holes are filled quickly, so a slice beats a tree.
type rangeSet struct{ s []span }

func (r *rangeSet) empty() bool { return len(r.s) == 0 }

// add inserts [start, end), merging with neighbours.
func (r *rangeSet) add(start, end uint64) {
	if start >= end {
		return
	}
	// i: first span that ends at or after start (may merge).
	i := 0
	for lo, hi := 0, len(r.s); lo < hi; {
		m := (lo + hi) / 2
		if r.s[m].end < start {
			lo = m + 1
		} else {
			hi = m
		}
		i = lo
	}
	j := i
	for j < len(r.s) && r.s[j].start <= end {
		if r.s[j].start < start {
			start = r.s[j].start
		}
		if r.s[j].end > end {
			end = r.s[j].end
		}
		j++
	}
	if i == j {
		r.s = append(r.s, span{})
		copy(r.s[i+1:], r.s[i:])
		r.s[i] = span{start, end}
		return
	}
	r.s[i] = span{start, end}
	r.s = append(r.s[:i+1], r.s[j:]...)
}

// remove deletes [start, end) from the set, in place: the sets live as
// long as their session and change with every packet, so they must not
// allocate once their arrays have grown.
func (r *rangeSet) remove(start, end uint64) {
	if start >= end {
		return
	}
	i := 0
	for i < len(r.s) && r.s[i].end <= start {
		i++
	}
	j := i
	for j < len(r.s) && r.s[j].start < end {
		j++
	}
	if i == j {
		return
	}
	var keep [2]span
	n := 0
	if r.s[i].start < start {
		keep[n] = span{r.s[i].start, start}
		n++
	}
	if r.s[j-1].end > end {
		keep[n] = span{end, r.s[j-1].end}
		n++
	}
	old := len(r.s)
	if grow := i + n + old - j - old; grow > 0 {
		r.s = append(r.s, make([]span, grow)...)
	}
	copy(r.s[i+n:], r.s[j:old])
	copy(r.s[i:], keep[:n])
	r.s = r.s[:i+n+old-j]
}

// contains reports whether x is in the set.
func (r *rangeSet) contains(x uint64) bool {
	lo, hi := 0, len(r.s)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case r.s[m].end <= x:
			lo = m + 1
		case r.s[m].start > x:
			hi = m
		default:
			return true
		}
	}
	return false
}

// gaps calls fn for each maximal part of [start, end) not in the set.
func (r *rangeSet) gaps(start, end uint64, fn func(a, b uint64)) {
	cur := start
	for _, sp := range r.s {
		if sp.end <= cur {
			continue
		}
		if sp.start >= end {
			break
		}
		if sp.start > cur {
			fn(cur, sp.start)
		}
		cur = sp.end
		if cur >= end {
			return
		}
	}
	if cur < end {
		fn(cur, end)
	}
}

// dropBelow removes everything below x.
func (r *rangeSet) dropBelow(x uint64) {
	i := 0
	for i < len(r.s) && r.s[i].end <= x {
		i++
	}
	if i > 0 {
		// Move down rather than reslice: a slice that only ever loses
		// its front would reallocate on every later append.
		r.s = r.s[:copy(r.s, r.s[i:])]
	}
	if len(r.s) > 0 && r.s[0].start < x {
		r.s[0].start = x
	}
}

// trimOldest keeps at most n spans, dropping the lowest ones.
func (r *rangeSet) trimOldest(n int) {
	if len(r.s) > n {
		r.s = append(r.s[:0], r.s[len(r.s)-n:]...)
	}
}

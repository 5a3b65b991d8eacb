package session

import (
	"math/bits"
	"slices"
)

// chanSet is the set of channels open with one user. Games use the low
// channels: 0 to 63 are bits of a word, and a map is made only for a
// channel above them, so that an idle session does not carry a map.
type chanSet struct {
	low  uint64
	high map[int]struct{}
}

func (c *chanSet) has(ch int) bool {
	if uint(ch) < 64 {
		return c.low&(1<<uint(ch)) != 0
	}
	_, ok := c.high[ch]
	return ok
}

func (c *chanSet) add(ch int) {
	if uint(ch) < 64 {
		c.low |= 1 << uint(ch)
		return
	}
	if c.high == nil {
		c.high = make(map[int]struct{})
	}
	c.high[ch] = struct{}{}
}

func (c *chanSet) remove(ch int) {
	if uint(ch) < 64 {
		c.low &^= 1 << uint(ch)
		return
	}
	delete(c.high, ch)
	if len(c.high) == 0 {
		c.high = nil
	}
}

func (c *chanSet) len() int { return bits.OnesCount64(c.low) + len(c.high) }

// sorted is the channels in ascending order.
func (c *chanSet) sorted() []int {
	out := make([]int, 0, c.len())
	for w := c.low; w != 0; w &= w - 1 {
		out = append(out, bits.TrailingZeros64(w))
	}
	start := len(out)
	for ch := range c.high {
		out = append(out, ch)
	}
	slices.Sort(out[start:])
	return out
}

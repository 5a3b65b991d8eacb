package session

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestChanSet(t *testing.T) {
	var c chanSet
	for _, ch := range []int{5, 0, 63, 64, 1 << 20, 5} {
		c.add(ch)
	}
	assert.Equal(t, 5, c.len())
	assert.Equal(t, []int{0, 5, 63, 64, 1 << 20}, c.sorted())
	assert.True(t, c.has(63))
	assert.True(t, c.has(64))
	assert.False(t, c.has(62))
	assert.False(t, c.has(65))
	c.remove(64)
	c.remove(1 << 20)
	assert.Nil(t, c.high, "the map goes with its last channel")
	c.remove(0)
	assert.Equal(t, []int{5, 63}, c.sorted())
	c.remove(5)
	c.remove(63)
	assert.Zero(t, c.len())
	assert.Empty(t, c.sorted())
}

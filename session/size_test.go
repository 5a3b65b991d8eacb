package session

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// An idle session's record is the largest allocation it holds: it must
// stay within the 768-byte size class, where time.Time fields (24 bytes
// each, stamps take 8) had put it in the 1,024-byte one.
func TestSessionRecordSizeClass(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(session{}), uintptr(768))
}

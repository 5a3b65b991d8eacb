package channels

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// An idle session holds an engine: it must stay within the 768-byte size
// class, where time.Time deadlines (24 bytes each, monos take 8) had put it
// in the 896-byte one.
func TestEngineSizeClass(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Engine{}), uintptr(768))
}

// Package testsupport holds what the module's tests share, and only that:
// nothing outside a _test.go file imports it.
package testsupport

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a logger's goroutines and a test may
// use at once: a log to read back.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

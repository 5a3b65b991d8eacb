//go:build !linux

package gso

import "net"

var controlLen = 0

// Supported reports whether c can send segmented: never on this system.
func Supported(*net.UDPConn) bool { return false }

// EnableGRO asks for coalesced reads: not on this system.
func EnableGRO(*net.UDPConn) bool { return false }

// SetSegmentControl is never called where Supported is false.
func SetSegmentControl(oob []byte, _ int) []byte { return oob[:0] }

// ReadControl finds no segment size on this system.
func ReadControl([]byte) int { return 0 }

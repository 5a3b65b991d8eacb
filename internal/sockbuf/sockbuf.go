// Package sockbuf asks for a UDP socket's kernel buffers and says what was
// granted: Linux caps the request at net.core.rmem_max and wmem_max
// (often about 208 KiB) without an error, so a caller that does not read
// the sizes back does not know that a burst will overflow them.
package sockbuf

import (
	"net"
)

// Set asks for want bytes of receive and send buffer on conn and returns
// what the kernel holds for each afterwards (on Linux, twice the usable
// size, as SO_RCVBUF reports it); 0 where the platform does not say.
func Set(conn *net.UDPConn, want int) (read, write int) {
	_ = conn.SetReadBuffer(want)
	_ = conn.SetWriteBuffer(want)
	return granted(conn)
}

// Short reports whether a buffer of got bytes, as Set returns it, is less
// than the want asked for; false when the platform does not say.
func Short(want, got int) bool {
	return got > 0 && got < want
}

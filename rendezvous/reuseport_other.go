//go:build !linux

package rendezvous

import (
	"errors"
	"net"
)

// Elsewhere one socket, read by one goroutine: SO_REUSEPORT does not
// spread datagrams over sockets on every platform that has it.
const reusePortSupported = false

func listenReusePort(string, int) ([]net.PacketConn, error) {
	return nil, errors.New("rendezvous: SO_REUSEPORT readers are supported on Linux only")
}

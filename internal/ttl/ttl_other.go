//go:build !linux

package ttl

import (
	"net"
	"net/netip"
)

func writeTo(*net.UDPConn, []byte, netip.AddrPort, int) error { return ErrUnsupported }

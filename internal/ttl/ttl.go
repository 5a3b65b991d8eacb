// Package ttl sends single UDP datagrams with a chosen IP TTL on a shared
// socket, without changing the socket's TTL for the other goroutines that
// write on it: the TTL travels as ancillary data of that one sendmsg.
package ttl

import (
	"errors"
	"net"
	"net/netip"
)

// ErrUnsupported reports a platform or socket on which the TTL of one
// datagram cannot be set.
var ErrUnsupported = errors.New("ttl: per-datagram TTL not supported")

// WriteTo sends b to the address with the given TTL (IPv4) or hop limit
// (IPv6) on c.
func WriteTo(c *net.UDPConn, b []byte, to netip.AddrPort, ttl int) error {
	if c == nil {
		return ErrUnsupported
	}
	return writeTo(c, b, to, ttl)
}

//go:build linux

package ttl

import (
	"encoding/binary"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

func writeTo(c *net.UDPConn, b []byte, to netip.AddrPort, ttl int) error {
	level, typ := unix.IPPROTO_IP, unix.IP_TTL
	if !to.Addr().Unmap().Is4() {
		level, typ = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	// A dual-stack socket addresses IPv4 peers as mapped IPv6 addresses;
	// the kernel still takes the IPv4 TTL for them.
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil && to.Addr().Is4() {
		to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	}
	_, _, err := c.WriteMsgUDPAddrPort(b, oob, to)
	return err
}

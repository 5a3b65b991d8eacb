package main

import (
	"errors"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSupported asks the kernel whether the socket takes UDP_SEGMENT, the
// same test quic-go makes before it turns GSO on.
func gsoSupported(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}

// gsoSegments is how many datagrams of size bytes one GSO send carries: at
// most 64, and the whole buffer must fit in one UDP datagram's 65,507 bytes
// (54 segments of 1200 bytes).
func gsoSegments(size int) int { return min(batch, 65507/size) }

// sendGSO sends count datagrams of size bytes to to, up to gsoSegments of
// them in one sendmsg with a UDP_SEGMENT control message.
func sendGSO(c *net.UDPConn, to netip.AddrPort, size, count int, deadline time.Time) error {
	segs := gsoSegments(size)
	buf := make([]byte, segs*size)
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgSpace(0)])) = uint16(size)
	for sent := 0; sent < count && time.Now().Before(deadline); {
		k := min(segs, count-sent)
		if _, _, err := c.WriteMsgUDPAddrPort(buf[:k*size], oob, to); err != nil {
			// EIO: the device has no checksum offload; the others: no
			// UDP_SEGMENT at all. Either way the variant is not available.
			if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOPROTOOPT) {
				return errGSOUnsupported
			}
			return err
		}
		sent += k
	}
	return nil
}

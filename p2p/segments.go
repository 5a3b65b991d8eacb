package p2p

import (
	"errors"
	"net/netip"
	"os"
	"syscall"

	"github.com/p2pcompat/p2pcompat/internal/gso"
	"github.com/p2pcompat/p2pcompat/internal/sockbuf"
)

// segIO is the socket's segmentation offload state: whether sends may be
// segmented (UDP_SEGMENT) and reads coalesced (UDP_GRO). Setting
// P2PCOMPAT_DISABLE_GSO=1 in the environment turns both off, to compare
// or to rule them out.
type segIO struct {
	send bool   // segmented sends work; cleared at the first that fails
	recv bool   // reads may return coalesced datagrams
	oob  []byte // the send control message; the Manager has one writer at a time
	// refused counts segmented sends refused with EINVAL in a row.
	refused int
}

// maxSegRefusals is how many segmented sends in a row may fail with EINVAL
// before segmentation is turned off for the socket.
const maxSegRefusals = 8

// socketBuffer is the kernel buffer asked for in each direction. The
// default (about 200 KiB on Linux) overflows on a burst of a few GSO runs,
// and every datagram lost there costs a sender a congestion episode. The
// kernel caps the request at net.core.rmem_max and wmem_max.
const socketBuffer = 4 << 20

func (n *Networking) setupSocket() {
	if n.udp == nil {
		return
	}
	if r, w := sockbuf.Set(n.udp, socketBuffer); sockbuf.Short(socketBuffer, r) || sockbuf.Short(socketBuffer, w) {
		// Once per Networking: the operator of a busy host raises the caps.
		n.log.Info("p2p: the kernel granted smaller socket buffers than asked (raise net.core.rmem_max and wmem_max)",
			"asked", socketBuffer, "read", r, "write", w)
	}
	if os.Getenv("P2PCOMPAT_DISABLE_GSO") == "1" {
		return
	}
	n.seg.send = gso.Supported(n.udp)
	n.seg.recv = gso.EnableGRO(n.udp)
	n.seg.oob = make([]byte, gso.ControlLen)
}

// WriteSegments implements session.SegmentWriter: one system call for a
// run of packets where the kernel can segment, one per packet where not.
// The Manager calls it from one goroutine at a time, which is what makes
// n.seg.oob and n.seg.send safe to use without a lock.
func (e *env) WriteSegments(b []byte, size int, to netip.AddrPort) {
	n := (*Networking)(e)
	if n.sim == nil && n.seg.send && len(b) > size {
		_, _, err := n.udp.WriteMsgUDPAddrPort(b, gso.SetSegmentControl(n.seg.oob, size), to)
		if err == nil {
			n.seg.refused = 0
			return
		}
		if n.closed.Load() {
			return
		}
		// EIO is a device without checksum offload, EOPNOTSUPP a kernel
		// without the offload: send this run one by one, and every later
		// one too. EINVAL may be one path whose MTU is smaller than a
		// segment (a tunnel): this run goes one by one, and only a
		// refusal that keeps coming turns segmentation off.
		switch {
		case errors.Is(err, syscall.EIO), errors.Is(err, syscall.EOPNOTSUPP):
			n.seg.send = false
			n.log.Debug("p2p: segmented send refused; sending one datagram per call", "err", err)
		case errors.Is(err, syscall.EINVAL):
			if n.seg.refused++; n.seg.refused >= maxSegRefusals {
				n.seg.send = false
				n.log.Debug("p2p: segmented sends keep failing; sending one datagram per call", "err", err)
			}
		default:
			n.log.Debug("p2p: write failed", "to", to, "err", err)
			return
		}
	}
	for len(b) > 0 {
		k := min(size, len(b))
		e.WriteTo(b[:k], to)
		b = b[k:]
	}
}

package rendezvous

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

const reusePortSupported = true

// listenReusePort binds n UDP sockets to addr with SO_REUSEPORT: the first
// picks the port if addr has none, the others take the same. The kernel
// then hands each source's datagrams to one of them, by a hash of the
// addresses, so that n goroutines read the port side by side.
func listenReusePort(addr string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	first, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: listen on %q: %w", addr, err)
	}
	conns := []net.PacketConn{first}
	bound := first.LocalAddr().String()
	for len(conns) < n {
		c, err := lc.ListenPacket(context.Background(), "udp", bound)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("rendezvous: listen on %q with SO_REUSEPORT: %w", bound, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

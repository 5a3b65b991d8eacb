package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
)

// Plain UDP is the reference: no reliability, no encryption, no pacing. The
// sender writes as fast as the kernel takes datagrams, what the receiving
// socket cannot hold is dropped, and only what arrives is counted.

// udpMode is how plain UDP sends.
type udpMode int

const (
	udpWriteTo udpMode = iota // one sendto per datagram, one recvfrom per datagram
	udpBatch                  // sendmmsg/recvmmsg, 64 datagrams per call
	udpGSO                    // one sendmsg with UDP_SEGMENT per up to 64 datagrams, recvmmsg
)

func (m udpMode) String() string {
	return [...]string{"WriteTo", "batch64", "GSO"}[m]
}

// batch is how many datagrams one batched call carries.
const batch = 64

// socketBuffer is the socket buffer size asked for on every plain UDP and
// kcp-go socket (the kernel caps it at net.core.rmem_max/wmem_max).
const socketBuffer = 4 << 20

// errGSOUnsupported means the kernel or the interface refuses UDP_SEGMENT.
var errGSOUnsupported = errors.New("GSO unsupported")

func listenUDP() (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(socketBuffer)
	c.SetWriteBuffer(socketBuffer)
	return c, nil
}

func addrPort(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpReceive reads until the sender is done and the socket has been quiet
// for a moment, until want datagrams arrived, or until deadline.
func udpReceive(c *net.UDPConn, mode udpMode, m *meter, want int, deadline time.Time) {
	const quiet = 100 * time.Millisecond
	var msgs []ipv4.Message
	var pc *ipv4.PacketConn
	buf := make([]byte, 64<<10)
	if mode != udpWriteTo {
		pc = ipv4.NewPacketConn(c)
		msgs = make([]ipv4.Message, batch)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 2048)}
		}
	}
	got, gotAtTimeout := 0, -1
	c.SetReadDeadline(time.Now().Add(quiet))
	for got < want {
		var n, k int
		var err error
		if pc == nil {
			n, _, err = c.ReadFromUDPAddrPort(buf)
			k = 1
		} else {
			k, err = pc.ReadBatch(msgs, 0)
			for i := 0; i < k; i++ {
				n += msgs[i].N
			}
		}
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				return
			}
			// A timeout only ends the run once the sender is done and
			// nothing came in since the previous timeout.
			if (m.sendDone.Load() && got == gotAtTimeout) || time.Now().After(deadline) {
				return
			}
			gotAtTimeout = got
			c.SetReadDeadline(time.Now().Add(quiet))
			continue
		}
		got += k
		m.got(n, k)
	}
}

// udpThroughput sends count datagrams of size bytes one way.
func udpThroughput(mode udpMode, size, count int, limit time.Duration) (tput, error) {
	snd, err := listenUDP()
	if err != nil {
		return tput{}, err
	}
	defer snd.Close()
	rcv, err := listenUDP()
	if err != nil {
		return tput{}, err
	}
	defer rcv.Close()
	to := addrPort(rcv)
	if mode == udpGSO && !gsoSupported(snd) {
		return tput{}, errGSOUnsupported
	}

	var m meter
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		udpReceive(rcv, mode, &m, count, deadline.Add(time.Second))
	}()

	payload := make([]byte, size)
	m.begin()
	var serr error
	switch mode {
	case udpWriteTo:
		for i := 0; i < count && serr == nil; i++ {
			if i%1024 == 0 && time.Now().After(deadline) {
				break
			}
			_, serr = snd.WriteToUDPAddrPort(payload, to)
		}
	case udpBatch:
		pc := ipv4.NewPacketConn(snd)
		msgs := make([]ipv4.Message, batch)
		ua := net.UDPAddrFromAddrPort(to)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{payload}
			msgs[i].Addr = ua
		}
		for sent := 0; sent < count && serr == nil && time.Now().Before(deadline); {
			var k int
			k, serr = pc.WriteBatch(msgs[:min(batch, count-sent)], 0)
			sent += k
		}
	case udpGSO:
		serr = sendGSO(snd, to, size, count, deadline)
	}
	m.sendDone.Store(true)
	wg.Wait()
	t := m.result(time.Now().After(deadline))
	if errors.Is(serr, errGSOUnsupported) {
		return t, serr
	}
	if serr != nil && !errors.Is(serr, os.ErrDeadlineExceeded) {
		return t, fmt.Errorf("send: %w", serr)
	}
	return t, nil
}

// udpRTT measures count round trips of size-byte datagrams to an echoing
// socket, after warmup unmeasured ones.
func udpRTT(size, warmup, count int, limit time.Duration) ([]time.Duration, error) {
	cli, err := listenUDP()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	srv, err := listenUDP()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	srv.SetReadDeadline(deadline.Add(time.Second))
	cli.SetReadDeadline(deadline)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // echo until the socket is closed or the deadline passes
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	defer func() { srv.Close(); wg.Wait() }()

	to := addrPort(srv)
	msg := make([]byte, size)
	buf := make([]byte, 2048)
	rtts := make([]time.Duration, 0, count)
	for i := 0; i < warmup+count && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		if _, err := cli.WriteToUDPAddrPort(msg, to); err != nil {
			return rtts, err
		}
		if _, _, err := cli.ReadFromUDPAddrPort(buf); err != nil {
			return rtts, fmt.Errorf("after %d round trips: %w", i, err)
		}
		if i >= warmup {
			rtts = append(rtts, time.Since(t0))
		}
	}
	return rtts, nil
}

package gso_test

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/gso"
)

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A segmented send arrives as its datagrams, each its own size, and a
// receiver with GRO reads them back whole: either coalesced with their
// segment size in the control message, or one by one.
func TestSegmentedSendArrivesAsDatagrams(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("segmentation offload is Linux-only; elsewhere every send is one datagram")
	}
	tx, rx := listen(t), listen(t)
	if !gso.Supported(tx) {
		t.Skip("this kernel has no UDP_SEGMENT: p2p sends one datagram per call here")
	}
	gro := gso.EnableGRO(rx)
	const size, n, last = 1200, 10, 700
	var run []byte
	for i := 0; i < n; i++ {
		l := size
		if i == n-1 {
			l = last
		}
		run = append(run, bytes.Repeat([]byte{byte(i)}, l)...)
	}
	oob := gso.SetSegmentControl(make([]byte, gso.ControlLen), size)
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, _, err := tx.WriteMsgUDPAddrPort(run, oob, to); err != nil {
		t.Fatalf("segmented send: %v", err)
	}
	var got [][]byte
	buf, roob := make([]byte, 1<<16), make([]byte, gso.ControlLen)
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < n {
		m, oobn, _, _, err := rx.ReadMsgUDPAddrPort(buf, roob)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		seg := gso.ReadControl(roob[:oobn])
		if seg > 0 && !gro {
			t.Fatalf("segment size %d reported without GRO", seg)
		}
		if seg <= 0 || seg > m {
			seg = m
		}
		for b := buf[:m]; len(b) > 0; {
			d := b[:min(seg, len(b))]
			got = append(got, append([]byte(nil), d...))
			b = b[len(d):]
		}
	}
	if len(got) != n {
		t.Fatalf("got %d datagrams, want %d", len(got), n)
	}
	for i, d := range got {
		want := size
		if i == n-1 {
			want = last
		}
		if len(d) != want || d[0] != byte(i) || d[len(d)-1] != byte(i) {
			t.Fatalf("datagram %d: %d bytes starting %d, want %d bytes of %d", i, len(d), d[0], want, i)
		}
	}
}

func TestReadControlIgnoresOtherMessages(t *testing.T) {
	if gso.ReadControl(nil) != 0 || gso.ReadControl(make([]byte, 3)) != 0 {
		t.Fatal("a short control buffer has no segment size")
	}
	// A truncated header claiming more than the buffer holds.
	b := make([]byte, gso.ControlLen)
	for i := range b {
		b[i] = 0xff
	}
	if gso.ReadControl(b) != 0 {
		t.Fatal("a garbage control message has no segment size")
	}
}

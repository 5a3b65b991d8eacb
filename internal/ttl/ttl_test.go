package ttl

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// The datagram carries the TTL asked for; the socket's own TTL for other
// datagrams is unchanged.
func TestWriteToSetsTTLOfOneDatagram(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ttl: per-datagram TTL is implemented on Linux only")
	}
	for _, network := range []string{"udp4", "udp"} {
		rc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		p := ipv4.NewPacketConn(rc)
		if err := p.SetControlMessage(ipv4.FlagTTL, true); err != nil {
			t.Fatal(err)
		}
		bind := "127.0.0.1:0"
		if network == "udp" {
			bind = ":0"
		}
		sc, err := net.ListenUDP(network, mustResolve(t, bind))
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		to := netip.MustParseAddrPort(rc.LocalAddr().String())
		if err := WriteTo(sc, []byte("low"), to, 2); err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if _, err := sc.WriteToUDPAddrPort([]byte("normal"), to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i, want := range []int{2, 64} {
			n, cm, _, err := p.ReadFrom(buf)
			if err != nil {
				t.Fatalf("%s: %v", network, err)
			}
			if cm == nil || cm.TTL != want && !(i == 1 && cm.TTL != 2) {
				t.Fatalf("%s: datagram %q arrived with TTL %v, want %d", network, buf[:n], cm, want)
			}
		}
	}
}

func mustResolve(t *testing.T, s string) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

package sockbuf

import (
	"net"
	"runtime"
	"testing"
)

// Asking for more than any kernel grants (1 GiB) comes back short, with the
// size the kernel holds: what a caller logs.
func TestSetReportsWhatWasGranted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the sizes are read back on Linux only")
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, w := Set(conn, 1<<30)
	if r <= 0 || w <= 0 || !Short(1<<30, r) || !Short(1<<30, w) {
		t.Fatalf("granted read %d, write %d for 1 GiB asked", r, w)
	}
	if Short(1<<30, 0) {
		t.Fatal("an unknown size counted as short")
	}
}

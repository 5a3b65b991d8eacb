package session

import (
	"net/netip"
	"testing"
)

// An announced address that cannot be a peer's is never a candidate:
// unspecified, multicast, broadcast, or a port below 1024, which would aim
// our probes at a DNS or web server.
func TestUsableCandidate(t *testing.T) {
	for addr, want := range map[string]bool{
		"198.18.0.1:40000":      true,
		"[2001:db8::1]:40000":   true,
		"0.0.0.0:40000":         false,
		"[::]:40000":            false,
		"224.0.0.251:5353":      false,
		"239.1.1.1:40000":       false,
		"255.255.255.255:40000": false,
		"198.18.0.1:53":         false,
		"198.18.0.1:1023":       false,
		"198.18.0.1:1024":       true,
		"[ff02::1]:40000":       false,
	} {
		if got := usableCandidate(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}

package p2p

import (
	"net/netip"
	"testing"
)

// Which announced peer addresses we send to: loopback only from loopback;
// private, link-local and shared (CGNAT) addresses only for a peer behind
// our own public address or on one of our subnets; public ones always.
func TestCandidateAllowed(t *testing.T) {
	ours := netip.MustParseAddrPort("203.0.113.7:40000")
	subnets := []netip.Prefix{netip.MustParsePrefix("192.168.1.20/24")}
	ip := netip.MustParseAddr
	cases := []struct {
		cand, peer string
		onLoopback bool
		want       bool
	}{
		{"127.0.0.1", "127.0.0.1", true, true},
		{"127.0.0.1", "198.51.100.9", false, false},
		{"198.51.100.9", "198.51.100.9", false, true},
		{"10.0.0.5", "198.51.100.9", false, false},     // someone else's LAN
		{"10.0.0.5", "203.0.113.7", false, true},       // behind our own NAT
		{"192.168.1.77", "198.51.100.9", false, true},  // on our subnet
		{"192.168.2.77", "198.51.100.9", false, false}, // next to it
		{"169.254.3.4", "198.51.100.9", false, false},  // link-local elsewhere
		{"100.64.1.2", "198.51.100.9", false, false},   // CGNAT space elsewhere
		{"fd00::1", "2001:db8::1", false, false},       // ULA elsewhere
		{"2001:db8::5", "2001:db8::1", false, true},
	}
	for _, c := range cases {
		if got := candidateAllowed(ip(c.cand), ip(c.peer), c.onLoopback, subnets, ours); got != c.want {
			t.Errorf("%s (peer seen at %s, on loopback %v): %v, want %v", c.cand, c.peer, c.onLoopback, got, c.want)
		}
	}
}

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

// The address the rendezvous observed is where it heard the peer, not the
// peer's say, so the private-address policy judges only the addresses the
// peer declared: peers on a tailnet or a routed private network keep
// their observed address as a candidate.
func TestObservedAddressIsNotJudged(t *testing.T) {
	refuseAll := func(netip.AddrPort, netip.Addr) bool { return false }
	w := newWorld(t)
	b := w.add(2, Config{AllowCandidate: refuseAll})
	s := b.m.newSession(1)
	observed := netip.MustParseAddrPort("100.101.2.2:41000")
	declared := netip.MustParseAddrPort("10.0.2.7:41000")
	b.m.setCandidates(s, []netip.AddrPort{observed, declared}, nil)
	if len(s.candidates) != 1 || s.candidates[0].addr != observed {
		t.Fatalf("candidates %+v, want the observed address alone", s.candidates)
	}
}

package session

import (
	"net/netip"
	"testing"
	"time"
)

// A user the game sends to (and so accepts) who announces third parties'
// public addresses as its own makes the player send toward each at most
// limitedAllowance (a handful of hellos) and three times what the user
// sent the player, until an address answers (RFC 9000 section 8): that
// much over the whole connect timeout while the user is silent, and no
// more once it answers, while the session opens on its real address.
func TestAnnouncedAddressesHeldToThreeTimes(t *testing.T) {
	third := []netip.AddrPort{netip.MustParseAddrPort("198.18.5.1:5000"), netip.MustParseAddrPort("198.18.6.1:6000")}
	isThird := func(a netip.AddrPort) bool { return a == third[0] || a == third[1] }

	for _, silent := range []bool{true, false} {
		w := newWorld(t)
		a, m := w.add(1, Config{}), w.add(2, Config{})
		w.announce = map[SteamID][]netip.AddrPort{2: third}
		if silent {
			w.drop = func(from, _ netip.AddrPort) bool { return from == m.addr }
		} else {
			m.m.Accept(1)
		}
		var toThird, toM, fromM int
		rec := func(d datagram) {
			switch {
			case isThird(d.to):
				toThird += len(d.b)
			case d.to == m.addr:
				toM += len(d.b)
			case d.from == m.addr && !silent:
				fromM += len(d.b)
			}
		}
		a.send(2, "x")
		w.pumpRecording(rec)
		for end := w.now.Add(21 * time.Second); w.now.Before(end); {
			w.now = w.now.Add(50 * time.Millisecond)
			a.m.OnTimer()
			m.m.OnTimer()
			w.pumpRecording(rec)
		}
		if toM == 0 {
			t.Fatalf("silent %v: nothing went to the user's own address", silent)
		}
		if toThird > len(third)*limitedAllowance+3*fromM {
			t.Fatalf("silent %v: %d bytes toward the third parties, for %d from the user", silent, toThird, fromM)
		}
		if !silent && m.read() != "x" {
			t.Fatal("the session did not open on the user's own address")
		}
		t.Logf("silent %v: %d bytes to the user, %d from it, %d toward the third parties", silent, toM, fromM, toThird)
	}
}

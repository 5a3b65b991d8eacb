package rendezvous

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun"
)

// refusedStats is ServerStats.Refused with every reason at zero but those
// given.
func refusedStats(counts map[RefuseReason]uint64) map[RefuseReason]uint64 {
	out := make(map[RefuseReason]uint64)
	for r := RefuseInvalid; r <= maxRefuseReason; r++ {
		out[r] = counts[r]
	}
	return out
}

// The table counts what it does with every message: registrations
// accepted and refused, lookups by answer, offers and receipts passed on,
// and what it drops, by why.
func TestTableStats(t *testing.T) {
	tab := newTestTable(time.Minute, 10, 480, 730)
	equal(t, tab.stats.snapshot(), ServerStats{Refused: refusedStats(nil), OnlineByApp: map[uint32]int64{480: 0, 730: 0}}, "stats of a new table")

	a := newKeyedClient(t, tab, 1)
	registerKeyed(t, tab, a, addrA, t0)     // two accepted: plain, then MAC'd
	mustRegister(t, tab, 2, 480, addrB, t0) // without a key pair
	mustRegister(t, tab, 3, 730, addrC, t0)
	for _, tc := range []struct {
		req  []byte
		want RefuseReason
	}{
		{regBytes(1, 4, 999, key(4)), RefuseNoRightsToApp},
		{regBytes(1, 0, 480, key(5)), RefuseInvalid},
	} {
		m, _ := only(t, handle(tab, tc.req, netip.MustParseAddrPort("198.18.0.4:1004"), t0, nil))
		equal(t, [2]any{m.typ, m.reason}, [2]any{msgRefused, tc.want}, "answer to a registration to refuse")
	}

	// Lookups: B online, C in another game, 9 offline. The first
	// forwards an offer, whose receipt B passes back.
	equal(t, len(handle(tab, a.lookup(10, 2, 0x5e55), addrA, t0, nil)), 2, "datagrams for A's lookup of B: result and offer")
	equal(t, len(handle(tab, a.lookup(11, 3, 1), addrA, t0, nil)), 1, "datagrams for A's lookup of C")
	equal(t, len(handle(tab, a.lookup(12, 9, 1), addrA, t0, nil)), 1, "datagrams for A's lookup of 9")
	equal(t, len(handle(tab, offerAckBytes(13, 2, 1, 0x5e55), addrB, t0, nil)), 1, "datagrams for B's receipt")

	// Dropped, each for its reason.
	for _, tc := range []struct {
		name string
		req  []byte
		from netip.AddrPort
	}{
		{"a lookup MAC'd under another key", a.forged().lookup(20, 2, 1), addrA},
		{"a lookup without the MAC A's registration requires", lookupBytes(22, 1, 2, 1), addrA},
		{"a lookup from where the user is not registered", lookupBytes(23, 2, 1, 1), addrC},
		{"a truncated registration", regBytes(24, 6, 480, key(6))[:20], addrC},
		{"an answer sent to the server", (&message{typ: msgDelivered, txID: 25, target: 1}).encode(nil), addrC},
		{"a registration from port 0", regBytes(26, 7, 480, key(7)), netip.MustParseAddrPort("198.18.0.7:0")},
	} {
		if out := handle(tab, tc.req, tc.from, t0, nil); len(out) != 0 {
			t.Fatalf("%s: answered with %d datagrams", tc.name, len(out))
		}
	}
	// The registration under another key is challenged, which tells the
	// server's key and a cookie alone, and counted as a bad MAC all the
	// same.
	handle(tab, a.forged().register(27), addrB, t0, nil)

	// C moves to the other game; A leaves; B and C lapse.
	mustRegister(t, tab, 3, 480, addrC, t0)
	want := ServerStats{
		Registrations:    5,
		Refused:          refusedStats(map[RefuseReason]uint64{RefuseNoRightsToApp: 1, RefuseInvalid: 1}),
		LookupsFound:     1,
		LookupsNotOnline: 1,
		LookupsOtherApp:  1,
		Offers:           1,
		Deliveries:       1,
		BadMAC:           2,
		Challenges:       1,
		Unauthorized:     2,
		Malformed:        2,
		Unrecognized:     1,
		Online:           3,
		OnlineByApp:      map[uint32]int64{480: 3, 730: 0},
	}
	equal(t, tab.stats.snapshot(), want, "stats")
	equal(t, len(handle(tab, a.unregister(30), addrA, t0, nil)), 0, "datagrams for A's unregistration")
	want.Unregistrations, want.Online, want.OnlineByApp = 1, 2, map[uint32]int64{480: 2, 730: 0}
	equal(t, tab.stats.snapshot(), want, "stats after A left")
	equal(t, tab.expire(t0.Add(time.Minute)), 2, "registrations expired")
	want.Expirations, want.Online, want.OnlineByApp = 2, 0, map[uint32]int64{480: 0, 730: 0}
	equal(t, tab.stats.snapshot(), want, "stats after B and C lapsed")
}

// Lookups left unanswered to hide presence are counted apart; without a
// list of apps, there is no count per app.
func TestTableStatsHiddenLookups(t *testing.T) {
	tab := newTestTable(time.Minute, 10)
	tab.hidePresence = true
	mustRegister(t, tab, 1, 480, addrA, t0)
	mustRegister(t, tab, 2, 730, addrB, t0)
	for target := uint64(2); target <= 3; target++ {
		if out := handle(tab, lookupBytes(target, 1, target, 1), addrA, t0, nil); len(out) != 0 {
			t.Fatalf("lookup of %d answered despite HidePresence", target)
		}
	}
	s := tab.stats.snapshot()
	equal(t, [5]any{s.LookupsHidden, s.LookupsFound, s.LookupsNotOnline, s.LookupsOtherApp, s.OnlineByApp}, [5]any{uint64(2), uint64(0), uint64(0), uint64(0), map[uint32]int64(nil)}, "lookups")
	equal(t, s.Online, int64(2), "online")
}

// The server counts what crosses its socket, in datagrams and bytes, and
// what it drops before the table sees it.
func TestServerStatsSocket(t *testing.T) {
	// A burst of three messages, and then nothing, per source.
	s, srv := startServer(t, ServerConfig{RateLimit: 0.001, RateBurst: 3})
	raw := rawSocket(t)
	badSTUN := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw
	badSTUN[len(badSTUN)-1] ^= 0xff // a wrong fingerprint
	in := [][]byte{
		[]byte("not a protocol the server speaks"),
		stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw,
		regBytes(1, 1, 480, key(1)),
		badSTUN,
		lookupBytes(2, 1, 2, 1), // over the rate limit
	}
	var bytesIn, bytesOut uint64
	for _, b := range in {
		_, err := raw.WriteToUDPAddrPort(b, srv)
		noError(t, err, "write")
		bytesIn += uint64(len(b))
	}
	// The server reads its socket in order: once an answer to another
	// source's request is out, it has handled everything before it.
	other := rawSocket(t)
	syncReq := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	_, err := other.WriteToUDPAddrPort(syncReq, srv)
	noError(t, err, "write")
	bytesIn += uint64(len(syncReq))
	buf := make([]byte, 2048)
	for _, c := range []interface {
		ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
		SetReadDeadline(time.Time) error
	}{raw, raw, other} { // a STUN answer and a REGISTERED to raw, a STUN answer to other
		c.SetReadDeadline(time.Now().Add(eventuallyWithin)) // bounds the test only
		n, _, err := c.ReadFromUDPAddrPort(buf)
		noError(t, err, "read an answer")
		bytesOut += uint64(n)
	}
	// Datagrams are counted once written, which may be just after they
	// arrive.
	eventually(t, func() bool { return s.Stats().DatagramsOut == 3 }, "three datagrams out")
	got := s.Stats()
	want := ServerStats{
		DatagramsIn:  6,
		BytesIn:      bytesIn,
		DatagramsOut: 3,
		BytesOut:     bytesOut,
		RateLimited:  1,
		Malformed:    1,
		Unrecognized: 1,
		STUNBindings: 2,
		// The registration came without a cookie, and took no slot.
		Challenges: 1,
		Refused:    refusedStats(nil),
	}
	equal(t, got, want, "stats")
}

// The embedded relay's allocations and the traffic through them are
// counted.
func TestServerStatsRelay(t *testing.T) {
	s, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1", MaxRelayAllocations: 1})
	a := newPeer(t, srv, 1, 480, keyed(t))
	a.register(t)
	b := newPeer(t, srv, 2, 480, keyed(t))
	b.register(t)
	equal(t, a.lookup(t, 2, 1).Status, LookupOK, "A's lookup of B")
	relayed := allocate(t, a.sharedTURNClient(t, a.client.Relays()[0]))
	relayRoundTrip(t, relayed) // "to the peer" there, "back" back
	eventually(t, func() bool {
		st := s.Stats()
		return st.RelayDatagramsToPeers == 1 && st.RelayDatagramsFromPeers == 1
	}, "a datagram each way through the relay")
	st := s.Stats()
	equal(t, [6]any{st.RelayAllocations, st.RelayAllocationsOpen, st.RelayDatagramsToPeers, st.RelayBytesToPeers, st.RelayDatagramsFromPeers, st.RelayBytesFromPeers},
		[6]any{uint64(1), int64(1), uint64(1), uint64(len("to the peer")), uint64(1), uint64(len("back"))}, "relay stats")

	// At the cap, an allocation is refused, and counted.
	r := b.client.Relays()[0]
	c, _ := turnClient(t, r.Addr, r.Username, r.Password)
	if _, err := c.Allocate(); err == nil {
		t.Fatal("allocated beyond MaxRelayAllocations")
	}
	if st := s.Stats(); st.RelayAllocationsRefused == 0 || st.RelayAllocations != 1 {
		t.Fatalf("after a refused allocation: %d made, %d refused; want 1 made and some refused", st.RelayAllocations, st.RelayAllocationsRefused)
	}
	noError(t, relayed.Close(), "deallocate")
	eventually(t, func() bool { return s.Stats().RelayAllocationsOpen == 0 }, "no allocation open")
}

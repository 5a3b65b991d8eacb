package rendezvous

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRateKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"198.18.0.1:1000", "198.18.0.1:2000"},                 // IPv4: the address
		{"[::ffff:198.18.0.1]:1000", "198.18.0.1:2000"},        // however the socket spells it
		{"[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:3"}, // IPv6: the /64
		{"[fe80::1%eth0]:1000", "[fe80::1]:1000"},
	} {
		equal(t, rateKey(netip.MustParseAddrPort(tc.a)), rateKey(netip.MustParseAddrPort(tc.b)), "%s and %s", tc.a, tc.b)
	}
	for _, tc := range []struct{ a, b string }{
		{"198.18.0.1:1000", "198.18.0.2:1000"},
		{"[2001:db8:1:2::1]:1000", "[2001:db8:1:3::1]:1000"},
		{"127.0.0.1:1000", "127.0.0.1:1001"}, // loopback: every socket its own
		{"[::1]:1000", "[::1]:1001"},
	} {
		if rateKey(netip.MustParseAddrPort(tc.a)) == rateKey(netip.MustParseAddrPort(tc.b)) {
			t.Errorf("%s and %s count as one source", tc.a, tc.b)
		}
	}
}

func TestRateLimiterBurstAndRefill(t *testing.T) {
	l := newRateLimiter(rateParams{rate: 10, burst: 5}, rateParams{rate: 100, burst: 20}, 16)
	a := netip.MustParseAddrPort("198.18.0.1:1000")
	count := func(from netip.AddrPort, c rateClass, n int, now time.Time) int {
		ok := 0
		for range n {
			if l.allow(from, c, now) {
				ok++
			}
		}
		return ok
	}
	equal(t, count(a, rateMessage, 50, t0), 5, "messages of a burst let through")
	// Relay data counts apart.
	equal(t, count(a, rateRelayData, 50, t0), 20, "relay datagrams of a burst let through")
	equal(t, count(a, rateMessage, 1, t0.Add(50*time.Millisecond)), 0, "after half a token's time")
	equal(t, count(a, rateMessage, 5, t0.Add(100*time.Millisecond)), 1, "after a token's time")
	equal(t, count(a, rateMessage, 50, t0.Add(time.Hour)), 5, "after a long pause: the burst, no more")
	// Another source, even on the same port, is another bucket.
	b := netip.MustParseAddrPort("198.18.0.2:1000")
	equal(t, count(b, rateMessage, 50, t0.Add(time.Hour)), 5, "another source's burst")
	// A clock that steps back changes nothing.
	equal(t, count(b, rateMessage, 1, t0), 0, "back in time")
}

func TestRateLimiterUnlimited(t *testing.T) {
	l := newRateLimiter(rateParamsOf(-1, 0), rateParamsOf(-1, 0), 16)
	for i := range 1000 {
		if !l.allow(netip.MustParseAddrPort("198.18.0.1:1000"), rateClass(i%2), t0) {
			t.Fatal("an unlimited limiter dropped a datagram")
		}
	}
	equal(t, l.len(), 0, "sources tracked without a limit")
}

// The table of sources stays within its bound: sources whose buckets have
// filled again are forgotten, and while the table is full of others, new
// sources share one bucket of one source's size.
func TestRateLimiterBounded(t *testing.T) {
	const max = 8
	l := newRateLimiter(rateParams{rate: 1, burst: 2}, rateParams{rate: 1, burst: 2}, max)
	src := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 1000)
	}
	// max sources, each with a token spent: none can be forgotten.
	for i := range max {
		if !l.allow(src(i), rateMessage, t0) {
			t.Fatalf("source %d's first message dropped", i)
		}
	}
	equal(t, l.len(), max, "sources")
	// Newcomers share the overflow bucket: two messages between them all.
	ok := 0
	for i := max; i < 100*max; i++ {
		if l.allow(src(i), rateMessage, t0) {
			ok++
		}
	}
	equal(t, [2]int{ok, l.len()}, [2]int{2, max}, "newcomers let through, and sources, while full")
	// The known ones keep their own buckets.
	equal(t, l.allow(src(0), rateMessage, t0), true, "a known source's second message")
	equal(t, l.allow(src(0), rateMessage, t0), false, "a known source's third message")
	// Once their buckets are full again, sources are forgotten as datagrams
	// come in, and newcomers get their own.
	later := t0.Add(time.Minute)
	for i := range max / 2 {
		equal(t, l.allow(src(1000+i), rateMessage, later), true, "newcomer %d's first message", i)
	}
	equal(t, l.len(), max/2, "sources, after the old ones were forgotten")
	equal(t, l.allow(src(1000), rateMessage, later), true, "a newcomer with a bucket of its own")
	equal(t, l.allow(src(1000), rateMessage, later), false, "and its limit")
}

// A burst from one source beyond its bucket is dropped, without an answer
// and without effect, while another source is served.
func TestServerRateLimit(t *testing.T) {
	s, srv := startServer(t, ServerConfig{RateLimit: 0.001, RateBurst: 5})
	raw := rawSocket(t)
	const burst = 20
	for i := range burst {
		id := uint64(100 + i)
		_, err := raw.WriteToUDPAddrPort(regBytes(uint64(i+1), id, 480, key(byte(id))), srv)
		noError(t, err, "write")
	}
	// Another source: served. The server reads its socket in order, so
	// by the time this is answered, everything of the burst has been
	// handled, and its answers sent.
	b := newPeer(t, srv, 2, 480)
	b.register(t)
	answered := 0
	buf := make([]byte, 2048)
	for {
		// Draining what has arrived; the wait only bounds the test.
		raw.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := raw.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		noError(t, err, "read")
		m, err := decode(buf[:n])
		noError(t, err, "decode")
		// Registrations without a cookie: challenged, holding no slot.
		equal(t, m.typ, msgChallenge, "answer to the burst")
		answered++
	}
	equal(t, answered, 5, "registrations of the burst answered")
	equal(t, s.tab.len(), 1, "registrations")
	// Its allowance spent, the source gets nothing more.
	_, err := raw.WriteToUDPAddrPort(regBytes(99, 99, 480, key(99)), srv)
	noError(t, err, "write")
	ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
	defer cancel()
	_, err = newPeer(t, srv, 3, 480).client.Register(ctx)
	noError(t, err, "Register 3")
	equal(t, s.tab.len(), 2, "registrations")
}

func TestServerValidatesRateConfig(t *testing.T) {
	for field, cfg := range map[string]ServerConfig{
		"RateBurst":      {RateBurst: -1},
		"RelayRateBurst": {RelayRateBurst: -1},
	} {
		cfg.ListenAddr = "127.0.0.1:0"
		_, err := NewServer(cfg)
		if !isConfigError(err) || !strings.Contains(err.Error(), field) {
			t.Errorf("bad %s: NewServer error %v, want a ConfigError naming the field", field, err)
		}
	}
	for _, tc := range []struct {
		rate      float64
		burst     int
		wantRate  float64
		wantBurst int
	}{
		{0, 0, defaultRateLimit, defaultRateBurst},
		{10, 0, 10, defaultRateBurst},
		{1000, 0, 1000, 2000},
		{10, 3, 10, 3},
		{-1, 0, -1, 0},
	} {
		rate, burst, err := rateDefaults("Rate", tc.rate, tc.burst, defaultRateLimit, defaultRateBurst)
		noError(t, err, "rateDefaults")
		equal(t, [2]any{rate, burst}, [2]any{tc.wantRate, tc.wantBurst}, "defaults for %v, %d", tc.rate, tc.burst)
	}
}

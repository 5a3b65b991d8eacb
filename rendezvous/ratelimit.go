package rendezvous

import (
	"container/list"
	"net/netip"
	"time"
)

// Rate limits per source.
//
// Everything the server's socket receives is counted against its source
// before it is looked at, in one of two token buckets per source:
//
//   - messages: rendezvous messages, STUN Binding requests and TURN
//     requests (allocations, refreshes, permissions, channel bindings),
//     everything that makes the server work or answer; ServerConfig.RateLimit
//     per second, bursts of ServerConfig.RateBurst.
//   - relay data: what clients send through the embedded relay (ChannelData
//     and Send indications), which is forwarded one for one to a peer the
//     sender has a permission for, and comes in the volume of a game's
//     traffic; ServerConfig.RelayRateLimit and RelayRateBurst.
//
// What is over its bucket is dropped without a word, as a congested link
// would. A source is an IPv4 address, an IPv6 /64 (what one site gets), or,
// for loopback, an address and port: nothing from outside the host can
// come from loopback, and on one host every process is its own player (a
// test, a LAN party's server). Datagrams of no protocol the server speaks
// are dropped uncounted: they cost nothing.
//
// The sources live in a table of at most maxRateSources, least recently
// heard from first. A source whose buckets have filled up again is the
// same as one never heard from, so such sources are forgotten, the oldest
// a couple at a time on every datagram. When the table is full of sources
// that are not, new ones share one pair of buckets, of one source's size:
// a flood from many addresses at once then slows down every newcomer, not
// those the server already knows, and does not grow the server's memory.
//
// A per-source limit is only as good as the source address: one who can
// send with someone else's address can spend that address's allowance. It
// bounds what any address costs the server, not who gets served.

const (
	defaultRateLimit      = 50
	defaultRateBurst      = 100
	defaultRelayRateLimit = 5000
	defaultRelayRateBurst = 10000
	// maxRateSources bounds the sources the limiter tracks.
	maxRateSources = 1 << 16
	// rateEvictPerCall is how many forgotten sources one datagram may
	// sweep from the table.
	rateEvictPerCall = 2
)

// rateClass says which bucket a datagram draws from.
type rateClass uint8

const (
	rateMessage rateClass = iota
	rateRelayData
	rateClasses
)

// rateParams is one bucket's refill rate (tokens per second) and size; a
// zero rate is no limit.
type rateParams struct {
	rate  float64
	burst float64
}

func (p rateParams) unlimited() bool { return p.rate == 0 }

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) refill(p rateParams, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(p.burst, b.tokens+d.Seconds()*p.rate)
		b.last = now
	}
}

func (b *bucket) take(p rateParams, now time.Time) bool {
	if p.unlimited() {
		return true
	}
	b.refill(p, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full says whether b would be full at now.
func (b *bucket) full(p rateParams, now time.Time) bool {
	return p.unlimited() || b.tokens+now.Sub(b.last).Seconds()*p.rate >= p.burst
}

type rateSource struct {
	key     netip.AddrPort
	buckets [rateClasses]bucket
	elem    *list.Element
}

func (s *rateSource) reset(params *[rateClasses]rateParams, now time.Time) {
	for i := range s.buckets {
		s.buckets[i] = bucket{tokens: params[i].burst, last: now}
	}
}

// rateLimiter is the table of sources. It is not safe for concurrent use;
// it belongs to the server's reader.
type rateLimiter struct {
	params   [rateClasses]rateParams
	max      int
	sources  map[netip.AddrPort]*rateSource
	byUse    list.List // of *rateSource, least recently heard from first
	overflow rateSource
	started  bool // overflow initialised
}

func newRateLimiter(message, relayData rateParams, max int) *rateLimiter {
	return &rateLimiter{
		params:  [rateClasses]rateParams{message, relayData},
		max:     max,
		sources: make(map[netip.AddrPort]*rateSource),
	}
}

// rateKey is the source that from counts as.
func rateKey(from netip.AddrPort) netip.AddrPort {
	a := from.Addr().Unmap().WithZone("")
	switch {
	case a.IsLoopback():
		return netip.AddrPortFrom(a, from.Port())
	case a.Is6():
		p, _ := a.Prefix(64)
		return netip.AddrPortFrom(p.Addr(), 0)
	}
	return netip.AddrPortFrom(a, 0)
}

// allow counts a datagram of class c from `from` at now and says whether it
// is within its source's limit.
func (l *rateLimiter) allow(from netip.AddrPort, c rateClass, now time.Time) bool {
	if l.params[c].unlimited() {
		return true
	}
	if !l.started {
		l.overflow.reset(&l.params, now)
		l.started = true
	}
	l.forget(now)
	key := rateKey(from)
	s := l.sources[key]
	switch {
	case s != nil:
		l.byUse.MoveToBack(s.elem)
	case len(l.sources) < l.max:
		s = &rateSource{key: key}
		s.reset(&l.params, now)
		s.elem = l.byUse.PushBack(s)
		l.sources[key] = s
	default:
		s = &l.overflow
	}
	return s.buckets[c].take(l.params[c], now)
}

// forget drops up to rateEvictPerCall of the least recently heard from
// sources whose buckets are full again.
func (l *rateLimiter) forget(now time.Time) {
	for range rateEvictPerCall {
		e := l.byUse.Front()
		if e == nil {
			return
		}
		s := e.Value.(*rateSource)
		for i := range s.buckets {
			if !s.buckets[i].full(l.params[i], now) {
				return
			}
		}
		l.byUse.Remove(e)
		delete(l.sources, s.key)
	}
}

// len is how many sources the table holds.
func (l *rateLimiter) len() int { return len(l.sources) }

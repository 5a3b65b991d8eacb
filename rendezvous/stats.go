package rendezvous

import (
	"sync/atomic"
)

// ServerStats is a snapshot of a Server's counters, from Server.Stats.
// Counters (every field but the gauges Online, OnlineByApp and
// RelayAllocationsOpen) count from the server's start and only grow. The
// fields are read one by one, not at one instant, so a snapshot taken
// while the server works may be off by the datagrams in flight.
type ServerStats struct {
	// DatagramsIn and BytesIn count what the server read from its UDP
	// socket, every kind of datagram included.
	DatagramsIn, BytesIn uint64
	// DatagramsOut and BytesOut count what it wrote to its socket:
	// rendezvous answers, offers, STUN answers and what the embedded relay
	// sends to its clients. Failed writes are counted in WriteErrors only.
	DatagramsOut, BytesOut uint64
	// ReadErrors and WriteErrors count failed reads and writes on the
	// socket, other than those that come with its closing.
	ReadErrors, WriteErrors uint64

	// RateLimited counts datagrams dropped because their source was over
	// its rate limit (ServerConfig.RateLimit and RelayRateLimit).
	RateLimited uint64
	// Malformed counts datagrams dropped because they did not decode: a
	// rendezvous message or STUN Binding request that breaks its format,
	// or a rendezvous message that clients do not send to the server.
	Malformed uint64
	// Unrecognized counts datagrams dropped because they are of no
	// protocol the server speaks, or come from a source that cannot be
	// answered (port 0, a multicast group).
	Unrecognized uint64
	// BadMAC counts rendezvous messages dropped, or answered with the
	// server's key alone, because their MAC did not verify: from a client
	// that knew another run's key, or forged.
	BadMAC uint64
	// Unauthorized counts well-formed rendezvous messages dropped because
	// their sender may not send them: from an address that the SteamID is
	// not registered at, without the MAC that the registration requires,
	// or replays of older registrations.
	Unauthorized uint64
	// RelayQueueFull counts datagrams for the embedded relay dropped
	// because it had fallen behind.
	RelayQueueFull uint64
	// Challenges counts registrations answered with a CHALLENGE instead
	// of being looked at further: without the cookie that proves their
	// source receives what is sent to it, where they would take a table
	// slot or a key agreement (see cookie.go), or with a MAC that did not
	// verify. A flood of forged registrations shows here.
	Challenges uint64

	// Registrations counts accepted registrations: new ones, refreshes and
	// moves. Refused counts refused ones, by the reason given; it has an
	// entry for every reason the server gives, zero or not.
	Registrations uint64
	Refused       map[RefuseReason]uint64
	// Unregistrations counts registrations that their users ended, and
	// Expirations those that lapsed without a refresh.
	Unregistrations, Expirations uint64

	// Lookups answered, by their answer (LookupsFound, LookupsNotOnline,
	// LookupsOtherApp), and LookupsHidden: lookups of users offline or in
	// another game left unanswered under ServerConfig.HidePresence.
	LookupsFound, LookupsNotOnline, LookupsOtherApp, LookupsHidden uint64
	// Offers counts offers forwarded to the targets of lookups, and
	// Deliveries the receipts for them passed on to the requesters.
	Offers, Deliveries uint64
	// STUNBindings counts the STUN Binding requests answered.
	STUNBindings uint64

	// Online is how many users are registered now, those whose
	// registration lapsed a moment ago and that the next sweep removes
	// included (within a second).
	Online int64
	// OnlineByApp is Online per AppID, when ServerConfig.AllowedApps lists
	// them (with an entry for each, zero or not); nil otherwise, since
	// anyone can then register under as many AppIDs as they like.
	OnlineByApp map[uint32]int64

	// The embedded relay's allocations: RelayAllocations counts those
	// made, RelayAllocationsOpen is how many are open now, and
	// RelayAllocationsRefused counts those refused because
	// ServerConfig.MaxRelayAllocations were open. All zero without an
	// embedded relay.
	RelayAllocations, RelayAllocationsRefused uint64
	RelayAllocationsOpen                      int64
	// What the embedded relay's allocations sent to peers (ToPeers) and
	// received from them (FromPeers), in datagrams and in payload bytes.
	// FromPeers counts everything that reaches an allocation's socket,
	// what no permission lets through to the client included.
	RelayDatagramsToPeers, RelayBytesToPeers     uint64
	RelayDatagramsFromPeers, RelayBytesFromPeers uint64
}

// counters are the live counters behind ServerStats. Each is an atomic
// added to where the event happens, so counting costs no lock and no
// allocation.
type counters struct {
	datagramsIn, bytesIn   atomic.Uint64
	datagramsOut, bytesOut atomic.Uint64
	readErrors             atomic.Uint64
	writeErrors            atomic.Uint64

	rateLimited    atomic.Uint64
	malformed      atomic.Uint64
	unrecognized   atomic.Uint64
	badMAC         atomic.Uint64
	unauthorized   atomic.Uint64
	relayQueueFull atomic.Uint64
	challenges     atomic.Uint64

	registrations   atomic.Uint64
	refused         [maxRefuseReason + 1]atomic.Uint64
	unregistrations atomic.Uint64
	expirations     atomic.Uint64

	lookups      [lookupStatuses]atomic.Uint64 // by LookupStatus
	lookupsHid   atomic.Uint64
	offers       atomic.Uint64
	deliveries   atomic.Uint64
	stunBindings atomic.Uint64

	online atomic.Int64
	// onlineByApp has an entry per allowed AppID, made before the table is
	// used and never changed after, so reading it needs no lock; nil
	// without ServerConfig.AllowedApps.
	onlineByApp map[uint32]*atomic.Int64

	relayAllocs         atomic.Uint64
	relayAllocsRefused  atomic.Uint64
	relayOpen           atomic.Int64
	relayToPeers        atomic.Uint64
	relayBytesToPeers   atomic.Uint64
	relayFromPeers      atomic.Uint64
	relayBytesFromPeers atomic.Uint64
}

const (
	// maxRefuseReason is the largest RefuseReason the server gives.
	maxRefuseReason = RefuseIDInUse
	// lookupStatuses is how many LookupStatus values there are.
	lookupStatuses = int(LookupOtherApp) + 1
)

func newCounters(allowed []uint32) *counters {
	c := new(counters)
	if len(allowed) > 0 {
		c.onlineByApp = make(map[uint32]*atomic.Int64, len(allowed))
		for _, a := range allowed {
			c.onlineByApp[a] = new(atomic.Int64)
		}
	}
	return c
}

// refuse counts a refusal for reason.
func (c *counters) refuse(reason RefuseReason) {
	if int(reason) < len(c.refused) {
		c.refused[reason].Add(1)
	}
}

// joined counts a user coming online under app, and left one going.
func (c *counters) joined(app uint32) {
	c.online.Add(1)
	if n := c.onlineByApp[app]; n != nil {
		n.Add(1)
	}
}

func (c *counters) left(app uint32) {
	c.online.Add(-1)
	if n := c.onlineByApp[app]; n != nil {
		n.Add(-1)
	}
}

// snapshot reads the counters.
func (c *counters) snapshot() ServerStats {
	s := ServerStats{
		DatagramsIn:  c.datagramsIn.Load(),
		BytesIn:      c.bytesIn.Load(),
		DatagramsOut: c.datagramsOut.Load(),
		BytesOut:     c.bytesOut.Load(),
		ReadErrors:   c.readErrors.Load(),
		WriteErrors:  c.writeErrors.Load(),

		RateLimited:    c.rateLimited.Load(),
		Malformed:      c.malformed.Load(),
		Unrecognized:   c.unrecognized.Load(),
		BadMAC:         c.badMAC.Load(),
		Unauthorized:   c.unauthorized.Load(),
		RelayQueueFull: c.relayQueueFull.Load(),
		Challenges:     c.challenges.Load(),

		Registrations:   c.registrations.Load(),
		Refused:         make(map[RefuseReason]uint64, maxRefuseReason),
		Unregistrations: c.unregistrations.Load(),
		Expirations:     c.expirations.Load(),

		LookupsFound:     c.lookups[LookupOK].Load(),
		LookupsNotOnline: c.lookups[LookupNotOnline].Load(),
		LookupsOtherApp:  c.lookups[LookupOtherApp].Load(),
		LookupsHidden:    c.lookupsHid.Load(),
		Offers:           c.offers.Load(),
		Deliveries:       c.deliveries.Load(),
		STUNBindings:     c.stunBindings.Load(),

		Online: c.online.Load(),

		RelayAllocations:        c.relayAllocs.Load(),
		RelayAllocationsRefused: c.relayAllocsRefused.Load(),
		RelayAllocationsOpen:    c.relayOpen.Load(),
		RelayDatagramsToPeers:   c.relayToPeers.Load(),
		RelayBytesToPeers:       c.relayBytesToPeers.Load(),
		RelayDatagramsFromPeers: c.relayFromPeers.Load(),
		RelayBytesFromPeers:     c.relayBytesFromPeers.Load(),
	}
	for r := RefuseInvalid; r <= maxRefuseReason; r++ {
		s.Refused[r] = c.refused[r].Load()
	}
	if c.onlineByApp != nil {
		s.OnlineByApp = make(map[uint32]int64, len(c.onlineByApp))
		for app, n := range c.onlineByApp {
			s.OnlineByApp[app] = n.Load()
		}
	}
	return s
}

// Stats returns a snapshot of the server's counters. It is cheap enough to
// call on every scrape of a metrics endpoint, and safe to call at any time,
// after Close too.
func (s *Server) Stats() ServerStats { return s.tab.stats.snapshot() }

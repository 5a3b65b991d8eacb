package session

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// A session's packets travel on a pair: one of our two ways out (our
// socket, or our TURN allocation) and one address of the peer. Every pair
// is probed at once; the ones we hear the peer on are usable, and the best
// usable one carries data. Direct beats relayed, so a relayed session
// moves to a direct pair the moment one answers, and the session ID in
// every packet carries the stream across without loss or reordering.

// side is our end of a pair.
type side uint8

const (
	sideDirect side = iota // our socket
	sideRelay              // our TURN allocation
)

// candKind says how we learned a peer address.
type candKind uint8

const (
	candHost  candKind = iota // an address the peer bound or advertised
	candSrflx                 // where the rendezvous saw the peer
	candRelay                 // the peer's TURN allocation
	candPrflx                 // where an authenticated packet came from, unannounced
)

type candidate struct {
	addr   netip.AddrPort
	kind   candKind
	opened bool // an opener went to it (see probe)
	// limited: an address only the peer's word puts there, on someone
	// else's public IP (see limitedCandidate). Until it answers, what we
	// send there is at most amplification times what the peer sent us,
	// as QUIC bounds a server before the client's address is validated
	// (RFC 9000 section 8); sent counts it.
	limited bool
	sent    int
}

// What goes to a limited candidate that has not answered is at most
// limitedAllowance, a handful of hellos, so that two peers that each know
// only the other's word (relays of their own, say) can still start, and
// then amplification times what the peer sent us: RFC 9000's factor.
const (
	amplification    = 3
	limitedAllowance = 1200
)

type pair struct {
	side  side
	addr  netip.AddrPort
	kind  candKind
	heard stamp // last time the pair proved to work both ways
}

func (p pair) valid() bool   { return p.addr.IsValid() }
func (p pair) relayed() bool { return p.side == sideRelay || p.kind == candRelay }

const (
	maxCandidates = 8
	maxPrflx      = 4
	maxPairs      = 24
	// directFallback is when full probes to the peer's public addresses
	// go out even without a sign that the peer has opened its NAT toward
	// us (see probe): a rendezvous that sends no receipts, or lost ones.
	directFallback = 3 * time.Second
)

// pairFresh is how long a pair counts as working after it last proved so.
func (m *Manager) pairFresh() time.Duration { return 3 * m.cfg.KeepaliveInterval }

// pathStale reports a path that has not proved itself for two keepalives:
// time to look for another.
func (m *Manager) pathStale(s *session) bool {
	return !s.path.valid() || s.path.heard.Before(m.at.Add(-2*m.cfg.KeepaliveInterval))
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// setCandidates replaces the peer's announced addresses with the latest the
// rendezvous reported (after a change of network the old ones are dead),
// keeping addresses learned from the peer's own packets.
func (m *Manager) setCandidates(s *session, addrs, relayed []netip.AddrPort) {
	old := s.candidates
	s.candidates = make([]candidate, 0, len(addrs)+len(relayed))
	var observed netip.Addr
	if len(addrs) > 0 {
		observed = unmap(addrs[0]).Addr()
	}
	for i, a := range addrs {
		a = unmap(a)
		// The observed address is where the rendezvous heard the peer,
		// nobody's say: only the addresses the peer declared are judged.
		if !usableCandidate(a) || i > 0 && m.cfg.AllowCandidate != nil && !m.cfg.AllowCandidate(a, observed) {
			continue
		}
		// The rendezvous lists the address it saw first; an address the
		// peer also bound is a host address (same host, same LAN).
		k := candHost
		if i == 0 && !containsAddr(addrs[1:], a) && !a.Addr().IsLoopback() {
			k = candSrflx
		}
		s.addCandidate(a, k, i > 0 && m.limitedCandidate(a.Addr(), observed, false))
	}
	for _, a := range relayed {
		if usableCandidate(unmap(a)) {
			s.addCandidate(a, candRelay, m.limitedCandidate(unmap(a).Addr(), observed, true))
		}
	}
	// Pairs on a relayed address the peer no longer announces died with
	// its allocation.
	m.reclassify(s)
	announced := func(a netip.AddrPort) bool {
		for _, c := range old {
			if c.addr == a && c.kind == candRelay {
				return true
			}
		}
		return false
	}
	m.prunePairs(s, func(p pair) bool { return announced(p.addr) && !containsAddr(relayed, p.addr) })
	for _, c := range old {
		if c.kind == candPrflx {
			s.addCandidate(c.addr, candPrflx, false)
		}
		for i := range s.candidates {
			if s.candidates[i].addr == c.addr {
				s.candidates[i].opened = s.candidates[i].opened || c.opened
				s.candidates[i].sent = c.sent
			}
		}
	}
	m.permit(s)
}

// usableCandidate says whether an announced address can be a peer's at
// all: no unspecified, multicast or broadcast address, no port below 1024
// (which would aim our probes at someone's DNS or web server).
func usableCandidate(a netip.AddrPort) bool {
	ip := a.Addr()
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast() && ip != netip.AddrFrom4([4]byte{255, 255, 255, 255}) && a.Port() >= 1024
}

// limitedCandidate says whether a declared address of a peer observed at
// observed counts against the amplification bound: a public address on
// another IP than the peer's own, or a relayed one on a relay we do not
// know (Config.KnownRelay), which the peer could have named to aim our
// probes at someone. Its own IP, private and link-local addresses (which
// AllowCandidate keeps to our own network), the addresses of a peer on our
// own network (Config.OwnNetwork) and relays we use ourselves are not.
func (m *Manager) limitedCandidate(ip, observed netip.Addr, relayed bool) bool {
	ip = ip.Unmap()
	switch {
	case ip == observed:
		return false
	case !relayed && m.cfg.OwnNetwork != nil && m.cfg.OwnNetwork(ip, observed):
		return false
	case relayed:
		return m.cfg.KnownRelay == nil || !m.cfg.KnownRelay(ip)
	case ip.IsPrivate() || ip.IsLinkLocalUnicast() || cgnat.Contains(ip):
		return false
	}
	return true
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// emitBounded sends b toward candidate c, unless c is limited, has not
// answered, and would then have been sent more than limitedAllowance and
// amplification times what the peer sent us.
func (m *Manager) emitBounded(s *session, c *candidate, b []byte, sd side) {
	if c.limited && !m.answered(s, c.addr) {
		if c.sent+len(b) > limitedAllowance+amplification*s.recvBytes {
			return
		}
		c.sent += len(b)
	}
	m.emit(b, sd, c.addr)
}

// answered says whether some pair on addr has proved to work.
func (m *Manager) answered(s *session, addr netip.AddrPort) bool {
	for _, p := range s.pairs {
		if p.addr == addr && !p.heard.IsZero() {
			return true
		}
	}
	return false
}

func (s *session) addCandidate(a netip.AddrPort, k candKind, limited bool) {
	a = unmap(a)
	if !a.IsValid() || a.Port() == 0 || len(s.candidates) >= maxCandidates {
		return
	}
	for _, c := range s.candidates {
		if c.addr == a {
			return
		}
	}
	s.candidates = append(s.candidates, candidate{addr: a, kind: k, limited: limited})
}

// learnPrflx adds an address the peer's probe came from that nobody
// announced: a symmetric NAT's port for us. Answering there is what opens
// it. The oldest such address makes way, so unauthenticated noise cannot
// fill the list; only authenticated probes get here.
func (m *Manager) learnPrflx(s *session, a netip.AddrPort) {
	n := 0
	for _, c := range s.candidates {
		if c.addr == a {
			return
		}
		if c.kind == candPrflx {
			n++
		}
	}
	if n >= maxPrflx || len(s.candidates) >= maxCandidates {
		for i, c := range s.candidates {
			if c.kind == candPrflx {
				s.candidates = append(s.candidates[:i], s.candidates[i+1:]...)
				break
			}
		}
	}
	s.addCandidate(a, m.kindOf(s, a), false) // where an authenticated probe came from
	m.permit(s)
}

// kindOf classifies a peer address: announced ones as announced; others
// as peer-reflexive, unless they sit on a relay (the peer's allocation,
// not yet announced), which counts as relayed (C50, C52).
func (m *Manager) kindOf(s *session, a netip.AddrPort) candKind {
	for _, c := range s.candidates {
		if c.addr == a && c.kind != candPrflx {
			return c.kind
		}
	}
	if r := m.env.RelayServer(); r.IsValid() && r.Addr() == a.Addr() {
		return candRelay
	}
	for _, c := range s.candidates {
		if c.kind == candRelay && c.addr.Addr() == a.Addr() {
			return candRelay
		}
	}
	return candPrflx
}

// reclassify files every pair again under what is known now of relays: an
// address first seen unannounced may since have turned out to sit on one.
func (m *Manager) reclassify(s *session) {
	for i := range s.pairs {
		s.pairs[i].kind = m.kindOf(s, s.pairs[i].addr)
	}
	if s.path.valid() {
		s.path.kind = m.kindOf(s, s.path.addr)
	}
	for i := range s.candidates {
		if s.candidates[i].kind == candPrflx {
			s.candidates[i].kind = m.kindOf(s, s.candidates[i].addr)
		}
	}
}

// permit lets the peer's public and relayed addresses reach our relayed
// address; only for a session the game wants and that may be relayed, so
// that strangers hold none of the relay's permissions. Host addresses are
// left out, they are only of use on a LAN and a relay may refuse them,
// except under ForceRelay, where every address of the peer is reached
// through the relay and one of them may carry the session: asked for, it
// is never evicted from a full table to make room.
func (m *Manager) permit(s *session) {
	if !s.localAccepted || !s.allowRelay || !m.env.HasRelay() {
		return
	}
	s.relayTouched = true
	// The relay's own address is left out too: a relay does not relay to
	// itself, and may refuse the request that names it.
	own := m.env.RelayServer().Addr()
	var addrs []netip.AddrPort
	for _, c := range s.candidates {
		if (c.kind != candHost || m.cfg.ForceRelay) && c.addr.Addr() != own {
			addrs = append(addrs, c.addr)
		}
	}
	if len(addrs) > 0 {
		m.permitLater(addrs)
	}
}

// revoke withdraws the relay permissions of a session that ends, except
// for addresses another session still uses (two players behind one NAT).
// Host addresses are withdrawn too: permit leaves them out, but under
// ForceRelay probes go through the relay to every candidate, and each one
// written to holds an entry in the relay client's table (and a permission
// on the relay) until it is revoked.
func (m *Manager) revoke(s *session) {
	if !m.env.HasRelay() || !s.relayTouched {
		return // a stranger's, say: nothing to withdraw, no table to scan
	}
	inUse := map[netip.Addr]bool{}
	for _, o := range m.tab.lru.Values() {
		if o != s && o.localAccepted {
			for _, c := range o.candidates {
				inUse[c.addr.Addr()] = true
			}
		}
	}
	var addrs []netip.AddrPort
	for _, c := range s.candidates {
		if !inUse[c.addr.Addr()] {
			addrs = append(addrs, c.addr)
		}
	}
	if len(addrs) > 0 {
		m.revokeLater(addrs)
	}
}

func containsAddr(list []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range list {
		if unmap(x) == unmap(a) {
			return true
		}
	}
	return false
}

// token is what we put in a probe on one pair and expect back in the
// answer: only an answer from that very address proves the pair. A hello
// replayed from elsewhere carries a token made for another address.
func (s *session) token(sd side, a netip.AddrPort) uint64 {
	h := sha256.New()
	h.Write(s.tokenKey[:])
	b := a.Addr().As16()
	h.Write([]byte{byte(sd), byte(a.Port() >> 8), byte(a.Port())})
	h.Write(b[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// heard records that the pair (sd, from) works both ways: the answer to
// one of our probes on it, or the peer's data on it. It returns false if
// the pair is relayed and this session may not use a relay, in which case
// the packet must be ignored. follow says the packet is the newest data
// the peer sent: its pair is the one the peer uses now.
func (m *Manager) heard(s *session, sd side, from netip.AddrPort, follow bool) bool {
	kind := m.kindOf(s, from)
	p := pair{side: sd, addr: from, kind: kind, heard: m.at}
	if !m.usable(s, p) {
		return false
	}
	for i := range s.pairs {
		if s.pairs[i].side == sd && s.pairs[i].addr == from {
			s.pairs[i].heard, s.pairs[i].kind = m.at, kind
			m.choosePath(s, &s.pairs[i], follow)
			return true
		}
	}
	if len(s.pairs) >= maxPairs {
		// Forget the pair that proved itself least recently.
		old := 0
		for i := range s.pairs {
			if s.pairs[i].heard.Before(s.pairs[old].heard) {
				old = i
			}
		}
		s.pairs[old] = s.pairs[len(s.pairs)-1]
		s.pairs = s.pairs[:len(s.pairs)-1]
	}
	s.pairs = append(s.pairs, p)
	m.choosePath(s, &s.pairs[len(s.pairs)-1], follow)
	return true
}

// prunePairs forgets the pairs that died; if the path was one of them,
// the best fresh pair left takes over (none: probing finds one).
func (m *Manager) prunePairs(s *session, dead func(pair) bool) {
	kept := s.pairs[:0]
	for _, p := range s.pairs {
		if !dead(p) {
			kept = append(kept, p)
		}
	}
	s.pairs = kept
	if !s.path.valid() || !dead(s.path) {
		return
	}
	s.path = pair{}
	fresh := m.at.Add(-m.pairFresh())
	for _, p := range s.pairs {
		if p.heard.After(fresh) && (!s.path.valid() || better(p, s.path)) {
			s.path = p
		}
	}
}

// choosePath makes the best fresh pair the path: direct over relayed; at
// equal rank the current one stays unless the peer's newest data came on
// the other (the peer moved, or its NAT rebound).
func (m *Manager) choosePath(s *session, last *pair, follow bool) {
	fresh := m.at.Add(-m.pairFresh())
	cur := s.path
	curOK := false
	for _, p := range s.pairs {
		if p.side == cur.side && p.addr == cur.addr && p.heard.After(fresh) {
			curOK = true
		}
	}
	switch {
	case !curOK:
		best := *last
		for _, p := range s.pairs {
			if p.heard.After(fresh) && better(p, best) {
				best = p
			}
		}
		s.path = best
	case better(*last, cur) || follow && last.relayed() == cur.relayed():
		s.path = *last
	default:
		if last.side == cur.side && last.addr == cur.addr {
			s.path.heard = last.heard
		}
	}
}

// usable says whether this session may use pair p: relayed ones only with
// relay allowed; with ForceRelay only those on our own allocation, since
// anything we send from our socket, even to the peer's relay, tells the
// peer our address.
func (m *Manager) usable(s *session, p pair) bool {
	if m.cfg.ForceRelay {
		return p.side == sideRelay
	}
	return !p.relayed() || s.allowRelay
}

// better ranks pairs: a direct one beats a relayed one.
func better(a, b pair) bool { return !a.relayed() && b.relayed() }

// refreshPath drops a path that has not proved itself for a while in
// favour of a fresh pair, if there is one.
func (m *Manager) refreshPath(s *session) {
	if !s.path.valid() || !s.path.heard.Before(m.at.Add(-m.pairFresh())) {
		return
	}
	for i := range s.pairs {
		if s.pairs[i].heard.After(m.at.Add(-m.pairFresh())) {
			m.choosePath(s, &s.pairs[i], false)
			return
		}
	}
}

// write sends b on one pair.
func (m *Manager) write(b []byte, sd side, to netip.AddrPort) { m.emit(b, sd, to) }

// probe sends a hello, made by mk for each pair, on every pair worth
// trying.
//
// The peer's public addresses need care. Between two Linux NAT routers, a
// probe that reaches the peer's router before the peer has sent anything
// toward us makes that router give the peer's own packets to us another
// port, which our router then drops: both sides stay blocked. So each side
// first sends an opener to each public address, which creates its own
// router's mapping without reaching the peer's; the side that looked the
// peer up sends full probes only once the rendezvous says the peer
// received the offer, which the peer acknowledges after sending its
// openers (peerOpened); the other side only answers probes. Where no
// opener can be sent (no TTL control) nothing is gained by waiting.
// directFallback covers a receipt that never comes.
func (m *Manager) probe(s *session, mk func(sd side, to netip.AddrPort) []byte) {
	if s.directAt.IsZero() && len(s.candidates) > 0 {
		// From the first opener on: an accept that comes late must not
		// wait the whole fallback again before probing a NAT in full.
		s.directAt = m.at.Add(directFallback)
	}
	if s.stranger() {
		// Nothing toward the addresses a stranger named but one opener
		// per public candidate, which dies two hops out (OpenerTTL) and
		// is what keeps our NAT from mistaking the stranger's probes for
		// a new mapping. We only answer its probes, where they came from,
		// which finds a pair; full probing starts when the game accepts.
		if m.cfg.ForceRelay {
			return
		}
		for i := range s.candidates {
			if c := &s.candidates[i]; c.kind == candSrflx && !c.opened {
				c.opened = true
				// Without TTL control (noOpeners, once written) full probes
				// wait for the accept.
				m.openerLater(s, mk(sideDirect, c.addr), c.addr)
			}
		}
		return
	}
	established := s.phase == phaseEstablished
	if m.env.HasRelay() && (s.allowRelay || m.cfg.ForceRelay) {
		s.relayTouched = true // what we relay to gets a permission
	}
	public := s.peerOpened || !s.directAt.IsZero() && !m.at.Before(s.directAt)
	// Once established on a working direct path nothing is probed; on a
	// relayed or silent one every pair is.
	relay := s.allowRelay && m.env.HasRelay() && (!established || s.path.relayed() || m.pathStale(s))
	if m.cfg.ForceRelay {
		// Only through our allocation, to every address of the peer.
		if m.env.HasRelay() {
			for i := range s.candidates {
				c := &s.candidates[i]
				m.emitBounded(s, c, mk(sideRelay, c.addr), sideRelay)
			}
		}
		return
	}
	for i := range s.candidates {
		c := &s.candidates[i]
		if c.kind == candRelay && !s.allowRelay {
			continue
		}
		switch c.kind {
		case candHost, candRelay:
			m.emitBounded(s, c, mk(sideDirect, c.addr), sideDirect)
		default:
			if !c.opened {
				c.opened = true
				m.openerLater(s, mk(sideDirect, c.addr), c.addr)
			}
			if public || s.noOpeners {
				m.emitBounded(s, c, mk(sideDirect, c.addr), sideDirect)
			}
		}
		if relay && c.kind != candHost {
			m.emitBounded(s, c, mk(sideRelay, c.addr), sideRelay)
		}
	}
}

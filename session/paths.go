package session

import (
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
	addr netip.AddrPort
	kind candKind
}

type pair struct {
	side  side
	addr  netip.AddrPort
	kind  candKind
	heard time.Time // last authenticated packet on this pair
}

func (p pair) valid() bool   { return p.addr.IsValid() }
func (p pair) relayed() bool { return p.side == sideRelay || p.kind == candRelay }

const (
	maxCandidates = 8
	maxPairs      = 24
	// directFallback is when full probes to the peer's public addresses
	// go out even without a sign that the peer has opened its NAT toward
	// us (see probe): a rendezvous that sends no receipts, or lost ones.
	directFallback = 3 * time.Second
)

// pairFresh is how long a pair counts as working after the peer was last
// heard on it.
func (m *Manager) pairFresh() time.Duration { return 3 * m.cfg.KeepaliveInterval }

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// setCandidates replaces the peer's announced addresses with the latest the
// rendezvous reported (after a change of network the old ones are dead),
// keeping addresses learned from the peer's own packets.
func (m *Manager) setCandidates(s *session, addrs, relayed []netip.AddrPort) {
	old := s.candidates
	s.candidates = make([]candidate, 0, len(addrs)+len(relayed))
	add := func(a netip.AddrPort, k candKind) {
		a = unmap(a)
		if !a.IsValid() || a.Port() == 0 || len(s.candidates) >= maxCandidates {
			return
		}
		for _, c := range s.candidates {
			if c.addr == a {
				return
			}
		}
		s.candidates = append(s.candidates, candidate{a, k})
	}
	for i, a := range addrs {
		// The rendezvous lists the address it saw first; an address the
		// peer also bound is a host address (same host, same LAN).
		k := candHost
		if i == 0 && !containsAddr(addrs[1:], a) && !a.Addr().IsLoopback() {
			k = candSrflx
		}
		add(a, k)
	}
	for _, a := range relayed {
		add(a, candRelay)
	}
	for _, c := range old {
		if c.kind == candPrflx {
			add(c.addr, candPrflx)
		}
	}
	if len(s.candidates) > 0 {
		addrs := make([]netip.AddrPort, 0, len(s.candidates))
		for _, c := range s.candidates {
			addrs = append(addrs, c.addr)
		}
		m.env.Permit(addrs) // so that the peer reaches our relayed address
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

func (s *session) candidateKind(a netip.AddrPort) (candKind, bool) {
	for _, c := range s.candidates {
		if c.addr == a {
			return c.kind, true
		}
	}
	return candPrflx, false
}

// heard records an authenticated packet from the peer on (sd, from) and
// returns false if relay is not allowed for this session and the packet
// came over one, in which case it must be ignored. follow says the packet
// is the newest data the peer sent: its pair is the one the peer uses now.
func (m *Manager) heard(s *session, sd side, from netip.AddrPort, follow bool) bool {
	kind, known := s.candidateKind(from)
	p := pair{side: sd, addr: from, kind: kind, heard: m.now}
	if p.relayed() && !s.allowRelay {
		return false
	}
	if !known && sd == sideDirect && len(s.candidates) < maxCandidates {
		// A peer-reflexive address: the peer's NAT gave it a port nobody
		// announced (a symmetric NAT). Answering there is what opens it.
		s.candidates = append(s.candidates, candidate{from, candPrflx})
	}
	for i := range s.pairs {
		if s.pairs[i].side == sd && s.pairs[i].addr == from {
			s.pairs[i].heard = m.now
			m.choosePath(s, &s.pairs[i], follow)
			return true
		}
	}
	if len(s.pairs) >= maxPairs {
		// Forget the pair heard least recently.
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

// choosePath makes the best fresh pair the path: direct over relayed; at
// equal rank the current one stays unless the peer's newest data came on
// the other (the peer moved, or its NAT rebound): hellos arrive on every
// pair while probing, and following them would flap.
func (m *Manager) choosePath(s *session, last *pair, follow bool) {
	fresh := m.now.Add(-m.pairFresh())
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

// better ranks pairs: a direct one beats a relayed one.
func better(a, b pair) bool { return !a.relayed() && b.relayed() }

// refreshPath drops a path the peer has not been heard on for a while in
// favour of a fresh pair, if there is one.
func (m *Manager) refreshPath(s *session) {
	if !s.path.valid() || !s.path.heard.Before(m.now.Add(-m.pairFresh())) {
		return
	}
	for i := range s.pairs {
		if s.pairs[i].heard.After(m.now.Add(-m.pairFresh())) {
			m.choosePath(s, &s.pairs[i], false)
			return
		}
	}
}

// write sends b on one pair.
func (m *Manager) write(b []byte, sd side, to netip.AddrPort) {
	if sd == sideRelay {
		m.env.RelayTo(b, to)
		return
	}
	m.env.WriteTo(b, to)
}

// probe sends the hello in b on every pair worth trying.
//
// The peer's public addresses need care. Between two Linux NAT routers, a
// probe that reaches the peer's router before the peer has sent anything
// toward us makes that router give the peer's own packets to us another
// port, which our router then drops: both sides stay blocked. So each side
// first sends openers, which create its own router's mapping without
// reaching the peer's; the side that looked the peer up sends full probes
// only once the rendezvous says the peer received the offer, which the
// peer acknowledges after sending its openers (peerOpened); the other side
// only answers probes. directFallback covers a receipt that never comes.
func (m *Manager) probe(s *session, b []byte) {
	established := s.phase == phaseEstablished
	if !s.openersSent && len(s.candidates) > 0 {
		s.openersSent = true
		s.directAt = m.now.Add(directFallback)
		for _, c := range s.candidates {
			if c.kind == candSrflx || c.kind == candPrflx {
				m.env.WriteOpener(b, c.addr)
			}
		}
	}
	public := s.peerOpened || s.openersSent && !m.now.Before(s.directAt)
	// Once established on a direct path nothing is probed; on a relayed
	// one every pair is, the direct ones to move there, the relayed ones
	// to follow a relay that changed.
	relay := s.allowRelay && m.env.HasRelay() && (!established || s.path.relayed())
	for _, c := range s.candidates {
		if c.kind == candRelay && !s.allowRelay {
			continue
		}
		if c.kind == candHost || c.kind == candRelay || public {
			m.env.WriteTo(b, c.addr)
		}
		if relay {
			m.env.RelayTo(b, c.addr)
		}
	}
}

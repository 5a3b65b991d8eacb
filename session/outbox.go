package session

import (
	"net/netip"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/gso"
	"github.com/p2pcompat/p2pcompat/internal/seal"
)

// The Manager never makes a system call under its lock, nor calls its Env
// there. What it sends, looks up or permits is
// appended, in order, to an outbox while the lock is held, and written by
// whoever releases the lock (unlock), one writer at a time. While one
// goroutine writes, the others only append, so a burst made by several
// goroutines leaves in few calls, and a goroutine that only wanted to read
// a packet never waits on another's write.
//
// A run of datagrams of one size to one address is one outbox entry, and
// one call of a SegmentWriter.

// outboxCap bounds what one outbox holds of data packets: a session
// whose flush finds it full waits for the writer (starved) rather than
// growing it. Handshake messages are few and always go in.
var outboxCap = 256 << 10

// writerRounds is how many outboxes one unlock writes before it leaves the
// rest to the timer goroutine (see Deadline): a game thread's Send should
// not be kept writing for everyone else during a bulk transfer.
const writerRounds = 2

// maxDatagram is the largest datagram flush makes.
func (m *Manager) maxDatagram() int { return len(m.pbuf) + dataHeaderLen + seal.Overhead }

type outbox struct {
	buf  []byte
	ents []outEntry
}

// outEntry is one datagram, or a run of datagrams of size bytes (the last
// may be shorter) to one address; or a change of the relay's permissions,
// which must keep its place among the datagrams: a goodbye through the
// relay must leave before the permission for its address is withdrawn, and
// a withdrawal must not overtake a new session's permission for the same
// address; or a lookup at the rendezvous, or an opener (a datagram with a
// low TTL), which are system calls too.
type outEntry struct {
	kind   entryKind
	off, n int
	size   int
	to     netip.AddrPort
	relay  bool
	addrs  []netip.AddrPort // permit, revoke
	// lookup: whom, with which session ID; opener: the session it opens
	// for, told (noOpeners) if the opener could not be sent.
	target SteamID
	sid    uint64
	s      *session
}

type entryKind uint8

const (
	entryDatagram entryKind = iota
	entryPermit
	entryRevoke
	entryLookup
	entryOpener
)

func (e *outEntry) segments() int { return (e.n + e.size - 1) / e.size }

func (o *outbox) reset() {
	o.buf = o.buf[:0]
	clear(o.ents)
	o.ents = o.ents[:0]
}

// commit makes the bytes from start to the end of o.buf one more datagram,
// joining the previous entry when it can be segmented with it.
func (o *outbox) commit(start int, sd side, to netip.AddrPort, segmented bool) {
	size := len(o.buf) - start
	if k := len(o.ents) - 1; segmented && k >= 0 {
		e := &o.ents[k]
		if e.kind == entryDatagram && e.to == to && !e.relay && sd == sideDirect && e.off+e.n == start &&
			e.n%e.size == 0 && size <= e.size && e.segments() < gso.MaxSegments && e.n+size <= gso.MaxBytes {
			e.n += size
			return
		}
	}
	o.ents = append(o.ents, outEntry{off: start, n: size, size: size, to: to, relay: sd == sideRelay})
}

// emit queues a copy of b for sending on one pair.
func (m *Manager) emit(b []byte, sd side, to netip.AddrPort) {
	start := len(m.out.buf)
	m.out.buf = append(m.out.buf, b...)
	m.out.commit(start, sd, to, false)
}

// permitLater and revokeLater queue a change of the relay's permissions
// in order with the datagrams (see outEntry).
func (m *Manager) permitLater(addrs []netip.AddrPort) {
	m.out.ents = append(m.out.ents, outEntry{kind: entryPermit, addrs: addrs})
}

func (m *Manager) revokeLater(addrs []netip.AddrPort) {
	m.out.ents = append(m.out.ents, outEntry{kind: entryRevoke, addrs: addrs})
}

// lookupLater queues a lookup of target at the rendezvous.
func (m *Manager) lookupLater(target SteamID, sid uint64) {
	m.out.ents = append(m.out.ents, outEntry{kind: entryLookup, target: target, sid: sid})
}

// openerLater queues b as s's opener to `to`; if it cannot be sent (no TTL
// control), s learns it once written (noOpeners) and probes in full.
func (m *Manager) openerLater(s *session, b []byte, to netip.AddrPort) {
	start := len(m.out.buf)
	m.out.buf = append(m.out.buf, b...)
	m.out.ents = append(m.out.ents, outEntry{kind: entryOpener, off: start, n: len(b), size: len(b), to: to, s: s})
}

// unlock releases the lock, first writing what the outbox holds unless
// another goroutine is writing already, which then writes it, or the
// writer goroutine may take it (Config.DeferWrites).
func (m *Manager) unlock() {
	if m.writing || len(m.out.ents) == 0 {
		m.mu.Unlock()
		return
	}
	if m.busy && m.cfg.DeferWrites {
		m.busy = false
		m.kick()
		m.mu.Unlock()
		return
	}
	m.drain(writerRounds)
}

// Output fires when the outbox holds something for the goroutine that
// calls WriteOutput (Config.DeferWrites).
func (m *Manager) Output() <-chan struct{} { return m.outReady }

// WriteOutput writes what the outbox holds, until it is empty.
func (m *Manager) WriteOutput() {
	m.mu.Lock()
	if m.writing || len(m.out.ents) == 0 {
		m.mu.Unlock()
		return
	}
	m.drain(writerRoundsOwner)
}

// writerRoundsOwner bounds the outboxes WriteOutput writes in one call;
// it then signals itself, so that its owner can see to Close.
const writerRoundsOwner = 64

func (m *Manager) kick() {
	ch := m.wake
	if m.cfg.DeferWrites {
		ch = m.outReady
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// drain writes outboxes, at most rounds of them, with the lock held on
// entry and released on return.
func (m *Manager) drain(rounds int) {
	m.writing = true
	m.busy = false
	for round := 1; ; round++ {
		out := m.out
		m.out, m.outSpare = m.outSpare, nil
		m.mu.Unlock()
		noOpeners := m.writeOut(out)
		out.reset()
		m.mu.Lock()
		m.readClock() // the write took time: what follows is a new step
		for _, s := range noOpeners {
			if !s.freed && !s.noOpeners {
				s.noOpeners = true // full probes at its next hello
				m.schedule(s)
			}
		}
		m.outSpare = out
		m.busy = false
		m.feedStarved()
		if len(m.out.ents) == 0 {
			m.writing = false
			m.mu.Unlock()
			return
		}
		if round == rounds {
			// Hand the rest on: to the writer goroutine, or to the timer
			// goroutine, for which Deadline answers at once while the
			// outbox holds something and nobody writes.
			m.writing = false
			m.kick()
			m.mu.Unlock()
			return
		}
	}
}

// feedStarved flushes the sessions that found the outbox full, now that a
// writer emptied one.
func (m *Manager) feedStarved() {
	if len(m.starved) == 0 {
		return
	}
	list := m.starved
	m.starved = m.starvedSpare[:0]
	for i, s := range list {
		list[i] = nil
		s.starved = false
		if !s.freed {
			m.flush(s)
			m.schedule(s)
		}
	}
	m.starvedSpare = list[:0]
}

// writeOut sends one outbox; the lock is not held. It returns the
// sessions whose openers could not be sent.
func (m *Manager) writeOut(o *outbox) (noOpeners []*session) {
	sw, _ := m.env.(SegmentWriter)
	for _, e := range o.ents {
		switch e.kind {
		case entryPermit:
			m.env.Permit(e.addrs)
			continue
		case entryRevoke:
			m.env.Revoke(e.addrs)
			continue
		case entryLookup:
			m.env.Lookup(e.target, e.sid)
			continue
		case entryOpener:
			if !m.env.WriteOpener(o.buf[e.off:e.off+e.n], e.to) {
				noOpeners = append(noOpeners, e.s)
			}
			continue
		}
		b := o.buf[e.off : e.off+e.n]
		switch {
		case e.relay:
			m.env.RelayTo(b, e.to)
		case e.n == e.size:
			m.env.WriteTo(b, e.to)
		case sw != nil:
			sw.WriteSegments(b, e.size, e.to)
		default:
			for len(b) > 0 {
				k := min(e.size, len(b))
				m.env.WriteTo(b[:k], e.to)
				b = b[k:]
			}
		}
	}
	return noOpeners
}

// outputPending reports whether the outbox waits for a writer and there is
// no writer goroutine; the timer goroutine is then due at once. The lock
// is held.
func (m *Manager) outputPending() bool {
	return !m.cfg.DeferWrites && !m.writing && (len(m.out.ents) > 0 || len(m.starved) > 0)
}

// pendingDeadline is what Deadline answers while output waits.
var pendingDeadline = time.Unix(0, 1)

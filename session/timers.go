package session

import (
	"time"
)

// timerEntry files a session in the timer heap. Entries are lazy: a
// session has at most one live entry, the one whose time equals its
// queued field; when its deadline moves later the entry stays and, once it
// surfaces, is refiled at the new time, so the per-packet path only pushes
// when a deadline moves earlier.
type timerEntry struct {
	at stamp
	s  *session
}

// deadlineHeap is a binary min-heap of entries, typed to avoid boxing.
type deadlineHeap []timerEntry

func (h *deadlineHeap) push(e timerEntry) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].at.Before(q[p].at) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *deadlineHeap) pop() timerEntry {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = timerEntry{}
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].at.Before(q[m].at) {
			m = l
		}
		if r < len(q) && q[r].at.Before(q[m].at) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

func (e timerEntry) live() bool { return !e.s.freed && e.s.queued == e.at }

// sessionDeadline is when s next needs attention.
func (m *Manager) sessionDeadline(s *session) stamp {
	var d stamp
	min := func(t stamp) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	switch s.phase {
	case phaseLookup, phaseConnecting:
		if s.localAccepted {
			min(s.started.Add(m.cfg.ConnectTimeout))
		} else {
			min(s.lastHeard.Add(m.cfg.ConnectTimeout))
			if !s.requested.IsZero() {
				min(s.requested.Add(m.cfg.RequestRepeat))
			}
		}
		if s.phase == phaseLookup || s.initiated && (!s.peerKnowsUs || !s.remoteAccepted) {
			min(s.nextLookup)
		}
		if s.pair != nil {
			min(s.nextHello)
		}
	case phaseEstablished:
		if s.path.relayed() || m.pathStale(s) {
			min(s.nextHello) // looking for a direct pair, or any working one
		}
		min(m.stampOf(s.engine.Deadline()))
		// Keepalives and timeouts have slack: they fall on a grid, so that
		// a process with thousands of quiet sessions wakes a few times a
		// second for all of them, not once for each, and the answers come
		// back together too.
		min(m.coarse(m.keepaliveDue(s)))
		min(m.coarse(s.lastHeard.Add(m.cfg.ConnectTimeout)))
		min(m.coarse(s.lastActivity.Add(m.cfg.IdleTimeout)))
	}
	return d
}

// keepaliveDue is when s next pings. The side with the lower SteamID keeps
// a quiet session alive: it pings once it has sent nothing for an
// interval. The other side's answers keep its own NAT mapping open, and it
// pings only once it has also heard nothing for an interval and a half, in
// case the first side went quiet. That is one ping and one answer per
// interval; were both sides to ping on their own clocks, they would often
// ping at once, and answer each other, twice the traffic.
func (m *Manager) keepaliveDue(s *session) stamp {
	k := m.cfg.KeepaliveInterval
	due := s.lastSent.Add(k)
	if m.cfg.SteamID > s.remote {
		if h := s.lastHeard.Add(k + k/2); h.After(due) {
			due = h
		}
	}
	return due
}

// coarse rounds t up to the timer grid: a fiftieth of the keepalive
// interval, at most 100 ms.
func (m *Manager) coarse(t stamp) stamp {
	g := stamp(m.cfg.KeepaliveInterval / 50)
	g = max(1, g)
	g = min(g, stamp(100*time.Millisecond))
	if r := t % g; r != 0 {
		t += g - r
	}
	return t
}

// schedule files s under its next deadline and wakes the timer loop when
// that is earlier than what it waits for.
func (m *Manager) schedule(s *session) {
	if s.freed {
		return
	}
	s.due = m.sessionDeadline(s)
	if s.due.IsZero() || !s.queued.IsZero() && !s.due.Before(s.queued) {
		return // the entry already filed surfaces in time
	}
	s.queued = s.due
	m.timers.push(timerEntry{s.due, s})
	if len(m.timers) > 2*m.tab.lru.Len()+64 {
		m.compactTimers()
	}
	if due := m.timeOf(s.due); m.armed.IsZero() || due.Before(m.armed) {
		m.armed = due
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) compactTimers() {
	old := m.timers
	m.timers = make(deadlineHeap, 0, len(old))
	for _, e := range old {
		if e.live() {
			m.timers.push(e)
		}
	}
}

// Deadline is when OnTimer must run next (zero: nothing scheduled). The
// caller sleeps until then or until Wake fires.
func (m *Manager) Deadline() time.Time {
	m.mu.Lock()
	defer m.unlock()
	if m.outputPending() {
		m.armed = pendingDeadline
		return m.armed
	}
	for len(m.timers) > 0 && !m.timers[0].live() {
		m.timers.pop()
	}
	m.armed = time.Time{}
	if len(m.timers) > 0 {
		m.armed = m.timeOf(m.timers[0].at)
	}
	if at := m.requestDeadline(); !at.IsZero() && (m.armed.IsZero() || at.Before(m.armed)) {
		m.armed = at
	}
	return m.armed
}

// Wake signals that a deadline earlier than the last Deadline appeared.
func (m *Manager) Wake() <-chan struct{} { return m.wake }

// OnTimer runs every session whose deadline has passed.
func (m *Manager) OnTimer() {
	m.lock()
	defer m.unlock()
	if m.closed {
		return
	}
	m.drainRequests()
	for len(m.timers) > 0 && !m.timers[0].at.After(m.at) {
		e := m.timers.pop()
		if !e.live() {
			continue
		}
		s := e.s
		s.queued = 0
		if s.due.After(m.at) {
			m.schedule(s) // the deadline moved later since this entry was filed
			continue
		}
		m.tick(s)
		m.schedule(s)
		if !s.freed && !s.due.After(m.at) {
			// tick must move every deadline it handles; if one did not,
			// looping here would hold the lock for good.
			s.queued = m.at.Add(time.Millisecond)
			m.timers.push(timerEntry{s.queued, s})
		}
	}
}

func (m *Manager) tick(s *session) {
	now := m.at
	switch s.phase {
	case phaseLookup, phaseConnecting:
		if s.localAccepted && !now.Before(s.started.Add(m.cfg.ConnectTimeout)) {
			m.fail(s, ErrorTimeout) // C35
			return
		}
		if !s.localAccepted && !now.Before(s.lastHeard.Add(m.cfg.ConnectTimeout)) {
			// The user stopped trying and we never accepted: forget them.
			m.remove(s)
			m.free(s, false, false)
			return
		}
		if !s.localAccepted && !s.requested.IsZero() && !now.Before(s.requested.Add(m.cfg.RequestRepeat)) {
			if now.Sub(s.lastHeard) < m.cfg.RequestRepeat {
				if !m.postRequest(s) { // C31: still trying, still not accepted
					s.requested = now // waiting its turn: no repeat until then
				}
			} else {
				s.requested = now // quiet lately: no repeat, but the next check is due later
			}
		}
		if (s.phase == phaseLookup || s.initiated && (!s.peerKnowsUs || !s.remoteAccepted)) && !now.Before(s.nextLookup) {
			m.lookup(s)
		}
		if s.pair != nil && !s.nextHello.IsZero() && !now.Before(s.nextHello) {
			m.sendHello(s, nil)
		}
	case phaseEstablished:
		if !now.Before(s.lastHeard.Add(m.cfg.ConnectTimeout)) {
			m.fail(s, ErrorTimeout) // C41
			return
		}
		if !now.Before(s.lastActivity.Add(m.cfg.IdleTimeout)) {
			m.remove(s) // C40: closed silently
			m.free(s, true, false)
			return
		}
		m.refreshPath(s)
		switch stale := m.pathStale(s); {
		case stale && !s.hunting:
			// The path went quiet or died (a NAT rebinding, a move, a
			// relay allocation replaced): probe every pair again, the
			// relay's too, and ask the rendezvous for the peer's
			// addresses as they are now.
			s.hunting = true
			s.helloWait = 0
			s.nextHello = now
			m.lookup(s)
		case !stale:
			s.hunting = false
		}
		if (s.path.relayed() || m.pathStale(s)) && !s.nextHello.IsZero() && !now.Before(s.nextHello) {
			m.sendHello(s, nil)
		}
		if d := s.engine.Deadline(); !d.IsZero() && !m.now.Before(d) {
			s.engine.OnTimer(m.now)
		}
		if !now.Before(m.keepaliveDue(s)) {
			s.engine.Ping()
		}
		m.flush(s)
		s.rates.observe(m.now, s.engine)
	}
}

package session

import (
	"container/heap"
	"time"
)

// timerEntry is a lazy heap entry: it is stale when the session's deadline
// has moved since it was pushed, and is then skipped when it surfaces.
type timerEntry struct {
	at time.Time
	s  *session
}

type deadlineHeap []timerEntry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return x
}

func (e timerEntry) stale() bool { return e.s.freed || !e.s.deadline.Equal(e.at) }

// sessionDeadline is when s next needs attention.
func (m *Manager) sessionDeadline(s *session) time.Time {
	var d time.Time
	min := func(t time.Time) {
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
		if s.phase == phaseLookup || s.initiated && !s.peerKnowsUs {
			min(s.nextLookup)
		}
		if s.pair != nil {
			min(s.nextHello)
		}
	case phaseEstablished:
		min(s.engine.Deadline())
		min(s.lastSent.Add(m.cfg.KeepaliveInterval))
		min(s.lastHeard.Add(m.cfg.ConnectTimeout))
		min(s.lastActivity.Add(m.cfg.IdleTimeout))
	}
	return d
}

// schedule files s under its next deadline and wakes the timer loop when
// that is earlier than what it waits for.
func (m *Manager) schedule(s *session) {
	if s.freed {
		return
	}
	d := m.sessionDeadline(s)
	if d.Equal(s.deadline) {
		return
	}
	s.deadline = d
	if d.IsZero() {
		return
	}
	heap.Push(&m.timers, timerEntry{d, s})
	if len(m.timers) > 2*m.table.Len()+64 {
		m.compactTimers()
	}
	if m.armed.IsZero() || d.Before(m.armed) {
		m.armed = d
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) compactTimers() {
	live := m.timers[:0]
	for _, e := range m.timers {
		if !e.stale() {
			live = append(live, e)
		}
	}
	for i := len(live); i < len(m.timers); i++ {
		m.timers[i] = timerEntry{}
	}
	m.timers = live
	heap.Init(&m.timers)
}

// Deadline is when OnTimer must run next (zero: nothing scheduled). The
// caller sleeps until then or until Wake fires.
func (m *Manager) Deadline() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.timers) > 0 && m.timers[0].stale() {
		heap.Pop(&m.timers)
	}
	m.armed = time.Time{}
	if len(m.timers) > 0 {
		m.armed = m.timers[0].at
	}
	return m.armed
}

// Wake signals that a deadline earlier than the last Deadline appeared.
func (m *Manager) Wake() <-chan struct{} { return m.wake }

// OnTimer runs every session whose deadline has passed.
func (m *Manager) OnTimer(now time.Time) {
	m.lock(now)
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	for len(m.timers) > 0 && !m.timers[0].at.After(now) {
		e := heap.Pop(&m.timers).(timerEntry)
		if e.stale() {
			continue
		}
		e.s.deadline = time.Time{}
		m.tick(e.s)
		m.schedule(e.s)
	}
}

func (m *Manager) tick(s *session) {
	now := m.now
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
		if !s.localAccepted && !s.requested.IsZero() && !now.Before(s.requested.Add(m.cfg.RequestRepeat)) &&
			now.Sub(s.lastHeard) < m.cfg.RequestRepeat {
			m.postRequest(s) // C31: still trying, still not accepted
		}
		if (s.phase == phaseLookup || s.initiated && !s.peerKnowsUs) && !now.Before(s.nextLookup) {
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
		if d := s.engine.Deadline(); !d.IsZero() && !now.Before(d) {
			s.engine.OnTimer(now)
		}
		if !now.Before(s.lastSent.Add(m.cfg.KeepaliveInterval)) {
			s.engine.Ping()
		}
		m.flush(s)
	}
}

package session

import (
	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/bufpool"
)

func (m *Manager) push(ch int, p inPacket) {
	q := m.queues[ch]
	if q == nil {
		q = m.newQueue()
		m.queues[ch] = q
	}
	q.push(p)
	m.signal(ch)
}

// signal wakes one goroutine waiting on channel ch, or the next to wait.
func (m *Manager) signal(ch int) {
	if w, ok := m.waiters[ch]; ok {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Peek reports the size of the next packet on channel (C20).
func (m *Manager) Peek(channel int) (int, bool) {
	m.mu.Lock()
	defer m.unlock()
	q := m.queues[channel]
	if q == nil || q.len() == 0 {
		return 0, false
	}
	return len(q.front().data), true
}

// Read pops the next packet on channel; the whole message is returned and
// the caller decides about truncation (C21, C22).
func (m *Manager) Read(channel int) (data []byte, remote SteamID, ok bool) {
	m.lock()
	defer m.unlock()
	p, ok := m.pop(channel)
	return p.data, p.remote, ok
}

// ReadInto pops the next packet on channel into dest, as much of it as
// fits, and reports the packet's size. Unlike Read it recycles the
// packet's buffer: nobody but dest ever sees it.
func (m *Manager) ReadInto(dest []byte, channel int) (n, size int, remote SteamID, ok bool) {
	m.lock()
	defer m.unlock()
	p, ok := m.pop(channel)
	if !ok {
		return 0, 0, 0, false
	}
	n = copy(dest, p.data)
	bufpool.Put(p.data)
	return n, len(p.data), p.remote, true
}

// pop takes the next packet on channel off its queue and returns its share
// of the sender's window. A reader that leaves packets behind passes the
// wake-up on, for another waiter.
func (m *Manager) pop(channel int) (inPacket, bool) {
	q := m.queues[channel]
	if q == nil || q.len() == 0 {
		return inPacket{}, false
	}
	p := q.pop()
	if q.len() == 0 {
		m.dropQueue(channel, q)
	} else {
		m.signal(channel)
	}
	m.consumed(p)
	return p, true
}

// consumed returns a packet's share of its sender's receive window.
func (m *Manager) consumed(p inPacket) {
	if s := p.owner; s == nil {
		m.selfUnread -= len(p.data)
	} else if !s.freed && s.engine != nil && s.engine == p.engine {
		s.engine.Consumed(channels.Cost(len(p.data)))
		m.flush(s) // a reopened window may be worth an ACK
		m.schedule(s)
	}
}

// Wait returns a channel that receives a value when a packet arrives on
// channel, and is closed when the Manager closes. Take the channel, then
// check with Peek or Read, then wait: a packet that arrives in between
// leaves its value in the channel. A wake-up may find nothing to read
// (another goroutine took the packet); a reader that leaves packets behind
// passes the wake-up on. The channel is the same on every call, so
// waiting allocates nothing.
func (m *Manager) Wait(channel int) <-chan struct{} {
	w, _ := m.WaitOpen(channel)
	return w
}

// WaitOpen is Wait, and also reports false once the Manager is shut down:
// the channel it returns is then closed for good, and waiting on it in a
// loop would spin.
func (m *Manager) WaitOpen(channel int) (<-chan struct{}, bool) {
	m.mu.Lock()
	defer m.unlock()
	if m.closed {
		return closedChan, false
	}
	w, ok := m.waiters[channel]
	if !ok {
		w = make(chan struct{}, 1)
		m.waiters[channel] = w
	}
	return w, true
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Shutdown closes every session (telling peers, best effort) and wakes all
// waiters; later calls answer as closed.
func (m *Manager) Shutdown() {
	m.lock()
	defer m.unlock()
	if m.closed {
		return
	}
	for _, s := range m.table.Values() {
		m.free(s, true, false)
	}
	m.removing = true
	m.table.Purge()
	m.removing = false
	m.closed = true
	for ch, w := range m.waiters {
		close(w)
		delete(m.waiters, ch)
	}
}

// Closed reports whether Shutdown ran.
func (m *Manager) Closed() bool {
	m.mu.Lock()
	defer m.unlock()
	return m.closed
}

// Len is the number of sessions in the table.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.unlock()
	return m.table.Len()
}

// Empty queues are kept aside for reuse rather than in the map, so that a
// channel that empties and fills on every packet allocates nothing, while
// a peer cycling through many channels cannot grow the map.
const spareQueues = 64

func (m *Manager) newQueue() *recvQueue {
	if n := len(m.spare); n > 0 {
		q := m.spare[n-1]
		m.spare = m.spare[:n-1]
		return q
	}
	return &recvQueue{}
}

func (m *Manager) dropQueue(ch int, q *recvQueue) {
	delete(m.queues, ch)
	if len(m.spare) < spareQueues && cap(q.items) <= 1024 {
		q.items, q.head = q.items[:0], 0
		m.spare = append(m.spare, q)
	}
}

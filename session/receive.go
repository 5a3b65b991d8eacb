package session

import (
	"sync"

	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/bufpool"
)

// inbox holds the receive queues, one per channel, under a lock of their
// own. The game reads on its own thread, every frame (ReadP2PPacket,
// IsP2PPacketAvailable): with this lock alone it does not wait while the
// Manager handles packets for every session, and the Manager does not
// wait for it. Lock order: Manager.mu, then inbox.mu, never the other way.
type inbox struct {
	mu      sync.Mutex
	queues  map[int]*recvQueue
	spare   []*recvQueue // empty queues for reuse (see newQueue)
	waiters map[int]chan struct{}
	closed  bool
	// selfUnread is what we sent ourselves that the game has not read.
	selfUnread int
}

// settleAt is how much window a session's reads may owe before the
// reader returns it to the engine itself, under the Manager's lock: below
// it the Manager takes it up at its next flush of the session. The engine
// acknowledges a reopened window only every quarter of it (1 MiB by
// default), so a sender never waits on the debt.
const settleAt = 64 << 10

func (b *inbox) init() {
	b.queues = make(map[int]*recvQueue)
	b.waiters = make(map[int]chan struct{})
}

// push appends p to channel ch's queue; the Manager's lock is held.
func (m *Manager) push(ch int, p inPacket) {
	m.in.mu.Lock()
	m.in.pushLocked(ch, p)
	m.in.mu.Unlock()
}

// pushLocked is push with the inbox's lock held.
func (b *inbox) pushLocked(ch int, p inPacket) {
	q := b.queues[ch]
	if q == nil {
		q = b.newQueue()
		b.queues[ch] = q
	}
	q.push(p)
	b.signal(ch)
}

// signal wakes one goroutine waiting on channel ch, or the next to wait.
func (b *inbox) signal(ch int) {
	if w, ok := b.waiters[ch]; ok {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Peek reports the size of the next packet on channel (C20).
func (m *Manager) Peek(channel int) (int, bool) {
	b := &m.in
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[channel]
	if q == nil || q.len() == 0 {
		return 0, false
	}
	return len(q.front().data), true
}

// Read pops the next packet on channel; the whole message is returned and
// the caller decides about truncation (C21, C22).
func (m *Manager) Read(channel int) (data []byte, remote SteamID, ok bool) {
	p, ok := m.pop(channel)
	return p.data, p.remote, ok
}

// ReadInto pops the next packet on channel into dest, as much of it as
// fits, and reports the packet's size. Unlike Read it recycles the
// packet's buffer: nobody but dest ever sees it.
func (m *Manager) ReadInto(dest []byte, channel int) (n, size int, remote SteamID, ok bool) {
	p, ok := m.pop(channel)
	if !ok {
		return 0, 0, 0, false
	}
	n = copy(dest, p.data)
	bufpool.Put(p.data)
	return n, len(p.data), p.remote, true
}

// pop takes the next packet on channel off its queue, with the inbox's
// lock only, and returns its share of the sender's window. A reader that
// leaves packets behind passes the wake-up on, for another waiter.
func (m *Manager) pop(channel int) (inPacket, bool) {
	b := &m.in
	b.mu.Lock()
	q := b.queues[channel]
	if q == nil || q.len() == 0 {
		b.mu.Unlock()
		return inPacket{}, false
	}
	p := q.pop()
	if q.len() == 0 {
		b.dropQueue(channel, q)
	} else {
		b.signal(channel)
	}
	if p.owner == nil {
		b.selfUnread -= len(p.data)
	}
	b.mu.Unlock()
	if p.owe() >= settleAt {
		m.lock()
		if s := p.owner; !s.freed {
			m.flush(s) // settles the debt; a reopened window may be worth an ACK
			m.schedule(s)
		}
		m.unlock()
	}
	return p, true
}

// owe adds p's share of its sender's window to what the game's reads owe
// that engine, and returns the debt: 0 for a packet no engine waits for
// (our own, or one whose engine was replaced since).
func (p inPacket) owe() int64 {
	s := p.owner
	if s == nil || s.liveEngine.Load() != p.engine {
		return 0
	}
	return s.owed.Add(int64(channels.Cost(len(p.data))))
}

// settle returns to s's engine the window its reads owe; the Manager's
// lock is held.
func (m *Manager) settle(s *session) {
	if c := s.owed.Swap(0); c > 0 && s.engine != nil {
		s.engine.Consumed(int(c))
	}
}

// setEngine makes e the engine of s (nil: none); the Manager's lock is
// held. Reads check it without that lock (see pop).
func (s *session) setEngine(e *channels.Engine) {
	s.engine = e
	s.owed.Store(0)
	s.liveEngine.Store(e)
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
	b := &m.in
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedChan, false
	}
	w, ok := b.waiters[channel]
	if !ok {
		w = make(chan struct{}, 1)
		b.waiters[channel] = w
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
	for _, s := range m.tab.lru.Values() {
		m.free(s, true, false)
	}
	m.tab.removing = true
	m.tab.lru.Purge()
	m.tab.removing = false
	m.closed = true
	b := &m.in
	b.mu.Lock()
	b.closed = true
	for ch, w := range b.waiters {
		close(w)
		delete(b.waiters, ch)
	}
	b.mu.Unlock()
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
	return m.tab.lru.Len()
}

// pushSelf loops a message back into our own receive queue (C05), unless
// what the game has not read of those is over the send buffer's cap.
func (m *Manager) pushSelf(data []byte, channel int) error {
	b := &m.in
	b.mu.Lock()
	defer b.mu.Unlock()
	unread := b.selfUnread
	if unread > 0 && unread+len(data) > m.cfg.Engine.SendBufferSize && unread+len(data) > 1<<20 {
		return channels.ErrSendBufferFull
	}
	b.selfUnread += len(data)
	b.pushLocked(channel, inPacket{remote: m.cfg.SteamID, data: append([]byte(nil), data...)})
	return nil
}

// dropUnread drops what remote sent us that the game has not read, on
// one channel or all; the Manager's lock is held. Dropped unread is read
// as far as the sender's window goes.
func (m *Manager) dropUnread(remote SteamID, channel int, oneChannel bool) {
	var dropped []inPacket
	b := &m.in
	b.mu.Lock()
	for ch, q := range b.queues {
		if oneChannel && ch != channel {
			continue
		}
		dropped = append(dropped, q.removeIf(func(p *inPacket) bool { return p.remote == remote })...)
		if q.len() == 0 {
			b.dropQueue(ch, q)
		}
	}
	if remote == m.cfg.SteamID {
		for _, p := range dropped {
			b.selfUnread -= len(p.data)
		}
	}
	b.mu.Unlock()
	// The packets are one user's: their window goes back as a read's does,
	// and the one live session among their owners settles it at once.
	var owner *session
	for _, p := range dropped {
		if p.owe() > 0 {
			owner = p.owner
		}
		bufpool.Put(p.data)
	}
	if owner != nil && !owner.freed {
		m.flush(owner)
		m.schedule(owner)
	}
}

// Empty queues are kept aside for reuse rather than in the map, so that a
// channel that empties and fills on every packet allocates nothing, while
// a peer cycling through many channels cannot grow the map.
const spareQueues = 64

func (b *inbox) newQueue() *recvQueue {
	if n := len(b.spare); n > 0 {
		q := b.spare[n-1]
		b.spare = b.spare[:n-1]
		return q
	}
	return &recvQueue{}
}

func (b *inbox) dropQueue(ch int, q *recvQueue) {
	delete(b.queues, ch)
	if len(b.spare) < spareQueues && cap(q.items) <= 1024 {
		q.items, q.head = q.items[:0], 0
		b.spare = append(b.spare, q)
	}
}

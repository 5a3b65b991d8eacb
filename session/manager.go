package session

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/p2pcompat/p2pcompat/callbacks"
	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/bufpool"
	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
	"github.com/p2pcompat/p2pcompat/internal/seal"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// ErrInvalidSteamID is the typed error for SteamID 0 (C03).
var ErrInvalidSteamID = errors.New("session: invalid SteamID")

// Env is what the Manager needs from the outside world. WriteTo, RelayTo,
// Permit, Revoke (and WriteSegments, for a SegmentWriter) carry out the
// Manager's output: they are called without its lock, by one goroutine at
// a time, in the order the Manager made them (see outbox.go). The others
// are called with the lock held. None may block for long or call back into
// the Manager.
type Env interface {
	// WriteTo sends one datagram on the shared socket; b is reused after
	// the call returns.
	WriteTo(b []byte, to netip.AddrPort)
	// WriteOpener sends b with a TTL just high enough to leave our own
	// NAT and too low to reach the peer's. It creates our NAT's mapping
	// toward the peer before the peer's first probe reaches our NAT: a
	// Linux NAT that saw that probe first would give our own probes a
	// different port, which the peer's NAT then filters. Where the TTL
	// cannot be set it sends nothing and returns false.
	WriteOpener(b []byte, to netip.AddrPort) bool
	// RelayTo sends b to the peer address through our TURN allocation;
	// false if we have none.
	RelayTo(b []byte, to netip.AddrPort) bool
	// HasRelay reports whether we have a TURN allocation.
	HasRelay() bool
	// RelayServer is the address of our TURN server (zero: none).
	RelayServer() netip.AddrPort
	// Permit lets the given peer addresses reach our relayed address;
	// Revoke withdraws that.
	Permit(addrs []netip.AddrPort)
	Revoke(addrs []netip.AddrPort)
	// Lookup asks the rendezvous for target and has it forward our offer
	// carrying sessionID; the answer comes back through OnLookup.
	Lookup(target SteamID, sessionID uint64)
}

// SegmentWriter is an Env that can send a run of datagrams to one address
// in one call, as UDP segmentation offload does: b holds them back to
// back, each size bytes long but the last, which may be shorter. A bulk
// transfer then costs one system call per few dozen packets instead of
// one per packet. It is called like Env.WriteTo.
type SegmentWriter interface {
	WriteSegments(b []byte, size int, to netip.AddrPort)
}

// Inbound is one peer datagram for HandlePackets.
type Inbound struct {
	B        []byte
	From     netip.AddrPort
	ViaRelay bool // read from our TURN allocation
}

type phase uint8

const (
	phaseLookup      phase = iota // waiting for the rendezvous to answer
	phaseConnecting               // keys known; hellos out; maybe waiting for an accept
	phaseEstablished              // both accepted, both know both session IDs
	phaseFailed                   // failed; kept so that C36 can hold until Close
)

var phaseNames = [...]string{"lookup", "connecting", "established", "failed"}

func (p phase) String() string { return phaseNames[p] }

// session is the state of our relation with one remote user.
type session struct {
	remote   SteamID
	phase    phase
	freed    bool
	localID  uint64 // the ID our peer puts in data packets to us
	remoteID uint64 // the ID we put in data packets to the peer; 0 until known

	peerPub    [32]byte
	pair       *seal.PairKey
	keys       *seal.SessionKeys
	replay     seal.ReplayWindow
	candidates []candidate
	pairs      []pair
	path       pair     // the pair data goes on; invalid until one answered
	allowRelay bool     // AllowP2PPacketRelay as it was when this attempt began
	tokenKey   [16]byte // makes the probe tokens of this session (see token)
	noOpeners  bool     // openers cannot be sent here (see probe)
	hunting    bool     // the path went stale: probing every pair for a new one
	challenged stamp    // last probe to an unproven address data came from
	peerOpened bool     // the peer has opened its NAT toward us (see probe)
	directAt   stamp    // full probes to the peer's public addresses from then on, regardless
	largestPN  uint64   // newest data packet: its pair is followed
	engine     *channels.Engine

	localAccepted  bool // we accepted, by Accept or by sending (C32, C33)
	remoteAccepted bool // the peer said it accepts us
	peerKnowsUs    bool // the peer has shown it knows localID
	initiated      bool // we started it by sending

	created      stamp // when the table entry was made (Snapshot's Age)
	started      stamp // start of this connect attempt
	lastHeard    stamp // last authenticated packet or offer
	lastSent     stamp
	lastActivity stamp // last application data either way (C40)
	nextHello    stamp
	helloWait    time.Duration
	nextLookup   stamp
	lookupWait   time.Duration
	requested    stamp            // when the last P2PSessionRequest was posted
	reqTicket    callbacks.Ticket // that request, while the game may not have had it
	recvBytes    int              // of authenticated packets from the peer, for the amplification bound (see emitBounded)

	failNotified bool // C36: one ConnectFail until Close
	lastError    SessionError
	channels     chanSet
	broken       bool   // the peer opened more channels than MaxChannels
	answered     pair   // where we last answered a stranger's probe
	relayTouched bool   // permitted, or relayed to: revoke at the end
	pending      bool   // counted in sessionTable.pending: unaccepted, from a stranger
	pendingGen   uint64 // counts its pending spells (sessionTable.pendingOrder)
	dirty        bool   // in Manager.dirty: to flush when the batch in hand ends
	starved      bool   // in Manager.starved: to flush when the outbox has room
	due          stamp  // when the session next needs attention
	queued       stamp  // the earliest timer-heap entry for it; zero if none

	rates rateWindow // byte counter samples for Snapshot's rates

	// The game's reads, made without the Manager's lock, owe the engine
	// the window of what they took (see inbox); liveEngine is engine as
	// they may read it.
	owed       atomic.Int64
	liveEngine atomic.Pointer[channels.Engine]
}

// sessionTable is who we have sessions with: the LRU of sessions by user
// (C42), their IDs, the users the game accepted before they came, and the
// quota of users it has not accepted. The Manager's lock guards it.
type sessionTable struct {
	lru        *simplelru.LRU[SteamID, *session]
	removing   bool // an explicit Remove, not a capacity eviction
	pending    int  // sessions of users we have not accepted
	maxPending int
	// pendingOrder holds the sessions counted in pending, oldest first
	// (and stale entries, skipped and compacted away): when strangers fill
	// their quota, the oldest makes room for the newest, so that a flood
	// of strangers cannot keep a friend's first request from the game.
	pendingOrder []pendingEntry
	// pairKeys keeps the pair keys of sessions ended lately, so that a
	// stranger whose session made room for another and who comes back
	// costs no second X25519: under a flood of strangers the churn is
	// otherwise all key agreements, and starves everything else.
	pairKeys    *simplelru.LRU[pairKeyID, *seal.PairKey]
	byID        map[uint64]*session
	nextID      uint64
	preAccepted map[SteamID]struct{}
}

// requestGate paces strangers' P2PSessionRequests to the game at
// Config.RequestRate (a token bucket: tokens at refilled). The users over
// it wait in stack, newest last (waiting says who is in it, at most
// maxWaiting), and are posted newest first as tokens come: a friend who
// turns up in the middle of a flood is the newest, and is not queued
// behind a thousand strangers. posted remembers, for users whose sessions
// were evicted for other strangers, when the game was handed their
// request. The Manager's lock guards it.
type requestGate struct {
	tokens     float64
	refilled   time.Time
	stack      []SteamID
	waiting    map[SteamID]struct{}
	idle       bool // see requestDeadline
	maxWaiting int
	posted     *simplelru.LRU[SteamID, stamp]
}

// Manager is the session table and everything hanging off it for one
// Networking. All methods are safe for concurrent use.
type Manager struct {
	mu     sync.Mutex
	cfg    Config
	env    Env
	cb     *callbacks.Queue
	keys   seal.KeyPair
	now    time.Time // time of the step in progress
	at     stamp     // now as a stamp
	epoch  time.Time // stamp zero
	closed bool

	tab        sessionTable
	req        requestGate
	allowRelay bool

	in inbox // the receive queues, under their own lock

	timers deadlineHeap
	armed  time.Time
	wake   chan struct{}

	pbuf, obuf, rbuf []byte

	// While a batch of received datagrams is handled, sessions are only
	// marked for flushing, and flushed once at its end: one ACK answers
	// the whole batch, and what the ACKs free is sent in one run.
	batching bool
	dirty    []*session

	// What is to be sent, and the state of its writing (see outbox.go).
	out, outSpare         *outbox
	writing               bool // a goroutine is writing an outbox
	busy                  bool // data was flushed on a busy path: the writer may take it
	outReady              chan struct{}
	starved, starvedSpare []*session
}

// NewManager returns a Manager for the local user in cfg, writing through
// env and posting callbacks to cb. It refuses a cfg with a field out of
// range, with a *ConfigError.
func NewManager(cfg Config, env Env, cb *callbacks.Queue) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	keys, err := keyPair(cfg.PrivateKey)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	m := &Manager{
		cfg:  cfg,
		env:  env,
		cb:   cb,
		keys: keys,
		tab: sessionTable{
			byID:        make(map[uint64]*session),
			nextID:      binary.BigEndian.Uint64(seed[:])>>2 | 1,
			preAccepted: make(map[SteamID]struct{}),
		},
		wake:       make(chan struct{}, 1),
		allowRelay: true,
		pbuf:       make([]byte, 2048),
		obuf:       make([]byte, 0, 2048),
		rbuf:       make([]byte, 0, 2048),
	}
	// A second before now, so that no step's stamp is zero.
	m.epoch = cfg.Clock().Add(-time.Second)
	m.in.init()
	m.out, m.outSpare = new(outbox), new(outbox)
	m.outReady = make(chan struct{}, 1)
	m.tab.lru, _ = simplelru.NewLRU[SteamID, *session](cfg.MaxSessions, m.onEvict)
	// Users we have not accepted get at most a quarter of the table, so
	// that strangers can never crowd out the sessions a game chose.
	m.tab.maxPending = max(1, cfg.MaxSessions/4)
	m.tab.pairKeys, _ = simplelru.NewLRU[pairKeyID, *seal.PairKey](max(64, cfg.MaxSessions), nil)
	m.req.posted, _ = simplelru.NewLRU[SteamID, stamp](max(64, cfg.MaxSessions), nil)
	m.req.waiting = make(map[SteamID]struct{})
	m.req.maxWaiting = max(64, cfg.MaxSessions/2)
	return m, nil
}

// keyPair is the identity key pair of priv, or a new one if priv is zero.
func keyPair(priv [32]byte) (seal.KeyPair, error) {
	if priv == ([32]byte{}) {
		return seal.GenerateKeyPair()
	}
	kp, err := seal.KeyPairFromPrivate(priv)
	if err != nil {
		return kp, cfgerr.New("session.Config", "PrivateKey", err.Error())
	}
	return kp, nil
}

// PublicKey is the public half of the local user's identity key, which
// the rendezvous hands to peers that look the user up.
func (m *Manager) PublicKey() [32]byte { return m.keys.Public }

// lock takes the lock and starts a step: the time of everything done
// under it is read from the clock here, once.
func (m *Manager) lock() {
	m.mu.Lock()
	m.readClock()
}

// readClock reads the clock, with the lock held. A clock that steps back is
// held at the latest time it gave: timers and the engines' RTT samples
// take time as never going backwards.
func (m *Manager) readClock() {
	if t := m.cfg.Clock(); t.After(m.now) {
		m.now, m.at = t, m.stampOf(t)
	}
}

// onEvict runs inside the LRU when it drops a session. Capacity evictions
// close the session as C38 does (C42); explicit removals did their own work.
func (m *Manager) onEvict(_ SteamID, s *session) {
	if !m.tab.removing {
		m.free(s, true, true)
	}
}

func (m *Manager) remove(s *session) {
	m.tab.removing = true
	m.tab.lru.Remove(s.remote)
	m.tab.removing = false
}

// stranger reports a session with a user the game has neither accepted,
// pre-accepted nor sent to: toward them we send nothing but answers.
func (s *session) stranger() bool { return !s.localAccepted && !s.initiated }

// newSession makes the table entry for remote; the LRU may evict another.
func (m *Manager) newSession(remote SteamID) *session {
	s := &session{remote: remote, created: m.at, started: m.at, lastHeard: m.at, allowRelay: m.allowRelay}
	_, _ = rand.Read(s.tokenKey[:])
	m.assignID(s)
	m.tab.lru.Add(remote, s)
	m.applyPreAccept(s)
	return s
}

// applyPreAccept accepts s if the game accepted its user beforehand, and
// counts it as pending otherwise.
func (m *Manager) applyPreAccept(s *session) {
	if _, ok := m.tab.preAccepted[s.remote]; ok {
		delete(m.tab.preAccepted, s.remote)
		m.accept(s)
	}
	m.setPending(s, !s.localAccepted)
}

func (m *Manager) setPending(s *session, p bool) {
	if s.pending == p {
		return
	}
	s.pending = p
	if p {
		m.tab.pending++
		if len(m.tab.pendingOrder) >= 2*m.tab.maxPending+16 {
			kept := m.tab.pendingOrder[:0]
			for _, o := range m.tab.pendingOrder {
				if o.s.pending && o.s.pendingGen == o.gen {
					kept = append(kept, o)
				}
			}
			clear(m.tab.pendingOrder[len(kept):])
			m.tab.pendingOrder = kept
		}
		s.pendingGen++
		m.tab.pendingOrder = append(m.tab.pendingOrder, pendingEntry{s, s.pendingGen})
	} else {
		m.tab.pending--
	}
}

// evictOldestStranger closes the oldest session of a user we have not
// accepted, silently: nothing is sent toward a stranger. It reports
// whether there was one.
func (m *Manager) evictOldestStranger() bool {
	for len(m.tab.pendingOrder) > 0 {
		e := m.tab.pendingOrder[0]
		m.tab.pendingOrder[0] = pendingEntry{}
		m.tab.pendingOrder = m.tab.pendingOrder[1:]
		s := e.s
		if !s.pending || s.freed || s.pendingGen != e.gen {
			continue
		}
		if !s.requested.IsZero() {
			// Made room for another, not ended: when this user's next
			// offer makes its session again, the game has heard of it
			// already (unless free finds the request undispatched).
			m.req.posted.Add(s.remote, s.requested)
		}
		m.remove(s)
		m.free(s, false, true)
		return true
	}
	return false
}

// roomForStranger reports whether a session for a user we have not
// accepted may be made. Strangers compete only with strangers: past the
// pending cap the oldest stranger makes room, and no accepted session is
// ever evicted for one.
func (m *Manager) roomForStranger(remote SteamID) bool {
	if _, ok := m.tab.preAccepted[remote]; ok {
		return true
	}
	if m.tab.pending >= m.tab.maxPending && !m.evictOldestStranger() {
		return false
	}
	if m.tab.lru.Len() >= m.cfg.MaxSessions && !(m.tab.pending > 0 && m.evictOldestStranger()) {
		return false
	}
	return true
}

// assignID gives s a fresh local ID. IDs only grow, so a peer can tell a
// newer session of ours from a delayed packet of an older one.
func (m *Manager) assignID(s *session) {
	if s.localID != 0 {
		delete(m.tab.byID, s.localID)
	}
	m.tab.nextID++
	s.localID = m.tab.nextID
	m.tab.byID[s.localID] = s
	s.replay = seal.ReplayWindow{}
	s.keys = nil
}

func (m *Manager) newEngine(s *session) {
	var e *channels.Engine // named before New: the callback tags packets with it
	e, err := channels.New(m.cfg.Engine, m.now, func(ch int, data []byte) {
		if !s.channels.has(ch) {
			if s.broken || s.channels.len() >= m.cfg.MaxChannels {
				s.broken = true // closed once the packet is handled
				bufpool.Put(data)
				return
			}
		}
		s.channels.add(ch)
		s.lastActivity = m.at
		// Only messages make a session recently used (C42): ACKs and
		// keepalives would keep every session in the table fresh.
		m.tab.lru.Get(s.remote)
		m.push(ch, inPacket{remote: s.remote, data: data, owner: s, engine: e})
	})
	if err != nil {
		panic(err) // cfg.Engine passed validate in NewManager
	}
	s.setEngine(e)
}

func (m *Manager) accept(s *session) {
	if s.localAccepted {
		return
	}
	s.localAccepted = true
	m.setPending(s, false)
	m.permit(s)
	if !s.initiated {
		s.started = m.at // the connect timeout runs from the accept
	}
	if s.engine == nil {
		m.newEngine(s)
	}
}

// Send queues data for remote, starting a session if there is none (C01).
func (m *Manager) Send(remote SteamID, data []byte, st SendType, channel int) error {
	if remote == 0 {
		return ErrInvalidSteamID
	}
	if err := channels.Validate(data, st, channel); err != nil {
		return err
	}
	m.lock()
	defer m.unlock()
	if m.closed {
		return net.ErrClosed
	}
	if remote == m.cfg.SteamID {
		return m.pushSelf(data, channel)
	}
	s, ok := m.tab.lru.Get(remote)
	if !ok {
		s = m.newSession(remote)
		s.initiated = true
		s.phase = phaseLookup
	} else if s.phase == phaseFailed {
		m.restart(s) // C35: a later send retries from scratch
	}
	if !s.localAccepted {
		m.accept(s)
		m.cb.Cancel(s.reqTicket) // C33
		if s.phase == phaseConnecting && s.pair != nil {
			m.sendHello(s, nil)
		}
	}
	if err := s.engine.Send(data, st, channel, m.now); err != nil {
		return err
	}
	s.channels.add(channel)
	s.lastActivity = m.at
	if s.phase == phaseLookup && s.nextLookup.IsZero() {
		m.lookup(s)
	}
	m.flush(s)
	m.schedule(s)
	return nil
}

// restart revives a failed session for a new attempt by us.
func (m *Manager) restart(s *session) {
	m.resetAttempt(s)
	s.phase = phaseLookup
	s.initiated = true
}

// resetAttempt clears everything of a failed attempt but the user, the
// peer's key and the C36 flag.
func (m *Manager) resetAttempt(s *session) {
	m.assignID(s)
	s.started, s.lastHeard = m.at, m.at
	s.remoteID, s.peerKnowsUs, s.remoteAccepted, s.localAccepted = 0, false, false, false
	s.path, s.pairs, s.candidates, s.answered = pair{}, nil, nil, pair{}
	s.peerOpened, s.directAt, s.largestPN = false, 0, 0
	s.allowRelay = m.allowRelay // C51: a new attempt takes the current setting
	s.nextLookup, s.lookupWait, s.nextHello, s.helloWait = 0, 0, 0, 0
	s.requested = 0
	s.lastError = ErrorNone
	s.setEngine(nil)
}

func (m *Manager) lookup(s *session) {
	m.lookupLater(s.remote, s.localID)
	if s.lookupWait == 0 {
		s.lookupWait = lookupMin
	} else if s.lookupWait < lookupMax {
		s.lookupWait *= 2
	}
	s.nextLookup = m.at.Add(s.lookupWait)
}

// Accept accepts remote's session, or pre-accepts a user we have not heard
// from (C32).
func (m *Manager) Accept(remote SteamID) bool {
	if remote == 0 {
		return false
	}
	m.lock()
	defer m.unlock()
	if m.closed || remote == m.cfg.SteamID {
		return true
	}
	s, ok := m.tab.lru.Get(remote)
	if !ok || s.phase == phaseFailed {
		if len(m.tab.preAccepted) < m.cfg.MaxSessions {
			m.tab.preAccepted[remote] = struct{}{}
		}
		return true
	}
	if !s.localAccepted {
		m.accept(s)
		if s.pair != nil {
			m.sendHello(s, nil)
		}
		m.maybeEstablish(s)
		m.schedule(s)
	}
	return true
}

// Close ends the session with remote (C38); false if there is none.
func (m *Manager) Close(remote SteamID) bool {
	m.lock()
	defer m.unlock()
	delete(m.tab.preAccepted, remote)
	s, ok := m.tab.lru.Peek(remote)
	if !ok {
		return false
	}
	m.remove(s)
	m.free(s, true, true)
	return true
}

// CloseChannel drops what waits on one channel from remote (C39).
func (m *Manager) CloseChannel(remote SteamID, channel int) bool {
	m.lock()
	defer m.unlock()
	s, ok := m.tab.lru.Peek(remote)
	if !ok {
		return false
	}
	if !s.channels.has(channel) {
		return false
	}
	s.channels.remove(channel)
	m.dropUnread(remote, channel, true)
	if s.channels.len() == 0 {
		m.remove(s)
		m.free(s, true, true)
	}
	return true
}

// free tears s down: tells the peer (best effort), forgets its IDs and,
// for a local close, drops what it sent us that the game has not read.
func (m *Manager) free(s *session, notify, dropUnread bool) {
	if s.freed {
		return
	}
	if notify && s.pair != nil && s.remoteID != 0 {
		body := hsBody{typ: hsClose, src: s.localID, dst: s.remoteID}
		m.writeHandshake(s, body, nil)
	}
	m.revoke(s)
	if s.pair != nil {
		// For a user who comes back (see sessionTable.pairKeys); a live
		// session holds its own.
		m.tab.pairKeys.Add(pairKeyID{s.remote, s.peerPub}, s.pair)
	}
	s.freed = true
	s.setEngine(nil)
	m.setPending(s, false)
	delete(m.tab.byID, s.localID)
	if dropUnread {
		m.dropUnread(s.remote, 0, false)
	}
	if m.cb.Cancel(s.reqTicket) {
		// The game never saw it: a session made again asks again.
		m.req.posted.Remove(s.remote)
	}
}

// fail ends a connect attempt or a dead session with err (C35, C41).
func (m *Manager) fail(s *session, err SessionError) {
	if s.pair != nil && s.remoteID != 0 {
		// Tell the peer, so that it does not hold on to half a session.
		m.writeHandshake(s, hsBody{typ: hsClose, src: s.localID, dst: s.remoteID}, nil)
	}
	m.revoke(s)
	s.phase = phaseFailed
	s.lastError = err
	s.setEngine(nil) // C35: what was queued is dropped
	delete(m.tab.byID, s.localID)
	s.keys = nil
	s.localAccepted, s.remoteAccepted, s.peerKnowsUs = false, false, false
	if !s.failNotified {
		s.failNotified = m.cb.Post(ConnectFail{SteamIDRemote: s.remote, SessionError: err})
	}
}

// postRequest posts P2PSessionRequest, replacing one the game has not
// dispatched yet, so that a game that pauses its callbacks finds one
// request per user, not one per repeat. Over Config.RequestRate it files
// the user instead, to be posted when its turn comes (the newest user
// first), and reports false; a user already waiting keeps its place, even
// if its session was evicted and made again meanwhile, so that a flood of
// strangers coming and going does not keep pushing a newcomer down. A
// session made again for a user whose session was evicted to make room
// for another stranger, less than RequestRepeat after the game was handed
// its request, posts nothing: the game has heard of that user.
func (m *Manager) postRequest(s *session) bool {
	if at, ok := m.req.posted.Peek(s.remote); ok && m.at.Sub(at) < m.cfg.RequestRepeat && s.requested.IsZero() {
		s.requested = at
		return false
	}
	if _, waiting := m.req.waiting[s.remote]; waiting {
		m.armRequests() // its session is back: its turn may come
		return false
	}
	if len(m.req.waiting) == 0 && m.takeRequestToken() {
		m.sendRequest(s)
		return true
	}
	m.req.waiting[s.remote] = struct{}{}
	m.req.stack = append(m.req.stack, s.remote)
	if len(m.req.stack) > m.req.maxWaiting {
		// The users waiting longest go: they have had their chance.
		drop := len(m.req.stack) - m.req.maxWaiting
		for _, id := range m.req.stack[:drop] {
			delete(m.req.waiting, id)
		}
		m.req.stack = append(m.req.stack[:0], m.req.stack[drop:]...)
	}
	m.armRequests()
	return false
}

func (m *Manager) sendRequest(s *session) {
	s.requested = m.at
	m.req.posted.Remove(s.remote)
	m.cb.Cancel(s.reqTicket)
	s.reqTicket, _ = m.cb.PostTicket(Request{SteamIDRemote: s.remote})
}

// takeRequestToken takes a token of the request rate, if there is one.
func (m *Manager) takeRequestToken() bool {
	rate, burst := m.cfg.RequestRate, m.cfg.RequestBurst
	if m.req.refilled.IsZero() {
		m.req.tokens, m.req.refilled = burst, m.now
	} else if d := m.now.Sub(m.req.refilled); d > 0 {
		m.req.tokens = min(burst, m.req.tokens+d.Seconds()*rate)
		m.req.refilled = m.now
	}
	if m.req.tokens < 1 {
		return false
	}
	m.req.tokens--
	return true
}

// requestDeadline is when the next waiting request can be posted; zero if
// none waits, or none whose session is there to post it for
// (requestGate.idle: drainRequests found only users whose sessions are away).
func (m *Manager) requestDeadline() time.Time {
	if len(m.req.waiting) == 0 || m.req.idle {
		return time.Time{}
	}
	need := (1 - m.req.tokens) / m.cfg.RequestRate
	return m.req.refilled.Add(time.Duration(max(need, 0) * float64(time.Second)))
}

// armRequests wakes the timer loop if the next waiting request is due
// before what it waits for.
func (m *Manager) armRequests() {
	m.req.idle = false
	if at := m.requestDeadline(); !at.IsZero() && (m.armed.IsZero() || at.Before(m.armed)) {
		m.armed = at
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// drainRequests posts the requests of waiting users, newest first, while
// the rate allows. A user whose session is away for now (evicted, to be
// made again by its next offer) keeps its place and costs no token; one
// accepted leaves the stack. With only users away left, it idles until a
// waiting user's session asks again (postRequest), so that the timer does
// not come back for them at every token.
func (m *Manager) drainRequests() {
	if len(m.req.waiting) == 0 || m.req.idle {
		return
	}
	live := false
	var kept []SteamID // passed over, newest first
	var i int
	for i = len(m.req.stack) - 1; i >= 0; i-- {
		id := m.req.stack[i]
		if _, ok := m.req.waiting[id]; !ok {
			continue
		}
		s, ok := m.tab.lru.Peek(id)
		switch {
		case ok && !s.freed && s.localAccepted:
			delete(m.req.waiting, id)
			continue
		case !ok || s.freed:
			kept = append(kept, id) // away: keeps its place
			continue
		}
		if !m.takeRequestToken() {
			live = true
			break
		}
		delete(m.req.waiting, id)
		m.sendRequest(s)
	}
	// kept holds, newest first, what was passed over; below i nothing was
	// looked at. The stack is rebuilt oldest first.
	slices.Reverse(kept)
	rest := m.req.stack[:i+1]
	m.req.stack = append(append(make([]SteamID, 0, len(rest)+len(kept)), rest...), kept...)
	m.req.idle = !live && len(m.req.waiting) > 0
}

// State reports remote's session (C50).
func (m *Manager) State(remote SteamID) (State, bool) {
	m.mu.Lock()
	defer m.unlock()
	s, ok := m.tab.lru.Peek(remote)
	if !ok {
		return State{}, false
	}
	st := State{
		ConnectionActive: s.phase == phaseEstablished,
		Connecting:       s.phase == phaseLookup || s.phase == phaseConnecting,
		SessionError:     s.lastError,
	}
	if s.engine != nil {
		b, p := s.engine.Queued()
		st.BytesQueuedForSend, st.PacketsQueuedForSend = int32(b), int32(p)
	}
	if s.phase == phaseEstablished {
		st.UsingRelay = s.path.relayed()
		remote := s.path.addr
		if s.path.side == sideRelay {
			remote = m.env.RelayServer() // C50: the relay's address when relayed
		}
		if a := remote.Addr().Unmap(); a.Is4() {
			v := a.As4()
			st.RemoteIP = binary.BigEndian.Uint32(v[:])
			st.RemotePort = remote.Port()
		}
	}
	return st, true
}

// OnLookup takes the rendezvous' answer to our lookup.
func (m *Manager) OnLookup(r LookupResult) {
	m.lock()
	defer m.unlock()
	s, ok := m.tab.lru.Peek(r.Target)
	if !ok || s.phase == phaseFailed || s.phase == phaseEstablished {
		return
	}
	switch r.Status {
	case LookupNotOnline:
		if s.phase == phaseLookup {
			m.fail(s, ErrorDestinationNotLoggedOn)
		}
	case LookupOtherApp:
		if s.phase == phaseLookup {
			m.fail(s, ErrorNotRunningApp)
		}
	case LookupFound:
		if !m.setPeerKey(s, r.PublicKey) {
			return
		}
		m.setCandidates(s, r.Addrs, r.Relayed)
		s.phase = phaseConnecting
		m.sendHello(s, nil)
	}
	m.schedule(s)
}

// OnOffer takes an offer the rendezvous forwarded: remote is looking for us.
func (m *Manager) OnOffer(o Offer) {
	m.lock()
	defer m.unlock()
	remote := o.From
	if m.closed || remote == 0 || remote == m.cfg.SteamID || o.SessionID == 0 {
		return
	}
	s, ok := m.tab.lru.Peek(remote)
	if ok && s.phase == phaseEstablished && (s.peerPub != o.PublicKey || o.SessionID > s.remoteID) {
		// The peer began a new session (or restarted with a new key): its
		// old one is gone, and with it the stream state ours was paired
		// with. End ours as a remote close; the game's accept of this user
		// still stands for the new one.
		accepted := s.localAccepted
		m.remove(s)
		m.free(s, false, false)
		if accepted && len(m.tab.preAccepted) < m.cfg.MaxSessions {
			m.tab.preAccepted[remote] = struct{}{}
		}
		ok = false
	}
	if ok && s.phase == phaseEstablished {
		if o.SessionID == s.remoteID && s.peerPub == o.PublicKey {
			// The peer's addresses may have changed (a new relayed
			// address): take them, and look for a pair on them.
			m.setCandidates(s, o.Addrs, o.Relayed)
			if s.path.relayed() {
				m.sendHello(s, nil)
				m.schedule(s)
			}
		}
		return
	}
	switch {
	case !ok:
		if !m.roomForStranger(remote) {
			return // no state for strangers beyond the caps
		}
		s = m.newSession(remote)
		s.phase = phaseConnecting
	case s.phase == phaseFailed:
		m.resetAttempt(s)
		s.phase = phaseConnecting
		s.initiated = false
		m.applyPreAccept(s)
	}
	if s.localAccepted {
		m.tab.lru.Get(remote) // only users the game wants count as recently used
	}
	if s.remoteID != 0 && s.peerPub == o.PublicKey && o.SessionID < s.remoteID {
		return // a delayed offer of the peer's older session
	}
	if !m.setPeerKey(s, o.PublicKey) {
		return
	}
	if s.remoteID != o.SessionID {
		// The peer's new attempt: ours follows it, under the relay
		// setting of m.now (C51).
		s.remoteID = o.SessionID
		s.keys = nil
		s.peerKnowsUs = false
		s.allowRelay = m.allowRelay
		s.started = m.at // its connect timeout starts with it
	}
	m.setCandidates(s, o.Addrs, o.Relayed)
	if s.phase == phaseLookup {
		s.phase = phaseConnecting
	}
	s.lastHeard = m.at
	if !s.localAccepted && s.requested.IsZero() {
		m.postRequest(s) // C30
	}
	m.sendHello(s, nil)
	m.schedule(s)
}

// pendingEntry is a session in sessionTable.pendingOrder, with the generation
// of its pending spell: an entry from an earlier spell is stale.
type pendingEntry struct {
	s   *session
	gen uint64
}

// pairKeyID names a pair key: the peer and its public key.
type pairKeyID struct {
	remote SteamID
	pub    [32]byte
}

// setPeerKey records the peer's vouched public key; a new key means a new
// instance of the peer, and whatever we knew of its sessions is void.
func (m *Manager) setPeerKey(s *session, pub [32]byte) bool {
	if s.pair != nil && s.peerPub == pub {
		return true
	}
	id := pairKeyID{s.remote, pub}
	pair, ok := m.tab.pairKeys.Get(id)
	if !ok {
		var err error
		if pair, err = seal.NewPairKey(m.keys, pub, uint64(m.cfg.SteamID), uint64(s.remote)); err != nil {
			return false
		}
	}
	s.pair, s.peerPub = pair, pub
	s.remoteID, s.keys, s.peerKnowsUs = 0, nil, false
	return true
}

// HandlePacket takes a peer datagram (handshake or data) read from the
// socket, or from our TURN allocation when viaRelay.
func (m *Manager) HandlePacket(b []byte, from netip.AddrPort, viaRelay bool) {
	m.lock()
	defer m.unlock()
	if !m.closed {
		m.handle(Inbound{B: b, From: from, ViaRelay: viaRelay})
	}
}

// HandlePackets takes several peer datagrams at once, as one read of the
// socket returned them. It answers them together: one ACK for all, and
// whatever they free sent in one run.
func (m *Manager) HandlePackets(pkts []Inbound) {
	m.lock()
	defer m.unlock()
	if m.closed {
		return
	}
	m.batching = true
	for _, p := range pkts {
		m.handle(p)
	}
	m.batching = false
	for i, s := range m.dirty {
		m.dirty[i] = nil
		s.dirty = false
		if !s.freed {
			m.flush(s)
			m.schedule(s)
		}
	}
	m.dirty = m.dirty[:0]
}

// handle dispatches one peer datagram; the lock is held.
func (m *Manager) handle(p Inbound) {
	k, ok := wire.Classify(p.B)
	if !ok {
		return
	}
	from := netip.AddrPortFrom(p.From.Addr().Unmap(), p.From.Port())
	sd := sideDirect
	if p.ViaRelay {
		sd = sideRelay
	}
	switch k {
	case wire.KindHandshake:
		m.onHandshake(p.B, from, sd)
	case wire.KindData:
		m.onData(p.B, from, sd)
	}
}

func (m *Manager) onHandshake(b []byte, from netip.AddrPort, sd side) {
	if len(b) != hsHeaderLen+seal.HandshakeOverhead+hsBodyLen {
		return
	}
	sender := SteamID(binary.BigEndian.Uint64(b[1:9]))
	if SteamID(binary.BigEndian.Uint64(b[9:17])) != m.cfg.SteamID {
		return
	}
	// Strangers cost nothing: only a user the rendezvous told us about has
	// a pair key, and only such a user's packets open.
	s, ok := m.tab.lru.Peek(sender)
	if !ok || s.pair == nil || s.phase == phaseFailed {
		return
	}
	pt, err := s.pair.OpenHandshake(m.rbuf[:0], b[:hsHeaderLen], b[hsHeaderLen:])
	if err != nil {
		return
	}
	msg, err := parseHSBody(pt)
	if err != nil {
		return
	}
	if msg.typ == hsClose {
		if msg.src == s.remoteID && msg.dst == s.localID {
			if s.initiated && s.phase != phaseEstablished {
				// Refused while we were connecting: the game is waiting for
				// an outcome, so give it the one a refusal has on Steam.
				m.fail(s, ErrorTimeout)
				return
			}
			m.remove(s)
			m.free(s, false, false)
			if s.localAccepted && len(m.tab.preAccepted) < m.cfg.MaxSessions {
				// The game accepted this user; their next attempt needs
				// no second request.
				m.tab.preAccepted[s.remote] = struct{}{}
			}
		}
		return
	}
	if msg.src != s.remoteID {
		if s.remoteID != 0 && (msg.src < s.remoteID || s.phase == phaseEstablished) {
			return // an older session of the peer, or one its offer will announce
		}
		s.remoteID, s.keys, s.peerKnowsUs = msg.src, nil, false
	}
	if msg.dst != 0 && msg.dst != s.localID {
		return // meant for an older session of ours
	}
	if s.phase != phaseEstablished {
		// Once established, only data packets, which a replay window
		// guards, prove the peer alive: a replayed hello must not.
		s.lastHeard = m.at
	}
	s.recvBytes += len(b)
	if sd == sideDirect && m.kindOf(s, from) == candPrflx && msg.flags&flagWantReply != 0 {
		m.learnPrflx(s, from)
	}
	if msg.flags&flagReply != 0 {
		// An answer to our probe proves the pair, if it echoes the token
		// we made for that very pair.
		if msg.token != s.token(sd, from) || !m.heard(s, sd, from, false) {
			return
		}
	} else if !m.usable(s, pair{side: sd, kind: m.kindOf(s, from)}) {
		return // over a relay this session may not use (C52), or direct under ForceRelay
	}
	if msg.dst == s.localID {
		s.peerKnowsUs = true
	}
	s.remoteAccepted = msg.flags&flagAccepted != 0
	if !s.localAccepted && s.requested.IsZero() {
		m.postRequest(s) // C30
	}
	if msg.flags&flagWantReply != 0 {
		m.replyHello(s, pair{side: sd, addr: from}, msg.token)
	}
	m.maybeEstablish(s)
	m.schedule(s)
}

func (m *Manager) maybeEstablish(s *session) {
	if s.phase != phaseConnecting || !s.localAccepted || !s.remoteAccepted || !s.peerKnowsUs ||
		s.remoteID == 0 || !s.path.valid() || !m.ensureKeys(s) {
		return
	}
	s.phase = phaseEstablished
	s.failNotified = false // a new failure of this working session is news (C36)
	s.lastHeard, s.lastSent, s.lastActivity = m.at, m.at, m.at
	s.engine.SetEstablished(m.now)
	// Tell the peer at once, so its side opens without waiting for a hello.
	m.sendHello(s, &s.path)
	if s.path.relayed() {
		s.helloWait = 0 // keep looking for a direct pair, from the start
		s.nextHello = m.at.Add(helloFirst)
	}
	m.flush(s)
}

func (m *Manager) ensureKeys(s *session) bool {
	if s.keys != nil {
		return true
	}
	if s.pair == nil || s.remoteID == 0 {
		return false
	}
	k, err := s.pair.SessionKeys(s.localID, s.remoteID)
	if err != nil {
		return false
	}
	s.keys = k
	return true
}

func (m *Manager) onData(b []byte, from netip.AddrPort, sd side) {
	if len(b) < dataHeaderLen+seal.Overhead {
		return
	}
	s := m.tab.byID[binary.BigEndian.Uint64(b[1:9])]
	if s == nil || !m.ensureKeys(s) {
		return
	}
	pn := binary.BigEndian.Uint64(b[9:17])
	if !s.replay.Check(pn) {
		return
	}
	pt, err := s.keys.Open(m.rbuf[:0], b[:dataHeaderLen], pn, b[dataHeaderLen:])
	if err != nil {
		return
	}
	s.replay.Accept(pn)
	if s.phase == phaseConnecting && !s.localAccepted {
		return // C34: nothing of an unaccepted user is kept
	}
	if pn > s.largestPN {
		// The newest packet names the pair the peer uses now: after a NAT
		// rebinding or a move from relay to direct, the session follows,
		// and its ID carries the stream across. Once established, only to
		// a pair already proven: a new address is first asked to echo a
		// token, so that a captured packet replayed from elsewhere, ahead
		// of the original, cannot steer the session.
		s.largestPN = pn
		switch {
		case s.phase != phaseEstablished || m.proven(s, sd, from):
			if !m.heard(s, sd, from, true) {
				return
			}
		case m.usable(s, pair{side: sd, kind: m.kindOf(s, from)}):
			m.challenge(s, pair{side: sd, addr: from})
		default:
			return
		}
	} else if p := s.path; !(p.side == sd && p.addr == from) {
		if !m.usable(s, pair{side: sd, kind: m.kindOf(s, from)}) {
			return
		}
	}
	s.lastHeard = m.at
	s.recvBytes += len(b)
	if s.phase == phaseConnecting {
		// Only an established peer sends data, and it can only seal for
		// our current ID: proof of both facts a hello would carry.
		s.remoteAccepted, s.peerKnowsUs = true, true
		m.maybeEstablish(s)
	}
	if s.phase != phaseEstablished {
		return
	}
	if err := s.engine.HandlePacket(pn, pt, m.now); err != nil || s.broken {
		m.remove(s)
		m.free(s, true, false)
		return
	}
	m.flush(s)
	m.schedule(s)
}

// replyHello answers a hello that asked for one, on the pair it came on.
// A reply never asks for a reply itself, or two connecting peers would
// answer each other forever.
func (m *Manager) replyHello(s *session, to pair, token uint64) {
	if s.stranger() {
		s.answered = to // where a goodbye may go: an answer too
	}
	flags := flagReply
	if s.localAccepted {
		flags |= flagAccepted
	}
	m.writeHandshake(s, hsBody{typ: hsHello, src: s.localID, dst: s.remoteID, flags: flags, token: token}, &to)
}

// sendHello sends a hello on one pair, or probes every pair worth trying.
// It asks for a reply while the session is not established, and while it
// is relayed, which is how a direct pair is found and taken over.
func (m *Manager) sendHello(s *session, to *pair) {
	if s.pair == nil {
		return
	}
	flags := byte(0)
	if s.localAccepted {
		flags |= flagAccepted
	}
	probing := s.phase != phaseEstablished || s.path.relayed() || m.pathStale(s)
	if probing {
		flags |= flagWantReply
	}
	body := hsBody{typ: hsHello, src: s.localID, dst: s.remoteID, flags: flags}
	if to != nil {
		if probing {
			body.token = s.token(to.side, to.addr)
		}
		m.writeHandshake(s, body, to)
		return
	}
	m.probe(s, func(sd side, addr netip.AddrPort) []byte {
		body.token = s.token(sd, addr)
		return m.sealHandshake(s, body)
	})
	if s.helloWait == 0 {
		s.helloWait = helloFirst
	} else {
		s.helloWait = min(2*s.helloWait, helloMax)
	}
	s.nextHello = m.at.Add(s.helloWait)
}

func (m *Manager) sealHandshake(s *session, body hsBody) []byte {
	var plain [hsBodyLen]byte
	out := appendHSHeader(m.obuf[:0], m.cfg.SteamID, s.remote)
	return s.pair.SealHandshake(out, out[:hsHeaderLen], appendHSBody(plain[:0], body))
}

// writeHandshake sends a handshake message on one pair, or on the path, or
// straight to every announced address while no path is known.
func (m *Manager) writeHandshake(s *session, body hsBody, to *pair) {
	out := m.sealHandshake(s, body)
	switch {
	case to != nil:
		m.write(out, to.side, to.addr)
	case s.path.valid():
		m.write(out, s.path.side, s.path.addr)
	case s.stranger():
		// No path to a stranger yet: nothing goes to the addresses it
		// named, only to where its last probe came from, as an answer (a
		// refusal by CloseP2PSessionWithUser ends its wait, C38).
		if s.answered.valid() {
			m.write(out, s.answered.side, s.answered.addr)
		}
	case m.cfg.ForceRelay:
		for i := range s.candidates {
			m.emitBounded(s, &s.candidates[i], out, sideRelay)
		}
	default:
		for i := range s.candidates {
			m.emitBounded(s, &s.candidates[i], out, sideDirect)
		}
	}
}

// flush sends whatever the engine has due.
func (m *Manager) flush(s *session) {
	m.settle(s)
	if s.phase != phaseEstablished || s.engine == nil || s.keys == nil || !s.path.valid() {
		return // without a path the engine keeps it all until one is found
	}
	if m.batching {
		if !s.dirty {
			s.dirty = true
			m.dirty = append(m.dirty, s)
		}
		return
	}
	for {
		if len(m.out.buf)+m.maxDatagram() > outboxCap {
			// The writer empties the outbox and flushes us again.
			if !s.starved {
				s.starved = true
				m.starved = append(m.starved, s)
			}
			return
		}
		busy := s.engine.InFlight()
		pn, payload, ok := s.engine.NextPacket(m.pbuf, m.now)
		if !ok {
			return
		}
		m.busy = m.busy || busy
		start := len(m.out.buf)
		out := appendDataHeader(m.out.buf, s.remoteID, pn)
		m.out.buf = s.keys.Seal(out, out[start:start+dataHeaderLen], pn, payload)
		m.out.commit(start, s.path.side, s.path.addr, true)
		s.lastSent = m.at
	}
}

// SetAllowRelay is AllowP2PPacketRelay: it applies to sessions created
// afterwards and to existing ones when they start a new attempt (C51).
func (m *Manager) SetAllowRelay(allow bool) {
	m.mu.Lock()
	m.allowRelay = allow || m.cfg.ForceRelay
	m.mu.Unlock()
}

// RelayReady tells the Manager that our relayed address changed: sessions
// still connecting ask the rendezvous again, so that peers learn it.
func (m *Manager) RelayReady() {
	m.lock()
	defer m.unlock()
	for _, s := range m.tab.lru.Values() {
		m.reclassify(s) // our relay's address is known m.now
		m.permit(s)     // a new allocation starts with no permissions
		m.prunePairs(s, func(p pair) bool { return p.side == sideRelay })
		connecting := s.initiated && s.phase == phaseConnecting && !s.peerKnowsUs
		relayed := s.phase == phaseEstablished && s.path.relayed()
		if connecting || relayed {
			// The lookup forwards a new offer, with our new relayed
			// address, to the peer.
			m.lookup(s)
			if relayed {
				s.helloWait = 0
				m.sendHello(s, nil)
			}
			m.schedule(s)
		}
	}
}

// OnDelivered takes the rendezvous's receipt that target received our offer
// for session sessionID, and has so opened its NAT toward us.
func (m *Manager) OnDelivered(target SteamID, sessionID uint64) {
	m.lock()
	defer m.unlock()
	s, ok := m.tab.lru.Peek(target)
	if !ok || s.localID != sessionID || s.peerOpened {
		return
	}
	s.peerOpened = true
	if s.phase == phaseConnecting || s.phase == phaseEstablished && s.path.relayed() {
		m.sendHello(s, nil)
		m.schedule(s)
	}
}

// proven reports whether (sd, addr) is a pair that has shown it works.
func (m *Manager) proven(s *session, sd side, addr netip.AddrPort) bool {
	for _, p := range s.pairs {
		if p.side == sd && p.addr == addr {
			return true
		}
	}
	return false
}

// challenge probes an address data came from that no pair has proven yet;
// its answer proves the pair, and the next data then moves the path there.
// At most one such probe per session every 100 ms, so that replayed
// packets cannot make us a reflector.
func (m *Manager) challenge(s *session, to pair) {
	if m.at.Sub(s.challenged) < 100*time.Millisecond {
		return
	}
	s.challenged = m.at
	flags := flagWantReply
	if s.localAccepted {
		flags |= flagAccepted
	}
	m.writeHandshake(s, hsBody{typ: hsHello, src: s.localID, dst: s.remoteID, flags: flags, token: s.token(to.side, to.addr)}, &to)
}

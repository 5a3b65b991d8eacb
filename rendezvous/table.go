package rendezvous

import (
	"container/list"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// registration is one online user.
type registration struct {
	steamID   uint64
	appID     uint32
	publicKey [32]byte
	observed  netip.AddrPort   // where the server saw the registration come from
	local     []netip.AddrPort // advertised, never containing observed
	expires   time.Time
	lastTx    uint64        // txID of the newest registration accepted
	elem      *list.Element // in table.byAge
}

// candidates lists where r can be reached, the observed address first
// because it is the one most likely to work from elsewhere.
func (r *registration) candidates() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, 1+len(r.local))
	out = append(out, r.observed)
	return append(out, r.local...)
}

// datagram is something the server has to send.
type datagram struct {
	b  []byte
	to netip.AddrPort
}

// table is the server's state and its whole message handling, without a
// socket, so that it can be driven with chosen bytes, addresses and times.
type table struct {
	ttl     time.Duration
	max     int
	allowed map[uint32]struct{} // nil: every AppID
	log     *slog.Logger

	mu    sync.Mutex
	regs  map[uint64]*registration
	byAge *list.List // of *registration, least recently refreshed first
}

func newTable(ttl time.Duration, max int, allowed []uint32, log *slog.Logger) *table {
	t := &table{
		ttl:   ttl,
		max:   max,
		log:   log,
		regs:  make(map[uint64]*registration),
		byAge: list.New(),
	}
	if len(allowed) > 0 {
		t.allowed = make(map[uint32]struct{}, len(allowed))
		for _, a := range allowed {
			t.allowed[a] = struct{}{}
		}
	}
	return t
}

// len counts registrations, expired ones not yet swept included.
func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.regs)
}

func (t *table) remove(r *registration) {
	t.byAge.Remove(r.elem)
	delete(t.regs, r.steamID)
}

// expire drops every registration that has not been refreshed in time and
// says how many went. Since every refresh moves a registration to the back
// and the TTL is the same for all, the expired ones are all at the front.
func (t *table) expire(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expireLocked(now)
}

func (t *table) expireLocked(now time.Time) int {
	n := 0
	for e := t.byAge.Front(); e != nil; e = t.byAge.Front() {
		r := e.Value.(*registration)
		if now.Before(r.expires) {
			break
		}
		t.remove(r)
		n++
	}
	return n
}

// live returns the registration of id unless it is missing or expired.
// Expired ones are removed here too, so that answers never depend on how
// recently the sweep ran.
func (t *table) live(id uint64, now time.Time) *registration {
	r := t.regs[id]
	if r == nil {
		return nil
	}
	if !now.Before(r.expires) {
		t.remove(r)
		return nil
	}
	return r
}

// handle processes one datagram received from `from` at `now` and appends
// what has to be sent in reply to out. Anything malformed, unexpected or
// unauthorised is dropped without an answer and without touching the state.
func (t *table) handle(b []byte, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	from = canonical(from)
	if !validCandidate(from) {
		// An answer to port 0 or to a multicast group could not be decoded
		// by anyone legitimate; such sources are forged.
		return out
	}
	m, err := decode(b)
	if err != nil {
		t.log.Debug("rendezvous: dropped datagram", "from", from, "err", err)
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch m.typ {
	case msgRegister:
		return t.register(&m, from, now, out)
	case msgLookup:
		return t.lookup(&m, from, now, out)
	case msgUnregister:
		if r := t.regs[m.steamID]; r != nil && r.observed == from {
			t.remove(r)
			t.log.Debug("rendezvous: unregistered", "steamID", m.steamID, "from", from)
		}
	default:
		t.log.Debug("rendezvous: dropped unexpected message", "type", m.typ, "from", from)
	}
	return out
}

func refuse(m *message, to netip.AddrPort, reason RefuseReason, out []datagram) []datagram {
	reply := message{typ: msgRefused, txID: m.txID, reason: reason}
	return append(out, datagram{b: reply.encode(make([]byte, 0, headerLen+1)), to: to})
}

func (t *table) register(m *message, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	if m.steamID == 0 || m.publicKey == ([32]byte{}) {
		t.log.Debug("rendezvous: refused invalid registration", "steamID", m.steamID, "from", from)
		return refuse(m, from, RefuseInvalid, out)
	}
	if t.allowed != nil {
		if _, ok := t.allowed[m.appID]; !ok {
			t.log.Debug("rendezvous: refused app", "steamID", m.steamID, "appID", m.appID, "from", from)
			return refuse(m, from, RefuseNoRightsToApp, out)
		}
	}
	r := t.live(m.steamID, now)
	if r == nil {
		if len(t.regs) >= t.max {
			t.expireLocked(now)
		}
		if len(t.regs) >= t.max {
			t.log.Warn("rendezvous: registration table full", "max", t.max, "steamID", m.steamID)
			return refuse(m, from, RefuseServerFull, out)
		}
		r = &registration{steamID: m.steamID}
		r.elem = t.byAge.PushBack(r)
		t.regs[m.steamID] = r
		t.log.Debug("rendezvous: registered", "steamID", m.steamID, "appID", m.appID, "from", from)
	} else {
		// A refresh, or the same user starting again somewhere else: the
		// newest registration wins either way. The same instance (same
		// key) numbers its registrations upwards, so one that moves the
		// user to another address must be newer than what we hold: a
		// captured registration replayed from elsewhere is not.
		if r.publicKey == m.publicKey && from != r.observed && m.txID <= r.lastTx {
			t.log.Debug("rendezvous: dropped stale registration", "steamID", m.steamID, "from", from)
			return out
		}
		t.byAge.MoveToBack(r.elem)
	}
	if m.txID > r.lastTx || r.publicKey != m.publicKey {
		r.lastTx = m.txID
	}
	r.appID = m.appID
	r.publicKey = m.publicKey
	r.observed = from
	r.local = r.local[:0]
	for _, a := range m.addrs {
		a = canonical(a)
		if a != from && !containsAddr(r.local, a) {
			r.local = append(r.local, a)
		}
	}
	r.expires = now.Add(t.ttl)
	reply := message{typ: msgRegistered, txID: m.txID, addrs: []netip.AddrPort{from}}
	return append(out, datagram{b: reply.encode(make([]byte, 0, headerLen+maxAddrLen)), to: from})
}

func containsAddr(s []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

func (t *table) lookup(m *message, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	req := t.live(m.steamID, now)
	if req == nil || req.observed != from {
		// Only a registered user, from where it registered, may look others
		// up; otherwise anyone could send offers in someone else's name.
		t.log.Debug("rendezvous: dropped lookup from unregistered source", "steamID", m.steamID, "from", from)
		return out
	}
	res := message{typ: msgLookupResult, txID: m.txID, target: m.target}
	tgt := t.live(m.target, now)
	switch {
	case tgt == nil:
		res.status = LookupNotOnline
	case tgt.appID != req.appID:
		res.status = LookupOtherApp
	default:
		res.status = LookupOK
		res.publicKey = tgt.publicKey
		res.addrs = tgt.candidates()
	}
	out = append(out, datagram{b: res.encode(make([]byte, 0, maxResultLen)), to: from})
	if res.status == LookupOK {
		// No state is kept about the offer: a retransmitted lookup forwards
		// it again, and the target recognises repeats by session ID.
		offer := message{
			typ:       msgOffer,
			txID:      m.txID,
			steamID:   req.steamID,
			publicKey: req.publicKey,
			sessionID: m.sessionID,
			addrs:     req.candidates(),
		}
		out = append(out, datagram{b: offer.encode(make([]byte, 0, maxOfferLen)), to: tgt.observed})
	}
	return out
}

package rendezvous

import (
	"container/list"
	"crypto/ecdh"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// regKey names a registration: the SteamID, and the AppID on a server
// that hides presence (zero otherwise). Hiding presence means that nothing
// about a player is told outside its game, and whether a SteamID can be
// registered under another AppID would tell whether it is online in this
// one: there, each game has its own registrations, and a SteamID may hold
// one in several at once, none visible from the others.
type regKey struct {
	steamID uint64
	appID   uint32
}

// registration is one online user.
type registration struct {
	steamID   uint64
	appID     uint32
	publicKey [32]byte
	// cert is the back end's certificate of publicKey, passed on unread
	// (see cert.go); nil: none.
	cert     []byte
	observed netip.AddrPort   // where the server saw the registration come from
	local    []netip.AddrPort // advertised, never containing observed
	relayed  []netip.AddrPort // advertised addresses on TURN relays
	expires  time.Time
	lastTx   uint64        // txID of the newest registration accepted
	elem     *list.Element // in table.byAge
	// authed: a registration MAC'd under publicKey has been accepted, so
	// the holder of its private key knows the server's key and MACs
	// everything it sends; nothing unauthenticated speaks for r any more.
	// lastTx is then the txID of an authenticated registration.
	authed bool
	// macKey is the key shared with the holder of publicKey, derived once
	// (hasKey) and kept until publicKey changes.
	macKey [32]byte
	hasKey bool
	// hidden: the user asked that its observed and local addresses never
	// be revealed to anyone (ClientConfig.HideAddress); offers and lookup
	// results about it carry its relayed addresses alone.
	hidden bool
	// contacts are the IPs of the users this one looked up or was offered
	// by, where this server saw them or on relays it hands out, the most
	// recent last, at most maxContacts:
	// the peers its allocations on the embedded relay may reach (see
	// table.permits). Kept only while an embedded relay runs, and only IPs
	// that the relay would relay to at all; forgotten when the key changes
	// (another instance).
	contacts []netip.Addr
}

// fullLogEvery is the least time between two "registration table full"
// warnings; the refusals are counted in the stats all the same.
const fullLogEvery = 10 * time.Second

// maxContacts bounds a registration's contacts. A peer announces a few
// addresses (observed, local, relayed), which share IPs more often than
// not, so this covers a few dozen peers met recently.
const maxContacts = 64

// sealKey is the key to MAC what is sent to r under, nil while r is not
// authenticated (its holder may not know the server's key yet).
func (r *registration) sealKey() *[32]byte {
	if r.authed && r.hasKey {
		return &r.macKey
	}
	return nil
}

// candidates lists where r can be reached, the observed address first
// because it is the one most likely to work from elsewhere; nil if r hides
// its addresses, since this is what others are told.
func (r *registration) candidates() []netip.AddrPort {
	if r.hidden {
		return nil
	}
	out := make([]netip.AddrPort, 0, 1+len(r.local))
	out = append(out, r.observed)
	return append(out, r.local...)
}

// addContact makes ip r's most recent contact, forgetting the oldest if r
// has maxContacts already.
func (r *registration) addContact(ip netip.Addr) {
	if i := slices.Index(r.contacts, ip); i >= 0 {
		r.contacts = slices.Delete(r.contacts, i, i+1)
	} else if len(r.contacts) >= maxContacts {
		r.contacts = slices.Delete(r.contacts, 0, 1)
	}
	r.contacts = append(r.contacts, ip)
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
	priv    *ecdh.PrivateKey // the server's key pair
	pub     [32]byte
	// relays issues relay credentials to authenticated registrations; nil:
	// the server knows no relays. Set before the table is used, as are the
	// fields up to mu.
	relays *relayIssuer
	// tokens checks the token of every registration; nil: registrations
	// need none (an open server).
	tokens *tokenChecker
	// hidePresence: a lookup of a user who is not online, or is online
	// under another AppID, gets no answer at all.
	hidePresence bool
	// fullLogged is when "registration table full" was last logged, and
	// fullRefused how many registrations it refused since: a flood must
	// not turn into one log line per datagram.
	fullLogged  time.Time
	fullRefused int
	// relayable, set while an embedded relay runs, says whether it would
	// relay to an IP at all; the table then keeps contacts among those.
	relayable func(netip.Addr) bool

	// stats counts what the table does; never nil.
	stats *counters

	mu      sync.Mutex
	regs    map[regKey]*registration
	byAge   *list.List // of *registration, least recently refreshed first
	retired retiredKeys
	mac     *macer
	// cookieKey makes the cookies of CHALLENGEs (see cookie.go); random,
	// never sent. cookieBuf is reused to compute them.
	cookieKey [32]byte
	cookieBuf [8 + 16 + 2 + 8 + 32]byte
	// keyAgreements counts X25519 operations, the costly part of a
	// registration, for the tests of what a flood costs.
	keyAgreements int
	// agreements bounds the key agreements each source may cost the
	// server (keyAgreementRate); nil: no bound.
	agreements *rateLimiter
}

// A source that has shown it receives (it has a cookie) can still send
// registrations under a fresh key with a MAC that does not verify, each
// costing an X25519, some 50 µs. An honest client needs one when it starts
// and when the server restarts: so each source gets keyAgreementRate a
// second, keyAgreementBurst at once, and what is over is dropped, counted as
// rate limited, and retransmitted by an honest client a moment later.
const (
	keyAgreementRate  = 2
	keyAgreementBurst = 6
)

func newTable(priv *ecdh.PrivateKey, ttl time.Duration, max int, allowed []uint32, log *slog.Logger) *table {
	t := &table{
		ttl:     ttl,
		max:     max,
		log:     log,
		priv:    priv,
		regs:    make(map[regKey]*registration),
		byAge:   list.New(),
		retired: newRetiredKeys(max),
		mac:     newMacer(),
		stats:   newCounters(allowed),
	}
	copy(t.pub[:], priv.PublicKey().Bytes())
	// crypto/rand.Read does not fail on supported platforms.
	_, _ = rand.Read(t.cookieKey[:])
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

// key is the name of the registration of steamID under appID.
func (t *table) key(steamID uint64, appID uint32) regKey {
	if t.hidePresence {
		return regKey{steamID, appID}
	}
	return regKey{steamID: steamID}
}

func (t *table) remove(r *registration) {
	t.byAge.Remove(r.elem)
	delete(t.regs, t.key(r.steamID, r.appID))
	t.stats.left(r.appID)
	if r.authed {
		t.retired.add(r.steamID, r.publicKey, r.lastTx)
	}
}

// retiredKeys remembers, for public keys that authenticated a registration
// and no longer hold one (unregistered, expired, replaced by a restarted
// instance), the newest registration txID accepted under each. A
// registration captured while the key was in use, replayed later, is then
// no newer than that and is dropped, instead of bringing the old instance
// back at the replayer's address. Keys are per instance, so an honest new
// instance never collides with a retired key.
//
// They are kept per SteamID, the latest maxRetiredPerID of each, so that
// whoever re-keys a SteamID over and over flushes that ID's own entries
// and nobody else's; at most max SteamIDs are remembered, the one first
// seen longest ago forgotten first.
type retiredKeys struct {
	max   int                     // keys in all, and SteamIDs
	total int                     // keys held
	ids   map[uint64][]retiredKey // oldest first
	order []uint64                // a ring once it holds max IDs; next is the oldest
	next  int
}

type retiredKey struct {
	key [32]byte
	tx  uint64
}

// maxRetiredPerID bounds the retired keys kept for one SteamID: a player
// restarts a few times a day, each start a new key.
const maxRetiredPerID = 8

func newRetiredKeys(max int) retiredKeys {
	return retiredKeys{max: max, ids: make(map[uint64][]retiredKey)}
}

func (k *retiredKeys) add(steamID uint64, key [32]byte, tx uint64) {
	if k.max <= 0 {
		return
	}
	keys, known := k.ids[steamID]
	if !known {
		if len(k.order) < k.max {
			k.order = append(k.order, steamID)
		} else {
			k.forget(k.order[k.next])
			k.order[k.next] = steamID
			k.next = (k.next + 1) % k.max
		}
	}
	n := len(keys)
	keys = slices.DeleteFunc(keys, func(e retiredKey) bool { return e.key == key })
	if len(keys) >= maxRetiredPerID {
		keys = slices.Delete(keys, 0, 1)
	}
	k.ids[steamID] = append(keys, retiredKey{key, tx})
	k.total += len(k.ids[steamID]) - n
	// Bounded in keys too, not only in IDs: the IDs first seen longest
	// ago go first, never the one just added.
	for i := 0; k.total > k.max && i < len(k.order); i++ {
		if id := k.order[(k.next+i)%len(k.order)]; id != steamID {
			k.forget(id)
		}
	}
}

// forget drops every retired key of steamID; its place in the order of
// IDs is reused when a new ID needs one.
func (k *retiredKeys) forget(steamID uint64) {
	k.total -= len(k.ids[steamID])
	delete(k.ids, steamID)
}

func (k *retiredKeys) find(steamID uint64, key [32]byte) (uint64, bool) {
	for _, e := range k.ids[steamID] {
		if e.key == key {
			return e.tx, true
		}
	}
	return 0, false
}

// stale reports whether a registration of steamID under key with txID is
// no newer than one accepted before key retired.
func (k *retiredKeys) stale(steamID uint64, key [32]byte, txID uint64) bool {
	tx, ok := k.find(steamID, key)
	return ok && txID <= tx
}

// has reports whether key is retired for steamID, whatever the txID.
func (k *retiredKeys) has(steamID uint64, key [32]byte) bool {
	_, ok := k.find(steamID, key)
	return ok
}

// revive forgets key for steamID: it holds a registration again. The ID
// keeps its place in the order of IDs.
func (k *retiredKeys) revive(steamID uint64, key [32]byte) {
	if keys, ok := k.ids[steamID]; ok {
		n := len(keys)
		k.ids[steamID] = slices.DeleteFunc(keys, func(e retiredKey) bool { return e.key == key })
		k.total -= n - len(k.ids[steamID])
	}
}

// macKey is the key shared with the holder of pub about steamID: r's cached
// one if r is registered under pub, else derived now (and kept in r, if r is
// registered under pub). ok is false for a key that yields no secret.
func (t *table) macKey(r *registration, pub [32]byte, steamID uint64) (key [32]byte, ok bool) {
	if r != nil && r.publicKey == pub && r.hasKey {
		return r.macKey, true
	}
	t.keyAgreements++
	key, err := deriveMACKey(t.priv, pub, steamID)
	if err != nil {
		t.log.Debug("rendezvous: no key agreement", "steamID", steamID, "err", err)
		return key, false
	}
	if r != nil && r.publicKey == pub {
		r.macKey, r.hasKey = key, true
	}
	return key, true
}

// authentic reports whether m, received as b, may speak for r: MAC'd under
// r's key, or unauthenticated while r is.
//
// What is not authentic is counted: as a bad MAC, or as unauthorized
// without one.
func (t *table) authentic(r *registration, m *message, b []byte) bool {
	if !m.hasMAC {
		if r.authed {
			t.stats.unauthorized.Add(1)
			return false
		}
		return true
	}
	if !r.authed {
		// Its holder never proved a key; a MAC'd message for it is forged,
		// and checking it would cost a key agreement.
		t.stats.badMAC.Add(1)
		return false
	}
	key, ok := t.macKey(r, r.publicKey, r.steamID)
	if !ok || !t.mac.verify(b, &key) {
		t.stats.badMAC.Add(1)
		return false
	}
	return true
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
	t.stats.expirations.Add(uint64(n))
	return n
}

// live returns the registration named k unless it is missing or expired.
// Expired ones are removed here too, so that answers never depend on how
// recently the sweep ran.
func (t *table) live(k regKey, now time.Time) *registration {
	r := t.regs[k]
	if r == nil {
		return nil
	}
	if !now.Before(r.expires) {
		t.remove(r)
		t.stats.expirations.Add(1)
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
		t.stats.unrecognized.Add(1)
		return out
	}
	m, err := decode(b)
	if err != nil {
		t.stats.malformed.Add(1)
		t.log.Debug("rendezvous: dropped datagram", "from", from, "err", err)
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch m.typ {
	case msgRegister:
		return t.register(&m, b, from, now, out)
	case msgLookup:
		return t.lookup(&m, b, from, now, out)
	case msgOfferAck:
		return t.offerAck(&m, b, from, now, out)
	case msgUnregister:
		r := t.regs[t.key(m.steamID, m.appID)]
		if r == nil || r.observed != from || r.appID != m.appID {
			t.stats.unauthorized.Add(1)
		} else if t.authentic(r, &m, b) {
			t.remove(r)
			t.stats.unregistrations.Add(1)
			t.log.Debug("rendezvous: unregistered", "steamID", m.steamID, "from", from)
		}
	default:
		t.stats.malformed.Add(1)
		t.log.Debug("rendezvous: dropped unexpected message", "type", m.typ, "from", from)
	}
	return out
}

// seal encodes m, MAC'd under key unless key is nil.
func (t *table) seal(m *message, key *[32]byte, size int) []byte {
	m.hasMAC = key != nil
	b := m.encode(make([]byte, 0, size))
	if key != nil {
		t.mac.sign(b, key)
	}
	return b
}

// refuse answers a registration with a refusal, MAC'd under key if the
// registration was authenticated under it.
func (t *table) refuse(m *message, to netip.AddrPort, reason RefuseReason, key *[32]byte, out []datagram) []datagram {
	t.stats.refuse(reason)
	reply := message{typ: msgRefused, txID: m.txID, reason: reason}
	return append(out, datagram{b: t.seal(&reply, key, maxRefusedLen), to: to})
}

// registered is the answer to a registration: the server's key and the
// address it came from. It is never larger than the registration. An
// answer to a registration authenticated under key is MAC'd under it and
// carries relay credentials; an answer to any other registration carries
// no credentials and no MAC, since its sender may not know the server's key
// yet: it is how a client learns it.
func (t *table) registered(m *message, from netip.AddrPort, key *[32]byte, now time.Time, out []datagram) []datagram {
	reply := message{typ: msgRegistered, txID: m.txID, publicKey: t.pub, addrs: []netip.AddrPort{from}}
	if key != nil && t.relays != nil {
		reply.expiry, reply.relays = t.relays.issue(m.steamID, m.appID, now)
	}
	return append(out, datagram{b: t.seal(&reply, key, maxRegisteredLen), to: from})
}

// register handles a REGISTER. First, what it costs: one that would take
// a table slot, move a registration to another address, or need a key
// agreement must carry its source's cookie (see cookie.go), or it is
// answered with a CHALLENGE and nothing else happens; a refresh from the
// registered address under the registered key needs none. Then, for a
// live registration r of the same user:
//
//   - MAC'd under the message's key and verified: accepted as a refresh, or
//     as a move to another address if newer than r's last (unless r was
//     never authenticated, whose txIDs anyone may have forged). A
//     retransmission (the same txID from the same address) is accepted
//     again. Under another key, r is another instance's: it is not taken
//     over (RefuseIDInUse) unless the server has a secret and the
//     registration a valid token, which only the player's back end hands
//     out, so that a restarted instance with a new key gets its ID back
//     at once; without a secret it must wait until r lapses, or keep its
//     key across restarts (p2p.Config.PrivateKey).
//   - MAC'd but not verifying: this server restarted since the sender
//     learnt its key, or the message was forged. Nothing changes, but the
//     sender is challenged, which tells it the server's key, so that an
//     honest one can register again, authenticated.
//   - Unauthenticated while r is authenticated: under r's key, only a
//     retransmission of r's last registration from r's address is answered,
//     changing nothing; the holder of that key MACs everything, so
//     anything else is a replay or forgery and is dropped. Under another
//     key it is refused (RefuseIDInUse).
//   - Unauthenticated while r is not: as before authentication existed, so
//     that clients without a key pair keep working; such a registration
//     can be taken over by anyone.
//
// With no live registration, a verified or unauthenticated registration
// creates one, unless its key has retired (see retiredKeys).
//
// Every answer to a verified registration, REFUSED included, is MAC'd, so
// that a client that has authenticated can drop whatever claims to come
// from the server without a MAC.
//
// With a secret (t.tokens), a registration, verified or without a MAC, is
// refused unless its token admits it (see token.go), before its other
// fields are looked at and without changing anything: a refused refresh
// leaves the registration to lapse at its expiry. A registration without a
// MAC carries no token (the token travels only encrypted), so on such a
// server only authenticated clients register.
func (t *table) register(m *message, b []byte, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	if m.steamID == 0 || m.publicKey == ([32]byte{}) {
		t.log.Debug("rendezvous: refused invalid registration", "steamID", m.steamID, "from", from)
		return t.refuse(m, from, RefuseInvalid, nil, out)
	}
	k := t.key(m.steamID, m.appID)
	r := t.live(k, now)
	sameKey := r != nil && r.publicKey == m.publicKey
	cookie := false // m carries the cookie of its source: sent now, not a replay from elsewhere
	if cheap := sameKey && r.observed == from && (!m.hasMAC || r.hasKey); !cheap || m.cookie != ([cookieLen]byte{}) {
		if cookie = t.validCookie(m.cookie, from, m.steamID, &m.publicKey, now); !cookie && !cheap {
			return t.challenge(m, from, now, out)
		}
	}
	var key [32]byte
	var sealKey *[32]byte // &key once m is verified
	if m.hasMAC {
		if agree := !(sameKey && r.hasKey); agree && t.agreements != nil && !t.agreements.allow(from, rateMessage, now) {
			t.stats.rateLimited.Add(1)
			t.log.Debug("rendezvous: over the key agreement limit, dropped registration", "steamID", m.steamID, "from", from)
			return out
		}
		var ok bool
		if key, ok = t.macKey(r, m.publicKey, m.steamID); !ok {
			t.stats.badMAC.Add(1)
			return out
		}
		if !t.mac.verify(b, &key) {
			t.stats.badMAC.Add(1)
			t.log.Debug("rendezvous: registration failed authentication", "steamID", m.steamID, "from", from)
			return t.challenge(m, from, now, out)
		}
		sealKey = &key
		if m.token != nil {
			cryptToken(m.token, &key, m.txID)
		}
	}
	if t.tokens != nil {
		if reason, ok := t.tokens.check(m.token, m.steamID, m.appID, now); !ok {
			t.log.Debug("rendezvous: refused registration token", "steamID", m.steamID, "appID", m.appID, "reason", reason, "from", from)
			return t.refuse(m, from, reason, sealKey, out)
		}
	}
	if t.allowed != nil {
		if _, ok := t.allowed[m.appID]; !ok {
			t.log.Debug("rendezvous: refused app", "steamID", m.steamID, "appID", m.appID, "from", from)
			return t.refuse(m, from, RefuseNoRightsToApp, sealKey, out)
		}
	}
	if m.hasMAC {
		switch {
		case r != nil && r.authed && !sameKey && t.tokens == nil:
			// Under another key: without a token, nothing says that this
			// is the player rather than anyone who knows its SteamID. A
			// key of the player's that retired (an old instance still
			// running) does not take the registration back either.
			t.log.Debug("rendezvous: refused registration of a SteamID in use", "steamID", m.steamID, "from", from)
			return t.refuse(m, from, RefuseIDInUse, sealKey, out)
		case cookie && (sameKey || t.retired.has(m.steamID, m.publicKey)):
			// MAC'd with a cookie its source just got: fresh whatever its
			// txID, which a restarted instance that kept its key numbers
			// from its own clock, perhaps stepped back. A captured
			// registration replayed from elsewhere has no such cookie.
		case sameKey && r.authed:
			if m.txID < r.lastTx || (m.txID == r.lastTx && from != r.observed) {
				t.log.Debug("rendezvous: dropped stale registration", "steamID", m.steamID, "from", from)
				t.stats.unauthorized.Add(1)
				return out
			}
		case t.retired.stale(m.steamID, m.publicKey, m.txID):
			t.log.Debug("rendezvous: dropped registration of a retired key", "steamID", m.steamID, "from", from)
			t.stats.unauthorized.Add(1)
			return out
		}
	} else {
		switch {
		case t.retired.has(m.steamID, m.publicKey):
			t.log.Debug("rendezvous: dropped unauthenticated registration of a retired key", "steamID", m.steamID, "from", from)
			t.stats.unauthorized.Add(1)
			return out
		case r != nil && r.authed && !sameKey:
			t.log.Debug("rendezvous: refused unauthenticated registration of a SteamID in use", "steamID", m.steamID, "from", from)
			return t.refuse(m, from, RefuseIDInUse, nil, out)
		case r != nil && r.authed:
			if from == r.observed && m.txID == r.lastTx {
				return t.registered(m, from, nil, now, out)
			}
			// The holder of r's key MACs everything once it knows the
			// server's key: this is that instance restarted, with the key
			// it kept, or a forgery. Either way it changes nothing, and
			// the challenge tells an honest one the key.
			t.log.Debug("rendezvous: challenged an unauthenticated registration under an authenticated key", "steamID", m.steamID, "from", from)
			return t.challenge(m, from, now, out)
		case sameKey && from != r.observed && m.txID <= r.lastTx:
			// The same instance numbers its registrations upwards, so one
			// that moves the user to another address must be newer than
			// what we hold: a captured registration replayed from
			// elsewhere is not.
			t.log.Debug("rendezvous: dropped stale registration", "steamID", m.steamID, "from", from)
			t.stats.unauthorized.Add(1)
			return out
		}
	}

	if r == nil {
		if len(t.regs) >= t.max {
			t.expireLocked(now)
		}
		if len(t.regs) >= t.max {
			t.fullRefused++
			if now.Sub(t.fullLogged) >= fullLogEvery {
				t.log.Warn("rendezvous: registration table full", "max", t.max, "refused since the last warning", t.fullRefused)
				t.fullLogged, t.fullRefused = now, 0
			}
			return t.refuse(m, from, RefuseServerFull, sealKey, out)
		}
		r = &registration{steamID: m.steamID, appID: m.appID}
		r.elem = t.byAge.PushBack(r)
		t.regs[k] = r
		t.stats.joined(m.appID)
		t.log.Debug("rendezvous: registered", "steamID", m.steamID, "appID", m.appID, "authenticated", m.hasMAC, "from", from)
	} else {
		// A refresh, or the same user starting again somewhere else: the
		// newest registration wins either way.
		t.byAge.MoveToBack(r.elem)
	}
	if !sameKey {
		if r.authed {
			t.retired.add(r.steamID, r.publicKey, r.lastTx)
		}
		r.publicKey = m.publicKey
		r.authed, r.hasKey = false, false
		r.lastTx = m.txID
		r.contacts = r.contacts[:0]
	}
	if m.hasMAC {
		if !r.authed || m.txID > r.lastTx {
			r.lastTx = m.txID
		}
		r.authed = true
		r.macKey, r.hasKey = key, true
		t.retired.revive(m.steamID, m.publicKey)
	} else if m.txID > r.lastTx {
		r.lastTx = m.txID
	}
	if r.appID != m.appID {
		t.stats.left(r.appID)
		t.stats.joined(m.appID)
		r.appID = m.appID
	}
	r.observed = from
	r.hidden = m.hideAddress
	r.cert = m.cert
	r.local = r.local[:0]
	for _, a := range m.addrs {
		a = canonical(a)
		if a != from && !containsAddr(r.local, a) {
			r.local = append(r.local, a)
		}
	}
	r.relayed = r.relayed[:0]
	for _, a := range m.relayed {
		if a = canonical(a); !containsAddr(r.relayed, a) {
			r.relayed = append(r.relayed, a)
		}
	}
	r.expires = now.Add(t.ttl)
	t.stats.registrations.Add(1)
	return t.registered(m, from, sealKey, now, out)
}

// addContacts makes the addresses of `of` that r is told about (in a
// lookup result or an offer) r's most recent contacts.
func (t *table) addContacts(r, of *registration) {
	if t.relayable == nil {
		return
	}
	add := func(ap netip.AddrPort) {
		if ip := ap.Addr(); t.relayable(ip) {
			r.addContact(ip)
		}
	}
	// Only addresses nobody could make up: where this server saw the
	// user, and relayed addresses on a relay this server hands out. Local
	// addresses are the user's own word, and a relay never needs them:
	// counting them would let anyone widen its contacts to any address.
	if !of.hidden {
		add(of.observed)
	}
	for _, a := range of.relayed {
		if t.relays.isRelay(a.Addr().Unmap()) {
			add(a)
		}
	}
}

// permits says whether the embedded relay may let an allocation of
// steamID's, made from client, exchange datagrams with peer: steamID is
// registered from client, and peer is one of its contacts.
func (t *table) permits(steamID uint64, appID uint32, client netip.AddrPort, peer netip.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.live(t.key(steamID, appID), now)
	if r != nil && r.appID != appID {
		return false
	}
	return r != nil && r.observed == client && slices.Contains(r.contacts, peer)
}

func containsAddr(s []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

func (t *table) lookup(m *message, b []byte, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	req := t.live(t.key(m.steamID, m.appID), now)
	if req == nil || req.observed != from || req.appID != m.appID {
		// Only a registered user, from where it registered, may look others
		// up; otherwise anyone could send offers in someone else's name.
		t.log.Debug("rendezvous: dropped lookup from unregistered source", "steamID", m.steamID, "from", from)
		t.stats.unauthorized.Add(1)
		return out
	}
	if !t.authentic(req, m, b) {
		// And once it has authenticated, only with its key: an altered
		// lookup would forward offers with sessions it never opened.
		t.log.Debug("rendezvous: dropped unauthenticated lookup", "steamID", m.steamID, "from", from)
		return out
	}
	res := message{typ: msgLookupResult, txID: m.txID, target: m.target}
	// Under HidePresence the target is looked for in the requester's game
	// only, and is not online as far as anyone outside it can tell.
	tgt := t.live(t.key(m.target, req.appID), now)
	switch {
	case tgt == nil:
		res.status = LookupNotOnline
	case tgt.appID != req.appID:
		res.status = LookupOtherApp
	default:
		res.status = LookupOK
		res.publicKey = tgt.publicKey
		res.addrs = tgt.candidates()
		res.relayed = tgt.relayed
		res.cert = tgt.cert
	}
	if res.status != LookupOK && t.hidePresence {
		// Whether someone is online, and in which game, is for the users
		// of the same game only: to anyone else the target does not
		// answer, as on Steam.
		t.log.Debug("rendezvous: lookup unanswered to hide presence", "steamID", m.steamID, "target", m.target)
		t.stats.lookupsHid.Add(1)
		return out
	}
	t.stats.lookups[res.status].Add(1)
	out = append(out, datagram{b: t.seal(&res, req.sealKey(), maxResultLen), to: from})
	if res.status == LookupOK {
		t.addContacts(req, tgt)
		t.addContacts(tgt, req)
		// No state is kept about the offer: a retransmitted lookup forwards
		// it again, and the target recognises repeats by session ID.
		offer := message{
			typ:       msgOffer,
			txID:      m.txID,
			steamID:   req.steamID,
			publicKey: req.publicKey,
			sessionID: m.sessionID,
			addrs:     req.candidates(),
			relayed:   req.relayed,
			cert:      req.cert,
		}
		out = append(out, datagram{b: t.seal(&offer, tgt.sealKey(), maxOfferLen), to: tgt.observed})
		t.stats.offers.Add(1)
	}
	return out
}

// offerAck handles an OFFER_ACK: the target of an offer says it has handed
// the offer to its application, and the server tells the requester with a
// DELIVERED. The same rules as for a lookup say who may send one: a
// registered user, from where it registered, with its key once it has
// authenticated; so the DELIVERED names as its target the user that really
// sent the receipt. Nothing is kept: the server does not check that the
// requester did make that offer (a registered user can only say of itself
// that it got one), a repeated receipt is passed on again, and a requester
// gone or under another AppID gets nothing.
func (t *table) offerAck(m *message, b []byte, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	tgt := t.live(t.key(m.steamID, m.appID), now)
	if tgt == nil || tgt.observed != from || tgt.appID != m.appID {
		t.log.Debug("rendezvous: dropped offer receipt from unregistered source", "steamID", m.steamID, "from", from)
		t.stats.unauthorized.Add(1)
		return out
	}
	if !t.authentic(tgt, m, b) {
		t.log.Debug("rendezvous: dropped unauthenticated offer receipt", "steamID", m.steamID, "from", from)
		return out
	}
	req := t.live(t.key(m.requester, tgt.appID), now)
	if req == nil || req.appID != tgt.appID {
		t.log.Debug("rendezvous: dropped offer receipt for a requester not online", "steamID", m.steamID, "requester", m.requester)
		return out
	}
	d := message{typ: msgDelivered, txID: m.txID, target: tgt.steamID, sessionID: m.sessionID}
	t.stats.deliveries.Add(1)
	return append(out, datagram{b: t.seal(&d, req.sealKey(), maxDeliveredLen), to: req.observed})
}

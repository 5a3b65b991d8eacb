package rendezvous

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

const (
	defaultRetransmitInterval = 200 * time.Millisecond
	defaultRefreshInterval    = 10 * time.Second
	maxRetransmitInterval     = 2 * time.Second
	// maxLookupTries bounds a lookup nobody answers: the caller learns
	// nothing and decides by its own timeout what that means.
	maxLookupTries = 8
	// maxRefreshTries bounds one refresh round; the next round starts a
	// RefreshInterval later, so a client whose server went away keeps
	// knocking at a low rate until it comes back.
	maxRefreshTries = 8
	// minCredentialRefresh is the least time between refreshes that renew
	// relay credentials: if the server's clock is far ahead of ours, the
	// credentials look expired at once, and the client must not hammer
	// the server for new ones.
	minCredentialRefresh = time.Second
)

// ErrRegistrationRefused is wrapped by the error Register returns when the
// server refuses the registration; a *RefusedError in the chain has the reason.
var ErrRegistrationRefused = errors.New("rendezvous: registration refused")

// RefusedError is the server's refusal of a registration.
type RefusedError struct {
	Reason RefuseReason
}

func (e *RefusedError) Error() string {
	return "rendezvous: registration refused: " + e.Reason.String()
}

// Unwrap makes errors.Is(err, ErrRegistrationRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRegistrationRefused }

// Offer is delivered to the target of a lookup: someone wants a session.
// Once OnOffer has returned, the client sends the server a receipt for it,
// which the server passes on to the requester (its OnDelivered).
type Offer struct {
	From      uint64
	PublicKey [32]byte
	SessionID uint64 // the requester's session ID, passed through verbatim
	// Addrs are the requester's candidates: the address the server saw it
	// at first, then its advertised local ones; nil if the requester hides
	// its address (ClientConfig.HideAddress), and is then reachable through
	// Relayed alone.
	Addrs   []netip.AddrPort
	Relayed []netip.AddrPort // requester's addresses on TURN relays (its SetRelayed), at most MaxRelayedAddrs; may be nil
	// Certificate is the requester's key certificate (its
	// ClientConfig.Certificate, decoded), for VerifyCertificate; nil if
	// it sent none.
	Certificate []byte
}

// LookupResult is the server's answer to Lookup.
type LookupResult struct {
	Target    uint64
	Status    LookupStatus
	PublicKey [32]byte // zero unless LookupOK
	// Addrs are the target's candidates (server-observed first); nil unless
	// LookupOK, and nil then too if the target hides its address
	// (ClientConfig.HideAddress), and is then reachable through Relayed
	// alone.
	Addrs   []netip.AddrPort
	Relayed []netip.AddrPort // target's addresses on TURN relays, at most MaxRelayedAddrs; nil unless LookupOK, may be nil then
	// Certificate is the target's key certificate, for VerifyCertificate;
	// nil unless LookupOK and the target sent one.
	Certificate []byte
}

// Relay is a TURN server and credentials for it, handed out by the
// rendezvous server to an authenticated registration: the relay embedded in
// the server, or one of the operator's external ones. The credentials are
// the long-term credentials of RFC 8489 (the realm comes from the relay's
// first answer), in coturn's shared-secret form: Username is
// "expiry:steamID:appID" and Password base64(HMAC-SHA1(secret, Username)).
type Relay struct {
	Addr     netip.AddrPort // IPv4
	Username string
	Password string
	// Expires is when the relay stops accepting the credentials, by the
	// server's clock. A relay checks them on every request it
	// authenticates (allocation, refresh, permission, channel binding), so
	// an allocation outliving them must move to newer credentials, which
	// the client gets by itself on re-registering.
	Expires time.Time
}

// ClientConfig configures a Client. The zero value of every field but
// SteamID, Server and Send is a working default.
type ClientConfig struct {
	SteamID   uint64
	AppID     uint32
	PublicKey [32]byte
	// PrivateKey is the X25519 private key whose public half is PublicKey.
	// With it the client authenticates everything it sends once the server
	// has told it the server's key, so that no one who sees its messages on
	// the wire can move its registration or look others up in its name.
	// Zero: the client does not authenticate, cannot carry a Token, and its
	// registration can be taken over by anyone.
	PrivateKey [32]byte
	// ServerKey pins the server's public key (Server.PublicKey of a server
	// with a fixed ServerConfig.PrivateKey): the client then takes no other,
	// so that whoever answers its first registration before the server
	// cannot pose as the server, learn its token, or vouch peers' keys.
	// Zero: the first key the server's address gives is trusted.
	ServerKey [32]byte
	Server    netip.AddrPort
	// LocalAddrs are advertised candidates besides the observed one; at
	// most MaxLocalAddrs, each a usable unicast address with a port. May be nil.
	LocalAddrs []netip.AddrPort
	// Token is the registration token that the game's back end made for
	// this SteamID and AppID (IssueToken), in its text form; required by a
	// server with a ServerConfig.Secret, which refuses a registration
	// without a valid one (Register then fails with a *RefusedError whose
	// Reason says why). It travels only encrypted, inside registrations
	// MAC'd under the key shared with the server, so it needs a
	// PrivateKey. "" sends none. SetToken replaces it.
	Token string
	// Certificate is the back end's certificate of PublicKey for this
	// SteamID and AppID (IssueCertificate), in its text form. The server
	// passes it on in offers and lookup results, where peers check it
	// (VerifyCertificate) against the back end's public key. "" sends none.
	Certificate string
	// HideAddress asks the server never to reveal this client's addresses,
	// the one it observes and LocalAddrs, to anyone: offers and lookup
	// results about it carry its relayed addresses alone (SetRelayed), so
	// that peers reach it only through a relay. LocalAddrs are then not
	// even sent. The client itself still learns its observed address
	// (Register, Observed).
	HideAddress bool
	// Send writes on the shared socket. It is called from several
	// goroutines (the client's own, and those calling Register, Lookup,
	// SetRelayed, HandleInbound and Close), never with the client's lock
	// held, and must not keep b.
	Send func(b []byte, to netip.AddrPort) error
	// OnOffer is called from HandleInbound's goroutine; it must not block.
	// When it has returned, the client sends the server a receipt for the
	// offer (once per offer received, repeats included, and only then:
	// never again by itself), which the server passes on to the requester,
	// whose OnDelivered it calls. Whatever OnOffer sends before it returns
	// is thus on its way before the requester hears that the offer arrived.
	// May be nil; offers are acknowledged all the same.
	OnOffer func(Offer)
	// OnLookup is called from HandleInbound's goroutine, once per answered
	// Lookup call (duplicated answers suppressed); it must not block. May be nil.
	OnLookup func(LookupResult)
	// OnRelays is called with the relays and credentials the server handed
	// out, whenever they change: on the first authenticated registration
	// and on a refresh that brings new credentials (every few minutes) or
	// another list of relays (possibly empty). It is called from
	// HandleInbound's goroutine, never concurrently with itself, with no
	// lock held; it must not block, and may call the Client's methods but
	// HandleInbound. With one goroutine calling HandleInbound, as a peer
	// has, it returns before the Register call that the answer completes
	// does. The slice is the callee's. Only a client with a PrivateKey gets
	// relays. May be nil; Relays gives the same list.
	OnRelays func([]Relay)
	// OnDelivered is called when the server reports that target received
	// the offer with sessionID that a Lookup of this client caused, and
	// that target's OnOffer has returned. It comes once per receipt the
	// target sent: again for every copy of the offer the target got, not at
	// all if the receipt was lost, in which case looking target up again
	// forwards the offer again and brings another. It is called from
	// HandleInbound's goroutine, with no lock held; it must not block. The
	// server vouches for target (a registered user of the same AppID, from
	// its registered address, authenticated if it authenticates), but not
	// for the offer having been ours: the caller matches target and
	// sessionID against the sessions it opened. Once the client shares a
	// key with the server, only reports MAC'd under it are taken. May be nil.
	OnDelivered func(target uint64, sessionID uint64)
	// OnOnline is called when the registration goes from answered to
	// unanswered (a refresh round that the server never answered, or a
	// refusal of a refresh) and back: false when it is lost, true when a
	// later refresh is answered again. The first registration calls it
	// not: Register's answer says that. Calls come from the client's
	// goroutine or HandleInbound's, one at a time and in the order of the
	// changes, with no lock held; it must not block. May be nil; Online
	// gives the same state.
	OnOnline func(online bool)
	// RetransmitInterval is the first retransmit delay, doubling up to 2s;
	// 0 means 200ms.
	RetransmitInterval time.Duration
	// RefreshInterval is the re-register period; 0 means 10s. It must stay
	// well below the server's RegistrationTTL.
	RefreshInterval time.Duration
	Logger          *slog.Logger // nil: discard
}

func (c ClientConfig) withDefaults() (ClientConfig, error) {
	if c.SteamID == 0 {
		return c, cfgerr.New("rendezvous.ClientConfig", "SteamID", "required, must be non-zero")
	}
	if !c.Server.IsValid() || !validCandidate(canonical(c.Server)) {
		return c, cfgerr.New("rendezvous.ClientConfig", "Server", fmt.Sprintf("%v is not a usable unicast address and port", c.Server))
	}
	if c.Send == nil {
		return c, cfgerr.New("rendezvous.ClientConfig", "Send", "required")
	}
	if len(c.LocalAddrs) > MaxLocalAddrs {
		return c, cfgerr.New("rendezvous.ClientConfig", "LocalAddrs", fmt.Sprintf("has %d addresses, at most %d allowed", len(c.LocalAddrs), MaxLocalAddrs))
	}
	local := make([]netip.AddrPort, 0, len(c.LocalAddrs))
	for i, a := range c.LocalAddrs {
		a = canonical(a)
		if !validCandidate(a) {
			return c, cfgerr.New("rendezvous.ClientConfig", fmt.Sprintf("LocalAddrs[%d]", i), fmt.Sprintf("%v is not a usable unicast address and port", c.LocalAddrs[i]))
		}
		local = append(local, a)
	}
	c.LocalAddrs = local
	if _, err := decodeToken(c.Token); err != nil {
		return c, cfgerr.New("rendezvous.ClientConfig", "Token", err.Error())
	}
	if c.Token != "" && c.PrivateKey == ([32]byte{}) {
		return c, cfgerr.New("rendezvous.ClientConfig", "Token", "needs a PrivateKey: the token is sent only encrypted under the key shared with the server")
	}
	if _, err := decodeCertificate(c.Certificate); err != nil {
		return c, cfgerr.New("rendezvous.ClientConfig", "Certificate", err.Error())
	}
	if c.PrivateKey != ([32]byte{}) {
		priv, err := ecdh.X25519().NewPrivateKey(c.PrivateKey[:])
		if err != nil {
			return c, cfgerr.New("rendezvous.ClientConfig", "PrivateKey", err.Error())
		}
		if !bytes.Equal(priv.PublicKey().Bytes(), c.PublicKey[:]) {
			return c, cfgerr.New("rendezvous.ClientConfig", "PublicKey", "is not the public half of ClientConfig.PrivateKey")
		}
	}
	if c.RetransmitInterval < 0 {
		return c, cfgerr.New("rendezvous.ClientConfig", "RetransmitInterval", fmt.Sprintf("must not be negative (%v)", c.RetransmitInterval))
	}
	if c.RetransmitInterval == 0 {
		c.RetransmitInterval = defaultRetransmitInterval
	}
	if c.RefreshInterval < 0 {
		return c, cfgerr.New("rendezvous.ClientConfig", "RefreshInterval", fmt.Sprintf("must not be negative (%v)", c.RefreshInterval))
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = defaultRefreshInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

// attempt is one request being retransmitted until answered.
type attempt struct {
	txID     uint64
	tries    int
	interval time.Duration // the wait after the next send
	next     time.Time     // when to send again
}

func newAttempt(first time.Duration) attempt {
	return attempt{txID: rand.Uint64(), interval: first}
}

// sent records a transmission at now and schedules the next one.
func (a *attempt) sent(now time.Time) {
	a.tries++
	a.next = now.Add(a.interval)
	a.interval = min(2*a.interval, max(maxRetransmitInterval, a.interval))
}

type regOutcome struct {
	observed netip.AddrPort
	err      error
}

type regAttempt struct {
	attempt
	// challenges counts the CHALLENGEs that made this attempt start over
	// at once: a few are honest (first registration, new address, server
	// restarted), more are someone else's, and are left to the
	// retransmissions.
	challenges int
	// signed: the registration is MAC'd under the key shared with a server
	// whose public key is signedFor.
	signed    bool
	signedFor [32]byte
	// waiters are the Register calls waiting for this attempt; while there
	// are any it retransmits until answered, without a try limit, since
	// their contexts bound it.
	waiters map[chan regOutcome]struct{}
}

type lookupAttempt struct {
	attempt
	sessionID uint64
}

// Client is the peer side of the rendezvous, on a socket it does not own:
// it is handed the datagrams read from that socket (HandleInbound) and writes
// through ClientConfig.Send.
type Client struct {
	cfg ClientConfig
	// server is where to send: cfg.Server with an IPv4-mapped address
	// unmapped, so that an IPv4-only socket can send to it.
	server    netip.AddrPort
	serverKey netip.AddrPort // canonical(cfg.Server), to recognise the server
	log       *slog.Logger
	priv      *ecdh.PrivateKey // nil: cfg.PrivateKey is zero, nothing is authenticated

	mu         sync.Mutex
	cert       []byte          // decoded cfg.Certificate, or SetCertificate's; nil: none
	token      []byte          // decoded; nil: none
	cookie     [cookieLen]byte // from the latest CHALLENGE
	keyed      bool            // macKey is shared with the server whose public key is serverPub
	serverPub  [32]byte        // learnt from REGISTERED
	macKey     [32]byte
	mac        *macer
	closed     bool
	registered bool // confirmed at least once: refresh from now on
	online     bool // the latest registration round was answered and accepted
	// reportedOnline is what OnOnline was last told; reportMu keeps the
	// calls in the order of the changes.
	reportedOnline bool
	reportMu       sync.Mutex
	observed       netip.AddrPort
	relayed        []netip.AddrPort // SetRelayed's, sent in every registration
	relays         []Relay          // from the latest authenticated REGISTERED
	relaysVer      uint64           // counts changes of relays
	// notifiedVer is the relaysVer that OnRelays was last called with, and
	// notifying says that a goroutine is calling it, and will call it again
	// if relaysVer moves meanwhile.
	notifiedVer uint64
	notifying   bool
	reg         *regAttempt // the registration in flight, if any
	lastRegTx   uint64      // txID of the newest registration
	refreshAt   time.Time   // when to re-register; zero while reg is in flight or never registered
	lookups     map[uint64]*lookupAttempt

	wake      chan struct{} // buffer 1: a deadline may have moved earlier
	done      chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once
}

// NewClient checks cfg and starts the client's one goroutine, which
// retransmits and refreshes; it ends on Close. Nothing is sent until
// Register or Lookup.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:       cfg,
		mac:       newMacer(),
		server:    netip.AddrPortFrom(cfg.Server.Addr().Unmap(), cfg.Server.Port()),
		serverKey: canonical(cfg.Server),
		log:       cfg.Logger,
		lookups:   make(map[uint64]*lookupAttempt),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
	if cfg.PrivateKey != ([32]byte{}) {
		// withDefaults has checked it.
		c.priv, _ = ecdh.X25519().NewPrivateKey(cfg.PrivateKey[:])
	}
	c.token, _ = decodeToken(cfg.Token)            // checked too
	c.cert, _ = decodeCertificate(cfg.Certificate) // checked too
	if c.priv != nil && cfg.ServerKey != ([32]byte{}) {
		// A pinned key is known from the start: the first registration is
		// MAC'd already, and a refresh of a kept key's registration is
		// taken at once.
		c.learnKeyLocked(cfg.ServerKey)
	}
	go c.loop()
	return c, nil
}

func (c *Client) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Client) send(b []byte) {
	if err := c.cfg.Send(b, c.server); err != nil {
		c.log.Debug("rendezvous: send failed", "to", c.server, "err", err)
	}
}

// sealLocked encodes m, MAC'd if the server's key is known.
func (c *Client) sealLocked(m *message, size int) []byte {
	m.hasMAC = c.keyed
	b := m.encode(make([]byte, 0, size))
	if c.keyed {
		c.mac.sign(b, &c.macKey)
	}
	return b
}

func (c *Client) registerMsgLocked(r *regAttempt) []byte {
	m := message{
		typ:         msgRegister,
		txID:        r.txID,
		steamID:     c.cfg.SteamID,
		appID:       c.cfg.AppID,
		publicKey:   c.cfg.PublicKey,
		addrs:       c.cfg.LocalAddrs,
		relayed:     c.relayed,
		hideAddress: c.cfg.HideAddress,
		cookie:      c.cookie,
		cert:        c.cert,
	}
	if c.cfg.HideAddress {
		m.addrs = nil
	}
	if c.keyed && c.token != nil {
		// Only encrypted, and so only MAC'd: sealLocked MACs exactly when
		// the server's key is known.
		m.token = bytes.Clone(c.token)
		cryptToken(m.token, &c.macKey, r.txID)
	}
	return c.sealLocked(&m, registerLen)
}

func (c *Client) lookupMsgLocked(l *lookupAttempt, target uint64) []byte {
	m := message{typ: msgLookup, txID: l.txID, steamID: c.cfg.SteamID, appID: c.cfg.AppID, target: target, sessionID: l.sessionID}
	return c.sealLocked(&m, lookupLen)
}

// newRegTxLocked numbers registrations upwards, so that the server can tell
// a newer registration from a replay of an older one sent from elsewhere.
func (c *Client) newRegTxLocked(now time.Time) uint64 {
	tx := uint64(now.UnixNano())
	if tx <= c.lastRegTx {
		tx = c.lastRegTx + 1
	}
	c.lastRegTx = tx
	return tx
}

// restartRegisterLocked gives the registration in flight a new txID, signed
// as things stand now, and returns its first transmission.
func (c *Client) restartRegisterLocked(now time.Time) []byte {
	r := c.reg
	r.txID = c.newRegTxLocked(now)
	r.signed, r.signedFor = c.keyed, c.serverPub
	r.interval = c.cfg.RetransmitInterval
	r.sent(now)
	return c.registerMsgLocked(r)
}

// startRegisterLocked begins a registration attempt and returns its first
// transmission.
func (c *Client) startRegisterLocked(now time.Time) []byte {
	c.reg = &regAttempt{attempt: newAttempt(c.cfg.RetransmitInterval), waiters: make(map[chan regOutcome]struct{})}
	c.refreshAt = time.Time{}
	return c.restartRegisterLocked(now)
}

// Register sends the registration, retransmitting, and returns once the
// server confirmed it (observed = the address the server saw us at), or ctx
// ended, or the server refused. A refusal returns an error wrapping
// ErrRegistrationRefused, with a *RefusedError in the chain. With a
// PrivateKey, confirmed means confirmed for a registration MAC'd under the
// key shared with the server, which takes a second round trip whenever the
// client does not know the server's current key yet (first registration,
// server restarted). After success, the client re-registers every
// RefreshInterval by itself, and sooner when that would let its relay
// credentials get within half their lifetime of expiring. Concurrent calls
// share one registration in flight.
func (c *Client) Register(ctx context.Context) (observed netip.AddrPort, err error) {
	if err := ctx.Err(); err != nil {
		return netip.AddrPort{}, err
	}
	ch := make(chan regOutcome, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return netip.AddrPort{}, net.ErrClosed
	}
	var first []byte
	if c.reg == nil {
		first = c.startRegisterLocked(time.Now())
	}
	c.reg.waiters[ch] = struct{}{}
	c.mu.Unlock()
	c.sendNow(first)

	select {
	case o := <-ch:
		return o.observed, o.err
	case <-c.done:
		return netip.AddrPort{}, net.ErrClosed
	case <-ctx.Done():
	}
	c.mu.Lock()
	if r := c.reg; r != nil {
		delete(r.waiters, ch)
		if len(r.waiters) == 0 && !c.registered {
			// Nobody wants this registration any more and no refresh
			// cycle depends on it.
			c.reg = nil
		}
	}
	c.mu.Unlock()
	select {
	case o := <-ch: // answered while we were giving up
		return o.observed, o.err
	default:
		return netip.AddrPort{}, ctx.Err()
	}
}

// Lookup asks the server about target and has it forward an Offer carrying
// sessionID to the target. The answer arrives through OnLookup; nothing
// arrives if the server does not answer within maxLookupTries
// transmissions. Calling Lookup again for the same target while one is
// pending replaces it (new sessionID) and sends at once. The server answers
// only once this client is registered.
func (c *Client) Lookup(target uint64, sessionID uint64) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	l := &lookupAttempt{attempt: newAttempt(c.cfg.RetransmitInterval), sessionID: sessionID}
	l.sent(time.Now())
	c.lookups[target] = l
	b := c.lookupMsgLocked(l, target)
	c.mu.Unlock()
	c.sendNow(b)
}

// Observed is the address the server last confirmed seeing this client
// at; zero before the first confirmation.
func (c *Client) Observed() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.observed
}

// Relays returns the relays and credentials of the latest authenticated
// answer to a registration: nil before the first, and for a client without
// a PrivateKey. The slice is the caller's.
func (c *Client) Relays() []Relay {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.relays)
}

// SetToken replaces the registration token (ClientConfig.Token) that every
// registration from now on carries, retransmissions of one in flight
// included; a client whose token is about to expire is given a new one
// this way, before its next refresh. It fails, changing nothing, for a
// token that cannot be decoded.
func (c *Client) SetToken(token string) error {
	b, err := decodeToken(token)
	if err != nil {
		return fmt.Errorf("rendezvous: SetToken: %w", err)
	}
	c.mu.Lock()
	c.token = b
	// A new txID: the token is encrypted with the txID as its nonce, which
	// must not serve two tokens.
	first := c.reregisterLocked(false)
	c.mu.Unlock()
	c.sendNow(first)
	return nil
}

// SetCertificate replaces the key certificate (ClientConfig.Certificate)
// that registrations carry, before the one in use expires, and registers
// again at once if registered or registering, so that the server passes
// the new one on from now. It fails, changing nothing, for a certificate
// that cannot be decoded.
func (c *Client) SetCertificate(cert string) error {
	b, err := decodeCertificate(cert)
	if err != nil {
		return fmt.Errorf("rendezvous: SetCertificate: %w", err)
	}
	c.mu.Lock()
	c.cert = b
	first := c.reregisterLocked(true)
	c.mu.Unlock()
	c.sendNow(first)
	return nil
}

// reregisterLocked registers again with what is set now: the registration
// in flight under a new txID (its answer would confirm what it carried),
// or, with idleToo, a new one if the client is registered and idle. It
// returns the first transmission, nil if there is none to send.
func (c *Client) reregisterLocked(idleToo bool) []byte {
	switch {
	case c.closed:
		return nil
	case c.reg != nil:
		return c.restartRegisterLocked(time.Now())
	case idleToo && c.registered:
		return c.startRegisterLocked(time.Now())
	}
	return nil
}

// sendNow sends b, if there is one, and wakes the client's goroutine for
// its retransmissions.
func (c *Client) sendNow(b []byte) {
	if b != nil {
		c.send(b)
		c.kick()
	}
}

// SetRelayed sets the addresses this client holds on TURN relays, which
// every registration from now on advertises and which the server passes on
// in offers and lookup results. Unusable addresses are dropped, repeats
// too, and only the first MaxRelayedAddrs are kept; nil withdraws them. If
// they changed and the client is registered or registering, it registers
// again at once, so that the server knows them before the next refresh.
func (c *Client) SetRelayed(addrs []netip.AddrPort) {
	list := make([]netip.AddrPort, 0, min(len(addrs), MaxRelayedAddrs))
	for _, a := range addrs {
		a = canonical(a)
		switch {
		case !validCandidate(a):
			c.log.Warn("rendezvous: dropped unusable relayed address", "addr", a)
		case slices.Contains(list, a):
		case len(list) == MaxRelayedAddrs:
			c.log.Warn("rendezvous: too many relayed addresses, dropped one", "addr", a, "max", MaxRelayedAddrs)
		default:
			list = append(list, a)
		}
	}
	c.mu.Lock()
	if c.closed || slices.Equal(list, c.relayed) {
		c.mu.Unlock()
		return
	}
	c.relayed = list
	b := c.reregisterLocked(true)
	c.mu.Unlock()
	c.sendNow(b)
}

// HandleInbound takes a datagram read from the shared socket. It returns
// true if it was a rendezvous message from the server address (consumed,
// valid or not), false if it is not for the client. It does not keep b.
// OnOffer, OnLookup, OnRelays and OnDelivered run on the calling goroutine
// before it returns, and the receipt for an offer is sent from it, through
// ClientConfig.Send, after OnOffer has returned.
//
// Once the client shares a key with the server (it has a PrivateKey and has
// learnt the server's key), it takes only messages MAC'd under that key,
// so that no one who merely spoofs the server's address can make offers
// or answer lookups in its name. The one exception is a REGISTERED without a
// MAC that brings a server key other than the known one: that is how a
// restarted server tells its new key, and how the first REGISTERED tells
// the first key. Both are trusted on first use: whoever answers first, in
// the server's name, a registration it has seen, is taken for the server
// (nothing proves the server's identity: a registration token proves the
// player's), so an attacker
// who can see our registrations and answer before the server can still
// pose as it; one who cannot see them would have to guess a txID.
func (c *Client) HandleInbound(b []byte, from netip.AddrPort) bool {
	if len(b) == 0 || b[0] != byte(wire.KindRendezvous) || canonical(from) != c.serverKey {
		return false
	}
	m, err := decode(b)
	if err != nil {
		c.log.Debug("rendezvous: dropped datagram from server", "err", err)
		return true
	}
	switch m.typ {
	case msgChallenge:
		c.onChallenge(&m)
	case msgRegistered:
		c.finishRegister(&m, b, regOutcome{observed: m.addrs[0]})
	case msgRefused:
		c.finishRegister(&m, b, regOutcome{err: &RefusedError{Reason: m.reason}})
	case msgLookupResult:
		c.onLookupResult(&m, b)
	case msgOffer:
		c.onOffer(&m, b)
	case msgDelivered:
		c.onDelivered(&m, b)
	default:
		c.log.Debug("rendezvous: dropped unexpected message from server", "type", m.typ)
	}
	return true
}

// maxChallenges bounds the CHALLENGEs that make one registration attempt
// start over at once.
const maxChallenges = 3

// onChallenge takes the server's CHALLENGE to the registration in flight:
// it learns the server's key from it (trusted on first use, like an
// unauthenticated REGISTERED, see HandleInbound) and the cookie, and
// registers again with them, MAC'd if it has a key.
func (c *Client) onChallenge(m *message) {
	c.mu.Lock()
	r := c.reg
	if c.closed || r == nil || r.txID != m.txID {
		c.mu.Unlock()
		return
	}
	if r.challenges >= maxChallenges {
		// Learning a key now would MAC the retransmissions of this txID
		// under it, which the answers to it would not match.
		c.mu.Unlock()
		return
	}
	if c.priv != nil && !c.learnKeyLocked(m.publicKey) {
		c.mu.Unlock()
		return
	}
	changed := c.cookie != m.cookie || r.signed != c.keyed || r.signedFor != c.serverPub
	c.cookie = m.cookie
	if !changed {
		// The next retransmission carries what there is.
		c.mu.Unlock()
		return
	}
	r.challenges++
	b := c.restartRegisterLocked(time.Now())
	c.mu.Unlock()
	c.sendNow(b)
}

// authenticLocked says whether m, received as b, may be taken as the
// server's: MAC'd under the key shared with it, or without a MAC while the
// client shares no key with it. mac says whether it was MAC'd.
func (c *Client) authenticLocked(m *message, b []byte) (ok, mac bool) {
	if m.hasMAC {
		return c.keyed && c.mac.verify(b, &c.macKey), true
	}
	return !c.keyed, false
}

// finishRegister takes the answer to a registration, m received as b.
func (c *Client) finishRegister(m *message, b []byte, o regOutcome) {
	c.mu.Lock()
	r := c.reg
	if c.closed || r == nil || r.txID != m.txID {
		// A duplicate, or the answer to an attempt given up on.
		c.mu.Unlock()
		return
	}
	authentic, mac := c.authenticLocked(m, b)
	serverPub := m.publicKey
	switch {
	case m.typ == msgRegistered && !mac && c.priv != nil && !(c.keyed && c.serverPub == serverPub):
		// The server answered a registration it could not authenticate: our
		// first, or one MAC'd for a key it no longer has (it restarted). It
		// may not have taken it (another instance of ours holds the
		// registration), and it has not bound the registration to our key.
		// Register again, MAC'd under its key; that answer completes.
		if !c.learnKeyLocked(serverPub) {
			c.mu.Unlock()
			return
		}
		b := c.restartRegisterLocked(time.Now())
		c.mu.Unlock()
		c.sendNow(b)
		return
	case !authentic:
		c.mu.Unlock()
		c.log.Debug("rendezvous: dropped unauthenticated answer to a registration", "type", m.typ, "mac", mac)
		return
	case m.typ == msgRegistered && c.priv != nil && (!r.signed || r.signedFor != serverPub || serverPub != c.serverPub):
		// MAC'd under our key, yet not the answer to a registration under
		// it: nothing the server sends.
		c.mu.Unlock()
		return
	}
	c.reg = nil
	now := time.Now()
	next := c.cfg.RefreshInterval
	if o.err == nil {
		if c.observed != o.observed && c.registered {
			c.log.Info("rendezvous: observed address changed", "from", c.observed, "to", o.observed)
		}
		c.observed = o.observed
		if !c.registered {
			c.reportedOnline = true // Register's answer tells of the first
		}
		c.registered = true
		c.online = true
		if mac {
			// Only an authenticated answer carries relays; an answer
			// without a MAC, to a client without a key, says nothing
			// about them.
			c.setRelaysLocked(m)
		}
		if len(c.relays) > 0 {
			// Renew the credentials well before they expire.
			if half := c.relays[0].Expires.Sub(now) / 2; half < next {
				next = max(half, min(next, minCredentialRefresh))
			}
		}
	} else {
		c.online = false
		if len(r.waiters) == 0 {
			c.log.Warn("rendezvous: refresh refused", "err", o.err)
		}
	}
	if c.registered {
		c.refreshAt = now.Add(next)
	}
	c.mu.Unlock()
	c.reportOnline()
	c.notifyRelays()
	// c.reg no longer points at r, so nobody else touches r.waiters.
	for ch := range r.waiters {
		ch <- o
	}
	c.kick()
}

// setRelaysLocked takes the relays of m, an authenticated REGISTERED.
func (c *Client) setRelaysLocked(m *message) {
	var relays []Relay
	if len(m.relays) > 0 {
		username := turnUsername(m.expiry, c.cfg.SteamID, c.cfg.AppID)
		expires := time.Unix(int64(m.expiry), 0)
		relays = make([]Relay, 0, len(m.relays))
		for _, r := range m.relays {
			relays = append(relays, Relay{
				Addr:     r.addr,
				Username: username,
				Password: base64.StdEncoding.EncodeToString(r.password[:]),
				Expires:  expires,
			})
		}
	}
	if slices.Equal(relays, c.relays) {
		return
	}
	c.relays = relays
	c.relaysVer++
}

// notifyRelays calls OnRelays until it has been called with the latest
// relays, unless another goroutine is at it, which will then do it.
func (c *Client) notifyRelays() {
	if c.cfg.OnRelays == nil {
		return
	}
	c.mu.Lock()
	if c.notifying {
		c.mu.Unlock()
		return
	}
	c.notifying = true
	for !c.closed && c.notifiedVer != c.relaysVer {
		c.notifiedVer = c.relaysVer
		relays := slices.Clone(c.relays)
		c.mu.Unlock()
		c.cfg.OnRelays(relays)
		c.mu.Lock()
	}
	c.notifying = false
	c.mu.Unlock()
}

// learnKeyLocked derives the key shared with the server whose public key is
// serverPub, unless it is the one already known.
func (c *Client) learnKeyLocked(serverPub [32]byte) bool {
	if c.keyed && c.serverPub == serverPub {
		return true
	}
	if c.cfg.ServerKey != ([32]byte{}) && serverPub != c.cfg.ServerKey {
		c.log.Warn("rendezvous: the server's address gave a key other than the pinned ClientConfig.ServerKey: ignored")
		return false
	}
	key, err := deriveMACKey(c.priv, serverPub, c.cfg.SteamID)
	if err != nil {
		c.log.Warn("rendezvous: unusable server key", "err", err)
		return false
	}
	if c.keyed {
		c.log.Info("rendezvous: server key changed")
	}
	c.keyed, c.serverPub, c.macKey = true, serverPub, key
	return true
}

func (c *Client) onLookupResult(m *message, b []byte) {
	c.mu.Lock()
	l := c.lookups[m.target]
	if c.closed || l == nil || l.txID != m.txID {
		c.mu.Unlock()
		return
	}
	if ok, mac := c.authenticLocked(m, b); !ok {
		c.mu.Unlock()
		c.log.Debug("rendezvous: dropped unauthenticated lookup result", "target", m.target, "mac", mac)
		return
	}
	delete(c.lookups, m.target)
	c.mu.Unlock()
	if c.cfg.OnLookup != nil {
		c.cfg.OnLookup(LookupResult{Target: m.target, Status: m.status, PublicKey: m.publicKey, Addrs: m.addrs, Relayed: m.relayed, Certificate: m.cert})
	}
}

// onOffer hands an offer, m received as b, to OnOffer, and then sends the
// server the receipt that tells the requester: only then, so that whatever
// OnOffer sent (the openers toward the requester) is out before the
// requester acts on the receipt. A repeated offer is handed over and
// acknowledged again: the receipt for the first may have been lost, and the
// requester repeats its lookup to get one.
func (c *Client) onOffer(m *message, b []byte) {
	c.mu.Lock()
	closed := c.closed
	ok, mac := c.authenticLocked(m, b)
	c.mu.Unlock()
	if !ok {
		c.log.Debug("rendezvous: dropped unauthenticated offer", "from", m.steamID, "mac", mac)
		return
	}
	if closed {
		return
	}
	if c.cfg.OnOffer != nil {
		c.cfg.OnOffer(Offer{From: m.steamID, PublicKey: m.publicKey, SessionID: m.sessionID, Addrs: m.addrs, Relayed: m.relayed, Certificate: m.cert})
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	ack := message{typ: msgOfferAck, txID: m.txID, steamID: c.cfg.SteamID, appID: c.cfg.AppID, requester: m.steamID, sessionID: m.sessionID}
	// MAC'd under the key known now, which may be newer than the offer's
	// if OnOffer took long: the server checks it against what it holds now.
	ab := c.sealLocked(&ack, offerAckLen)
	c.mu.Unlock()
	c.send(ab)
}

// onDelivered takes the server's report, m received as b, that a target
// received an offer of ours.
func (c *Client) onDelivered(m *message, b []byte) {
	c.mu.Lock()
	closed := c.closed
	ok, mac := c.authenticLocked(m, b)
	c.mu.Unlock()
	if !ok {
		c.log.Debug("rendezvous: dropped unauthenticated delivery report", "target", m.target, "mac", mac)
		return
	}
	if closed || c.cfg.OnDelivered == nil {
		return
	}
	c.cfg.OnDelivered(m.target, m.sessionID)
}

// Online reports whether the server answered and accepted the latest
// registration round: true from the first registration until a refresh
// goes unanswered or is refused, and again once one is answered.
func (c *Client) Online() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online && !c.closed
}

// reportOnline tells OnOnline of a change of online since it was last
// told, if there is one.
func (c *Client) reportOnline() {
	if c.cfg.OnOnline == nil {
		return
	}
	c.reportMu.Lock()
	defer c.reportMu.Unlock()
	c.mu.Lock()
	online, changed := c.online, c.online != c.reportedOnline && !c.closed
	c.reportedOnline = c.online
	c.mu.Unlock()
	if changed {
		c.cfg.OnOnline(online)
	}
}

// Close sends a best-effort unregistration and stops the client's
// goroutine. Pending Register calls return net.ErrClosed. Calls after the
// first do nothing.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		var bye []byte
		if c.registered || c.reg != nil {
			m := message{typ: msgUnregister, txID: rand.Uint64(), steamID: c.cfg.SteamID, appID: c.cfg.AppID}
			bye = c.sealLocked(&m, maxUnregisterLen)
		}
		c.closed = true
		c.reg = nil
		clear(c.lookups)
		c.mu.Unlock()
		if bye != nil {
			c.send(bye)
		}
		close(c.done)
		<-c.loopDone
	})
	return nil
}

// loop is the client's one goroutine: it sends what is due, then sleeps
// until the earliest deadline or until a new one is set.
func (c *Client) loop() {
	defer close(c.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due [][]byte
	for {
		c.mu.Lock()
		now := time.Now()
		due = c.dueLocked(now, due[:0])
		next := c.nextDeadlineLocked()
		c.mu.Unlock()
		for i, b := range due {
			c.send(b)
			due[i] = nil
		}
		c.reportOnline()
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// dueLocked advances every retransmission and refresh due at now and
// appends the datagrams to send.
func (c *Client) dueLocked(now time.Time, out [][]byte) [][]byte {
	if c.closed {
		return out
	}
	if r := c.reg; r != nil && !now.Before(r.next) {
		if len(r.waiters) == 0 && r.tries >= maxRefreshTries {
			c.log.Warn("rendezvous: refresh unanswered", "tries", r.tries)
			c.reg = nil
			c.online = false
			if c.registered {
				c.refreshAt = now.Add(c.cfg.RefreshInterval)
			}
		} else {
			r.sent(now)
			out = append(out, c.registerMsgLocked(r))
		}
	}
	if c.reg == nil && !c.refreshAt.IsZero() && !now.Before(c.refreshAt) {
		out = append(out, c.startRegisterLocked(now))
	}
	for target, l := range c.lookups {
		if now.Before(l.next) {
			continue
		}
		if l.tries >= maxLookupTries {
			c.log.Debug("rendezvous: lookup unanswered", "target", target, "tries", l.tries)
			delete(c.lookups, target)
			continue
		}
		l.sent(now)
		out = append(out, c.lookupMsgLocked(l, target))
	}
	return out
}

func (c *Client) nextDeadlineLocked() time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if c.reg != nil {
		earlier(c.reg.next)
	} else {
		earlier(c.refreshAt)
	}
	for _, l := range c.lookups {
		earlier(l.next)
	}
	return next
}

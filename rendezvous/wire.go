package rendezvous

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// Message layout, all integers big-endian:
//
//	header     kind(1)=0xD0 version(1)=7 type(1) flags(1) txID(8)
//	REGISTER   steamID(8) appID(4) publicKey(32) cookie(16) n(1) addr*n m(1) addr*m options(1)
//	           t(1) token(t) c(1) cert(c) zero padding [mac(16)]                                   to exactly registerLen bytes
//	CHALLENGE  serverKey(32) cookie(16)                                                            never MAC'd
//	REGISTERED serverKey(32) addr k(1) [expiry(8) relay*k] [mac(16)]                               the server's X25519 key, the observed address, relays
//	REFUSED    reason(1) [mac(16)]
//	LOOKUP     steamID(8) appID(4) target(8) sessionID(8) zero padding [mac(16)]                   to exactly lookupLen bytes
//	RESULT     target(8) status(1) [publicKey(32) n(1) addr*n m(1) addr*m c(1) cert(c)] [mac(16)]  key, addrs and certificate only for LookupOK
//	OFFER      from(8) publicKey(32) sessionID(8) n(1) addr*n m(1) addr*m c(1) cert(c) [mac(16)]
//	UNREGISTER steamID(8) appID(4) [mac(16)]
//	OFFER_ACK  steamID(8) appID(4) requester(8) sessionID(8) zero padding [mac(16)]                to exactly offerAckLen bytes
//	DELIVERED  target(8) sessionID(8) [mac(16)]
//	addr       family(1)=4|6 ip(4|16) port(2)
//	relay      addr password(20)                                                                   a TURN server and HMAC-SHA1(secret, username)
//
// In REGISTER, the n addrs are local candidates (n <= MaxLocalAddrs) and the
// m addrs relayed ones, addresses the sender holds on TURN relays (m <=
// MaxRelayedAddrs). options is a bit set: optHideAddress asks the server
// never to reveal the sender's observed and local addresses; the other bits
// are zero. t is 0 (no token) or tokenLen, and token is the registration
// token (see token.go) in its decoded form, encrypted under the key the
// MAC is made with (see auth.go): a REGISTER without a MAC carries none.
// c is 0 (no certificate) or certLen, and cert is the back end's
// certificate of the sender's key (see cert.go), which the server passes
// on, unread, in RESULT and OFFER. cookie is all zeros or the server's
// CHALLENGE cookie (see cookie.go), which a registration that would take
// a table slot or a key agreement must carry. In RESULT and OFFER, the n addrs
// are candidates, the observed address first (n <= maxCandidates), and the
// m addrs relayed ones (m <= MaxRelayedAddrs); n is 0 exactly when the user
// they are about hides its address, and is at least 1 otherwise (the
// server always knows where it saw a user). In REGISTERED, k <= MaxRelays; the expiry
// (unix seconds, 0 < expiry < 1<<63) is present only when k > 0 and is the
// same for every relay, whose username is "expiry:steamID:appID" (see relay.go).
//
// OFFER_ACK is the target's receipt for an OFFER (steamID the sender, the
// target of the lookup; requester and sessionID those of the offer), sent
// once the offer has been handed to the application; the server passes it on
// to the requester as DELIVERED (target the sender of the receipt, as the
// server knows it). Both carry the offer's txID (the lookup's), passed
// through; nothing matches on it.
//
// flags is 0 or flagMAC; with flagMAC the message ends with a MAC of
// everything before it (see auth.go), and the padding of a padded message is
// shorter by the MAC, so that its length does not change. A client MACs what
// it sends once it knows the server's key; the server MACs what it sends to
// a client whose registration is authenticated.
//
// Every message has exactly one encoding, so that decode followed by encode
// gives back the same bytes; the fuzz target relies on it.
//
// Version 4 added OFFER_ACK and DELIVERED; the other messages are encoded as
// in version 3. The version changed all the same because the meaning did: a
// requester may wait for DELIVERED before it probes the target, which only
// works if the server and the target both take part, so a version 3 server or
// client, which would silently not, is not spoken to at all.
//
// Version 5 added options and the token to REGISTER, which grew to 304
// bytes, the refusal reasons about tokens, and RESULT and OFFER without
// candidates (a user that hides its address).
//
// Version 6 pads LOOKUP to cover its two answers together, the RESULT to
// the requester and the OFFER to the target, not each alone.
//
// Version 7 added CHALLENGE and the cookie, so that a registration from an
// address that has not shown it can receive costs the server no key
// agreement and no table slot; encrypted the token; added the key
// certificate to REGISTER, RESULT and OFFER; and put the sender's AppID in
// LOOKUP, OFFER_ACK and UNREGISTER, since a server that hides presence
// keeps one registration per SteamID and AppID.

const (
	protocolVersion = 7
	headerLen       = 1 + 1 + 1 + 1 + 8

	// flagMAC marks a message that ends with a MAC.
	flagMAC = 1
	// macLen is the length of a MAC: HMAC-SHA256 truncated to 128 bits.
	macLen = 16

	// MaxLocalAddrs is how many local candidates a registration may
	// advertise besides the address the server observes.
	MaxLocalAddrs = 7
	// MaxRelayedAddrs is how many relayed addresses (allocations on TURN
	// relays) a registration may advertise, and an offer or a lookup result
	// carry.
	MaxRelayedAddrs = 2
	// MaxRelays is how many relays, with credentials, the server hands a
	// client in one answer to its registration.
	MaxRelays = 3

	maxCandidates = MaxLocalAddrs + 1
	maxAddrLen    = 1 + 16 + 2
	// relayPasswordLen is the length of an HMAC-SHA1, the password of
	// coturn's shared-secret scheme before its base64 encoding.
	relayPasswordLen    = 20
	maxRelayedLen       = 1 + MaxRelayedAddrs*maxAddrLen
	maxCertLen          = 1 + certLen
	maxRegisterBodyLen  = headerLen + 8 + 4 + 32 + cookieLen + 1 + MaxLocalAddrs*maxAddrLen + maxRelayedLen + 1 + 1 + tokenLen + maxCertLen
	challengeLen        = headerLen + 32 + cookieLen
	maxRegisteredLen    = headerLen + 32 + maxAddrLen + 1 + 8 + MaxRelays*(maxAddrLen+relayPasswordLen) + macLen
	maxRefusedLen       = headerLen + 1 + macLen
	maxResultLen        = headerLen + 8 + 1 + 32 + 1 + maxCandidates*maxAddrLen + maxRelayedLen + maxCertLen + macLen
	maxOfferLen         = headerLen + 8 + 32 + 8 + 1 + maxCandidates*maxAddrLen + maxRelayedLen + maxCertLen + macLen
	lookupFixedLen      = headerLen + 8 + 4 + 8 + 8
	maxUnregisterLen    = headerLen + 8 + 4 + macLen
	offerAckFixedLen    = headerLen + 8 + 4 + 8 + 8
	maxDeliveredLen     = headerLen + 8 + 8 + macLen
	registerPaddedUntil = registerLen - macLen // where the padding of a MAC'd REGISTER ends

	// lookupLen is the size every LOOKUP is padded to. A lookup makes the
	// server send one answer to the requester and one offer to the target,
	// and a registration's address can be spoofed; with the padding the two
	// together are never larger than the lookup that caused them, so the
	// server cannot be used to amplify traffic towards anyone.
	lookupLen = maxResultLen + maxOfferLen
	// registerLen is the size every REGISTER is padded to, for the same
	// reason: its answer carries the server's key, the observed address and
	// relay credentials, which the smallest registration would not cover.
	// It is the largest registration, with a token, a certificate and a
	// MAC.
	registerLen = maxRegisterBodyLen + macLen
	// offerAckLen is the size every OFFER_ACK is padded to. An OFFER_ACK
	// makes the server send a DELIVERED, to the requester rather than to
	// the sender, MAC'd if the requester authenticates whether or not the
	// sender does; with the padding the DELIVERED is never larger than the
	// OFFER_ACK that caused it either.
	offerAckLen = 64

	// maxMessageLen bounds every message; anything longer is malformed.
	maxMessageLen = max(lookupLen, registerLen, offerAckLen)
)

// Compile-time checks that the padding covers the largest answers, and
// leaves room for the largest body and the MAC.
var (
	_ [lookupLen - maxResultLen - maxOfferLen]struct{}
	_ [lookupLen - macLen - lookupFixedLen]struct{}
	_ [registerLen - maxRegisteredLen]struct{}
	_ [registerLen - maxRefusedLen]struct{}
	_ [registerLen - challengeLen]struct{}
	_ [registerPaddedUntil - maxRegisterBodyLen]struct{}
	_ [maxMessageLen - maxUnregisterLen]struct{}
	_ [offerAckLen - maxDeliveredLen]struct{}
	_ [offerAckLen - macLen - offerAckFixedLen]struct{}
	// A LOOKUP, padded, still fits in one datagram on any path.
	_ [1200 - lookupLen]struct{}
)

type msgType uint8

const (
	msgRegister     msgType = 1
	msgRegistered   msgType = 2
	msgRefused      msgType = 3
	msgLookup       msgType = 4
	msgLookupResult msgType = 5
	msgOffer        msgType = 6
	msgUnregister   msgType = 7
	msgOfferAck     msgType = 8
	msgDelivered    msgType = 9
	msgChallenge    msgType = 10
)

// REGISTER options.
const (
	// optHideAddress: never reveal the sender's observed or local
	// addresses to anyone.
	optHideAddress = 1
)

func (t msgType) String() string {
	switch t {
	case msgRegister:
		return "REGISTER"
	case msgRegistered:
		return "REGISTERED"
	case msgRefused:
		return "REFUSED"
	case msgLookup:
		return "LOOKUP"
	case msgLookupResult:
		return "LOOKUP_RESULT"
	case msgOffer:
		return "OFFER"
	case msgUnregister:
		return "UNREGISTER"
	case msgOfferAck:
		return "OFFER_ACK"
	case msgDelivered:
		return "DELIVERED"
	case msgChallenge:
		return "CHALLENGE"
	}
	return fmt.Sprintf("msgType(%d)", uint8(t))
}

// LookupStatus is the server's answer about a looked-up user.
type LookupStatus uint8

const (
	LookupOK        LookupStatus = iota // target online under the same AppID
	LookupNotOnline                     // no such user registered
	LookupOtherApp                      // user online under another AppID
)

func (s LookupStatus) String() string {
	switch s {
	case LookupOK:
		return "ok"
	case LookupNotOnline:
		return "not online"
	case LookupOtherApp:
		return "other app"
	}
	return fmt.Sprintf("LookupStatus(%d)", uint8(s))
}

// RefuseReason says why the server refused a registration.
type RefuseReason uint8

const (
	// RefuseInvalid: the registration is well-formed but unusable (zero
	// SteamID or zero public key).
	RefuseInvalid RefuseReason = 1
	// RefuseNoRightsToApp: the server does not admit this AppID.
	RefuseNoRightsToApp RefuseReason = 2
	// RefuseServerFull: the registration table is at its cap.
	RefuseServerFull RefuseReason = 3
	// RefuseTokenMissing: the server admits only registrations with a
	// token (ServerConfig.Secret), and this one carried none.
	RefuseTokenMissing RefuseReason = 4
	// RefuseTokenInvalid: the token is unknown to the server: not made
	// under its secret (a wrong MAC), or not a token at all.
	RefuseTokenInvalid RefuseReason = 5
	// RefuseTokenExpired: the token was valid, but is past its expiry (by
	// more than TokenClockSkew).
	RefuseTokenExpired RefuseReason = 6
	// RefuseTokenWrongID: the token was made for another SteamID.
	RefuseTokenWrongID RefuseReason = 7
	// RefuseTokenWrongApp: the token was made for another AppID.
	RefuseTokenWrongApp RefuseReason = 8
	// RefuseIDInUse: the SteamID is registered, live, under another key,
	// and nothing in this registration (a valid token, on a server with a
	// secret) shows that its sender is that player. The other
	// registration stays; this one may try again once it has lapsed.
	RefuseIDInUse RefuseReason = 9
)

func (r RefuseReason) String() string {
	switch r {
	case RefuseInvalid:
		return "invalid registration"
	case RefuseNoRightsToApp:
		return "no rights to app"
	case RefuseServerFull:
		return "server full"
	case RefuseTokenMissing:
		return "token missing"
	case RefuseTokenInvalid:
		return "token invalid"
	case RefuseTokenExpired:
		return "token expired"
	case RefuseTokenWrongID:
		return "token for another SteamID"
	case RefuseTokenWrongApp:
		return "token for another AppID"
	case RefuseIDInUse:
		return "SteamID in use under another key"
	}
	return fmt.Sprintf("RefuseReason(%d)", uint8(r))
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("rendezvous: malformed message")

// message is the decoded form of every message type; which fields are
// meaningful depends on typ (see the layout above).
type message struct {
	typ       msgType
	txID      uint64
	steamID   uint64          // REGISTER, LOOKUP, UNREGISTER, OFFER_ACK: the sender; OFFER: the requester
	appID     uint32          // REGISTER, LOOKUP, UNREGISTER, OFFER_ACK: the sender's
	publicKey [32]byte        // REGISTER: the sender's; REGISTERED, CHALLENGE: the server's; RESULT: the target's; OFFER: the requester's
	cookie    [cookieLen]byte // REGISTER, CHALLENGE
	target    uint64          // LOOKUP, RESULT: the looked-up user; DELIVERED: the sender of the OFFER_ACK
	requester uint64          // OFFER_ACK: the requester of the acknowledged offer
	sessionID uint64          // LOOKUP, OFFER, OFFER_ACK, DELIVERED
	status    LookupStatus
	reason    RefuseReason
	// REGISTER: local candidates; REGISTERED: the observed address alone;
	// RESULT and OFFER: candidates, observed first.
	addrs []netip.AddrPort
	// relayed: REGISTER: the sender's relayed addresses; RESULT: the
	// target's; OFFER: the requester's.
	relayed []netip.AddrPort
	// REGISTERED: the relays and their passwords, valid until expiry.
	expiry uint64
	relays []relayCred
	// REGISTER: the sender asks that its observed and local addresses stay
	// hidden (optHideAddress), and its token, nil or tokenLen bytes: on
	// the wire encrypted, here as the wire has it (see sealToken).
	hideAddress bool
	token       []byte
	// cert: REGISTER: the sender's key certificate; RESULT: the target's;
	// OFFER: the requester's. nil or certLen bytes.
	cert []byte
	// hasMAC: the message ends with mac. encode writes mac as it is; sign
	// fills it in afterwards.
	hasMAC bool
	mac    [macLen]byte
}

// relayCred is a TURN relay and the password for it, in a REGISTERED.
type relayCred struct {
	addr     netip.AddrPort
	password [relayPasswordLen]byte // HMAC-SHA1(secret, username), unencoded
}

// validCandidate reports whether ap can be a peer's address at all; the
// decoder refuses the rest so that no one downstream has to.
func validCandidate(ap netip.AddrPort) bool {
	a := ap.Addr()
	return a.IsValid() && ap.Port() != 0 && !a.IsUnspecified() && !a.IsMulticast()
}

// canonical strips what the wire cannot carry (zone, IPv4-mapped form), so
// that one address compares equal however the socket reported it.
func canonical(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

func appendHeader(b []byte, t msgType, flags byte, txID uint64) []byte {
	b = append(b, byte(wire.KindRendezvous), protocolVersion, byte(t), flags)
	return binary.BigEndian.AppendUint64(b, txID)
}

// appendPadding appends zeros until the message that starts at start is
// size bytes long, less the MAC that will follow it if mac is set.
func appendPadding(b []byte, start, size int, mac bool) []byte {
	if mac {
		size -= macLen
	}
	for len(b)-start < size {
		b = append(b, 0)
	}
	return b
}

func appendAddr(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if a.Is4() {
		b = append(b, 4)
		ip := a.As4()
		b = append(b, ip[:]...)
	} else {
		b = append(b, 6)
		ip := a.As16()
		b = append(b, ip[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func appendAddrs(b []byte, addrs []netip.AddrPort) []byte {
	b = append(b, byte(len(addrs)))
	for _, ap := range addrs {
		b = appendAddr(b, ap)
	}
	return b
}

// encode appends m to b. The caller keeps m within the limits decode
// enforces (address and relay counts, valid addresses, the expiry's range);
// encode does not check them.
func (m *message) encode(b []byte) []byte {
	start := len(b)
	var flags byte
	if m.hasMAC {
		flags = flagMAC
	}
	b = appendHeader(b, m.typ, flags, m.txID)
	switch m.typ {
	case msgRegister:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = binary.BigEndian.AppendUint32(b, m.appID)
		b = append(b, m.publicKey[:]...)
		b = append(b, m.cookie[:]...)
		b = appendAddrs(b, m.addrs)
		b = appendAddrs(b, m.relayed)
		var opts byte
		if m.hideAddress {
			opts |= optHideAddress
		}
		b = append(b, opts, byte(len(m.token)))
		b = append(b, m.token...)
		b = append(b, byte(len(m.cert)))
		b = append(b, m.cert...)
		b = appendPadding(b, start, registerLen, m.hasMAC)
	case msgChallenge:
		b = append(b, m.publicKey[:]...)
		b = append(b, m.cookie[:]...)
	case msgRegistered:
		b = append(b, m.publicKey[:]...)
		b = appendAddr(b, m.addrs[0])
		b = append(b, byte(len(m.relays)))
		if len(m.relays) > 0 {
			b = binary.BigEndian.AppendUint64(b, m.expiry)
			for _, r := range m.relays {
				b = appendAddr(b, r.addr)
				b = append(b, r.password[:]...)
			}
		}
	case msgRefused:
		b = append(b, byte(m.reason))
	case msgLookup:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = binary.BigEndian.AppendUint32(b, m.appID)
		b = binary.BigEndian.AppendUint64(b, m.target)
		b = binary.BigEndian.AppendUint64(b, m.sessionID)
		b = appendPadding(b, start, lookupLen, m.hasMAC)
	case msgLookupResult:
		b = binary.BigEndian.AppendUint64(b, m.target)
		b = append(b, byte(m.status))
		if m.status == LookupOK {
			b = append(b, m.publicKey[:]...)
			b = appendAddrs(b, m.addrs)
			b = appendAddrs(b, m.relayed)
			b = append(b, byte(len(m.cert)))
			b = append(b, m.cert...)
		}
	case msgOffer:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = append(b, m.publicKey[:]...)
		b = binary.BigEndian.AppendUint64(b, m.sessionID)
		b = appendAddrs(b, m.addrs)
		b = appendAddrs(b, m.relayed)
		b = append(b, byte(len(m.cert)))
		b = append(b, m.cert...)
	case msgUnregister:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = binary.BigEndian.AppendUint32(b, m.appID)
	case msgOfferAck:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = binary.BigEndian.AppendUint32(b, m.appID)
		b = binary.BigEndian.AppendUint64(b, m.requester)
		b = binary.BigEndian.AppendUint64(b, m.sessionID)
		b = appendPadding(b, start, offerAckLen, m.hasMAC)
	case msgDelivered:
		b = binary.BigEndian.AppendUint64(b, m.target)
		b = binary.BigEndian.AppendUint64(b, m.sessionID)
	}
	if m.hasMAC {
		b = append(b, m.mac[:]...)
	}
	return b
}

// reader consumes a datagram front to back. After the first short read every
// further read yields zero and the error sticks, so that decode can read a
// whole message and check once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("truncated")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) key() (k [32]byte) {
	if p := r.take(32); p != nil {
		copy(k[:], p)
	}
	return k
}

func (r *reader) addr() netip.AddrPort {
	var a netip.Addr
	switch fam := r.u8(); fam {
	case 4:
		if p := r.take(4); p != nil {
			a = netip.AddrFrom4([4]byte(p))
		}
	case 6:
		if p := r.take(16); p != nil {
			a = netip.AddrFrom16([16]byte(p))
			if a.Is4In6() {
				// An IPv4 address has one encoding, family 4.
				r.fail("IPv4-mapped address under family 6")
			}
		}
	default:
		r.fail("address family %d", fam)
	}
	ap := netip.AddrPortFrom(a, r.u16())
	if r.err == nil && !validCandidate(ap) {
		r.fail("unusable address %v", ap)
	}
	return ap
}

// padding consumes the rest, which must be all zeros: padding is not a
// place to hide anything.
func (r *reader) padding() {
	for _, c := range r.take(len(r.b)) {
		if c != 0 {
			r.fail("non-zero padding")
			return
		}
	}
}

func (r *reader) addrs(lo, hi int) []netip.AddrPort {
	n := int(r.u8())
	if r.err != nil {
		return nil
	}
	if n < lo || n > hi {
		r.fail("%d addresses, want %d to %d", n, lo, hi)
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]netip.AddrPort, 0, n)
	for range n {
		out = append(out, r.addr())
	}
	return out
}

// cert reads a certificate: its length, 0 or certLen, then as many bytes.
func (r *reader) cert() []byte {
	switch c := int(r.u8()); c {
	case 0:
	case certLen:
		if p := r.take(certLen); p != nil {
			return bytes.Clone(p)
		}
	default:
		r.fail("certificate of %d bytes, want 0 or %d", c, certLen)
	}
	return nil
}

// relays reads the relay list of a REGISTERED.
func (r *reader) relays() (expiry uint64, out []relayCred) {
	k := int(r.u8())
	if r.err != nil || k == 0 {
		return 0, nil
	}
	if k > MaxRelays {
		r.fail("%d relays, at most %d", k, MaxRelays)
		return 0, nil
	}
	if expiry = r.u64(); r.err == nil && (expiry == 0 || expiry >= 1<<63) {
		r.fail("relay expiry %d", expiry)
		return 0, nil
	}
	out = make([]relayCred, 0, k)
	for range k {
		var c relayCred
		c.addr = r.addr()
		if p := r.take(relayPasswordLen); p != nil {
			c.password = [relayPasswordLen]byte(p)
		}
		out = append(out, c)
	}
	return expiry, out
}

// decode parses one datagram. It copies everything it keeps, so b may be
// reused as soon as it returns. It does not check the MAC, which takes a key
// only the registration knows.
func decode(b []byte) (message, error) {
	var m message
	if len(b) > maxMessageLen {
		return m, fmt.Errorf("%w: %d bytes is too long", ErrMalformed, len(b))
	}
	r := reader{b: b}
	if k := r.u8(); r.err == nil && k != byte(wire.KindRendezvous) {
		return m, fmt.Errorf("%w: kind %#x", ErrMalformed, k)
	}
	if v := r.u8(); r.err == nil && v != protocolVersion {
		return m, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	m.typ = msgType(r.u8())
	flags := r.u8()
	m.txID = r.u64()
	if r.err != nil {
		return message{}, r.err
	}
	if flags&^flagMAC != 0 {
		return message{}, fmt.Errorf("%w: flags %#x", ErrMalformed, flags)
	}
	if flags&flagMAC != 0 {
		if len(r.b) < macLen {
			return message{}, fmt.Errorf("%w: truncated MAC", ErrMalformed)
		}
		m.hasMAC = true
		copy(m.mac[:], r.b[len(r.b)-macLen:])
		r.b = r.b[:len(r.b)-macLen]
	}
	switch m.typ {
	case msgRegister:
		if len(b) != registerLen {
			return message{}, fmt.Errorf("%w: REGISTER of %d bytes, want %d", ErrMalformed, len(b), registerLen)
		}
		m.steamID = r.u64()
		m.appID = r.u32()
		m.publicKey = r.key()
		if p := r.take(cookieLen); p != nil {
			m.cookie = [cookieLen]byte(p)
		}
		m.addrs = r.addrs(0, MaxLocalAddrs)
		m.relayed = r.addrs(0, MaxRelayedAddrs)
		if opts := r.u8(); opts&^optHideAddress != 0 {
			r.fail("options %#x", opts)
		} else {
			m.hideAddress = opts&optHideAddress != 0
		}
		switch t := int(r.u8()); t {
		case 0:
		case tokenLen:
			if !m.hasMAC {
				// The token travels only encrypted, under the key of
				// the MAC.
				r.fail("token without a MAC")
			} else if p := r.take(tokenLen); p != nil {
				m.token = bytes.Clone(p)
			}
		default:
			r.fail("token of %d bytes, want 0 or %d", t, tokenLen)
		}
		m.cert = r.cert()
		r.padding()
	case msgChallenge:
		if m.hasMAC {
			r.fail("MAC'd CHALLENGE")
		}
		m.publicKey = r.key()
		if p := r.take(cookieLen); p != nil {
			m.cookie = [cookieLen]byte(p)
		}
	case msgRegistered:
		m.publicKey = r.key()
		m.addrs = []netip.AddrPort{r.addr()}
		m.expiry, m.relays = r.relays()
	case msgRefused:
		m.reason = RefuseReason(r.u8())
	case msgLookup:
		if len(b) != lookupLen {
			return message{}, fmt.Errorf("%w: LOOKUP of %d bytes, want %d", ErrMalformed, len(b), lookupLen)
		}
		m.steamID = r.u64()
		m.appID = r.u32()
		m.target = r.u64()
		m.sessionID = r.u64()
		r.padding()
	case msgLookupResult:
		m.target = r.u64()
		m.status = LookupStatus(r.u8())
		switch m.status {
		case LookupOK:
			m.publicKey = r.key()
			m.addrs = r.addrs(0, maxCandidates)
			m.relayed = r.addrs(0, MaxRelayedAddrs)
			m.cert = r.cert()
		case LookupNotOnline, LookupOtherApp:
		default:
			r.fail("lookup status %d", m.status)
		}
	case msgOffer:
		m.steamID = r.u64()
		m.publicKey = r.key()
		m.sessionID = r.u64()
		m.addrs = r.addrs(0, maxCandidates)
		m.relayed = r.addrs(0, MaxRelayedAddrs)
		m.cert = r.cert()
	case msgUnregister:
		m.steamID = r.u64()
		m.appID = r.u32()
	case msgOfferAck:
		if len(b) != offerAckLen {
			return message{}, fmt.Errorf("%w: OFFER_ACK of %d bytes, want %d", ErrMalformed, len(b), offerAckLen)
		}
		m.steamID = r.u64()
		m.appID = r.u32()
		m.requester = r.u64()
		m.sessionID = r.u64()
		r.padding()
	case msgDelivered:
		m.target = r.u64()
		m.sessionID = r.u64()
	default:
		return message{}, fmt.Errorf("%w: unknown type %d", ErrMalformed, uint8(m.typ))
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes after %v", len(r.b), m.typ)
	}
	if r.err != nil {
		return message{}, r.err
	}
	return m, nil
}

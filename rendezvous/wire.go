package rendezvous

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// Message layout, all integers big-endian:
//
//	header     kind(1)=0xD0 version(1)=1 type(1) txID(8)
//	REGISTER   steamID(8) appID(4) publicKey(32) n(1) addr*n          n <= MaxLocalAddrs
//	REGISTERED addr                                                   the observed address
//	REFUSED    reason(1)
//	LOOKUP     steamID(8) target(8) sessionID(8) zero padding         to exactly lookupLen bytes
//	RESULT     target(8) status(1) [publicKey(32) n(1) addr*n]        key and addrs only for LookupOK, 1 <= n <= maxCandidates
//	OFFER      from(8) publicKey(32) sessionID(8) n(1) addr*n         1 <= n <= maxCandidates
//	UNREGISTER steamID(8)
//	addr       family(1)=4|6 ip(4|16) port(2)
//
// Every message has exactly one encoding, so that decode followed by encode
// gives back the same bytes; the fuzz target relies on it.

const (
	protocolVersion = 1
	headerLen       = 1 + 1 + 1 + 8

	// MaxLocalAddrs is how many local candidates a registration may
	// advertise besides the address the server observes.
	MaxLocalAddrs  = 7
	maxCandidates  = MaxLocalAddrs + 1
	maxAddrLen     = 1 + 16 + 2
	maxResultLen   = headerLen + 8 + 1 + 32 + 1 + maxCandidates*maxAddrLen
	maxOfferLen    = headerLen + 8 + 32 + 8 + 1 + maxCandidates*maxAddrLen
	lookupFixedLen = headerLen + 8 + 8 + 8

	// lookupLen is the size every LOOKUP is padded to. A lookup makes the
	// server send one answer to the requester and one offer to the target,
	// and a registration's address can be spoofed; with the padding neither
	// of them is ever larger than the lookup that caused it, so the server
	// cannot be used to amplify traffic towards anyone.
	lookupLen = 256

	// maxMessageLen bounds every message; anything longer is malformed.
	maxMessageLen = lookupLen
)

// Compile-time checks that the padding covers the largest answers.
var (
	_ [lookupLen - maxResultLen]struct{}
	_ [lookupLen - maxOfferLen]struct{}
	_ [lookupLen - lookupFixedLen]struct{}
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
)

func (r RefuseReason) String() string {
	switch r {
	case RefuseInvalid:
		return "invalid registration"
	case RefuseNoRightsToApp:
		return "no rights to app"
	case RefuseServerFull:
		return "server full"
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
	steamID   uint64 // REGISTER, LOOKUP, UNREGISTER: the sender; OFFER: the requester
	appID     uint32
	publicKey [32]byte
	target    uint64
	sessionID uint64
	status    LookupStatus
	reason    RefuseReason
	// REGISTER: local candidates; REGISTERED: the observed address alone;
	// RESULT and OFFER: candidates, observed first.
	addrs []netip.AddrPort
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

func appendHeader(b []byte, t msgType, txID uint64) []byte {
	b = append(b, byte(wire.KindRendezvous), protocolVersion, byte(t))
	return binary.BigEndian.AppendUint64(b, txID)
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
// enforces (address counts, valid addresses); encode does not check them.
func (m *message) encode(b []byte) []byte {
	b = appendHeader(b, m.typ, m.txID)
	switch m.typ {
	case msgRegister:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = binary.BigEndian.AppendUint32(b, m.appID)
		b = append(b, m.publicKey[:]...)
		b = appendAddrs(b, m.addrs)
	case msgRegistered:
		b = appendAddr(b, m.addrs[0])
	case msgRefused:
		b = append(b, byte(m.reason))
	case msgLookup:
		start := len(b) - headerLen
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = binary.BigEndian.AppendUint64(b, m.target)
		b = binary.BigEndian.AppendUint64(b, m.sessionID)
		for len(b)-start < lookupLen {
			b = append(b, 0)
		}
	case msgLookupResult:
		b = binary.BigEndian.AppendUint64(b, m.target)
		b = append(b, byte(m.status))
		if m.status == LookupOK {
			b = append(b, m.publicKey[:]...)
			b = appendAddrs(b, m.addrs)
		}
	case msgOffer:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
		b = append(b, m.publicKey[:]...)
		b = binary.BigEndian.AppendUint64(b, m.sessionID)
		b = appendAddrs(b, m.addrs)
	case msgUnregister:
		b = binary.BigEndian.AppendUint64(b, m.steamID)
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

// decode parses one datagram. It copies everything it keeps, so b may be
// reused as soon as it returns.
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
	m.txID = r.u64()
	if r.err != nil {
		return message{}, r.err
	}
	switch m.typ {
	case msgRegister:
		m.steamID = r.u64()
		m.appID = r.u32()
		m.publicKey = r.key()
		m.addrs = r.addrs(0, MaxLocalAddrs)
	case msgRegistered:
		m.addrs = []netip.AddrPort{r.addr()}
	case msgRefused:
		m.reason = RefuseReason(r.u8())
	case msgLookup:
		if len(b) != lookupLen {
			return message{}, fmt.Errorf("%w: LOOKUP of %d bytes, want %d", ErrMalformed, len(b), lookupLen)
		}
		m.steamID = r.u64()
		m.target = r.u64()
		m.sessionID = r.u64()
		for _, c := range r.take(len(r.b)) {
			if c != 0 {
				r.fail("non-zero padding")
				break
			}
		}
	case msgLookupResult:
		m.target = r.u64()
		m.status = LookupStatus(r.u8())
		switch m.status {
		case LookupOK:
			m.publicKey = r.key()
			m.addrs = r.addrs(1, maxCandidates)
		case LookupNotOnline, LookupOtherApp:
		default:
			r.fail("lookup status %d", m.status)
		}
	case msgOffer:
		m.steamID = r.u64()
		m.publicKey = r.key()
		m.sessionID = r.u64()
		m.addrs = r.addrs(1, maxCandidates)
	case msgUnregister:
		m.steamID = r.u64()
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

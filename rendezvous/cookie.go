package rendezvous

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Return-routability cookies.
//
// A REGISTER costs the server a key agreement (X25519) when its key is not
// the one of the live registration it speaks for, and a table slot when it
// creates one; and a REGISTER's source address can be forged. So a
// registration that would cost either must carry a cookie the server gave
// its source in a CHALLENGE:
//
//	cookie = HMAC-SHA256(cookieKey, epoch(8) ip(16) port(2) steamID(8) publicKey(32))[:16]
//
// cookieKey is the server's, random at start and never sent; epoch counts
// cookieEpoch periods of unix time, and a cookie of the current or the
// previous epoch is accepted. The server keeps no state for a cookie: it
// recomputes it, one HMAC, which is the whole cost of a registration that
// carries a wrong one. A source that never receives the CHALLENGE (a forged
// one) never gets a slot, a key agreement, or anything but CHALLENGEs,
// which are smaller than the REGISTER that caused them.
//
// A refresh from the registered address under the registered key (whose
// shared key the server keeps) needs no cookie: it costs one HMAC and no
// slot, and a client refreshes every 10 s, so that the extra round trip
// would be paid only when something changes (first registration, new
// address, new key, server restart).

const (
	cookieLen = 16
	// cookieEpoch is the period of the cookie's clock: a cookie is good for
	// between one and two of them, time enough for the round trip that
	// brings it back.
	cookieEpoch = 30 * time.Second
)

// cookieEpochOf is the epoch of now.
func cookieEpochOf(now time.Time) uint64 {
	return uint64(now.Unix()) / uint64(cookieEpoch/time.Second)
}

// cookie is the cookie for a registration of steamID under pub from `from`
// in epoch. The table's lock guards the macer and the buffer.
func (t *table) cookie(from netip.AddrPort, steamID uint64, pub *[32]byte, epoch uint64) [cookieLen]byte {
	b := t.cookieBuf[:0]
	b = binary.BigEndian.AppendUint64(b, epoch)
	ip := from.Addr().As16()
	b = append(b, ip[:]...)
	b = binary.BigEndian.AppendUint16(b, from.Port())
	b = binary.BigEndian.AppendUint64(b, steamID)
	b = append(b, pub[:]...)
	return t.mac.sum(&t.cookieKey, b)
}

// validCookie reports whether c is the cookie of a registration of
// steamID under pub from `from`, made in the current or the previous epoch.
func (t *table) validCookie(c [cookieLen]byte, from netip.AddrPort, steamID uint64, pub *[32]byte, now time.Time) bool {
	if c == ([cookieLen]byte{}) {
		return false
	}
	e := cookieEpochOf(now)
	// A comparison that leaks where the cookies differ would let a source
	// guess a cookie byte by byte: the same constant-time compare as MACs.
	a := t.cookie(from, steamID, pub, e)
	if constantTimeEqual(a[:], c[:]) {
		return true
	}
	b := t.cookie(from, steamID, pub, e-1)
	return constantTimeEqual(b[:], c[:])
}

// challenge answers m with a CHALLENGE: the server's key and the cookie for
// m's source, SteamID and key. It is never MAC'd: it commits nothing, and
// the sender may not know the server's key yet.
func (t *table) challenge(m *message, from netip.AddrPort, now time.Time, out []datagram) []datagram {
	t.stats.challenges.Add(1)
	reply := message{typ: msgChallenge, txID: m.txID, publicKey: t.pub, cookie: t.cookie(from, m.steamID, &m.publicKey, cookieEpochOf(now))}
	return append(out, datagram{b: reply.encode(make([]byte, 0, challengeLen)), to: from})
}

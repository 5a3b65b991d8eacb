package rendezvous

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20"
)

// Message authentication.
//
// The server has an X25519 key pair, made when it starts, and tells every
// registering client its public half in REGISTERED. Client and server then
// share a key per registration that nobody watching the wire can compute:
//
//	macKey = HKDF-SHA256(secret X25519(client, server), no salt, info macInfo || steamID(8))
//
// and the client ends every message it sends from then on with
// HMAC-SHA256(macKey, message)[:16]. The server accepts an authenticated
// message only under the key of the registration it speaks for, so a
// captured message that is altered in any bit no longer verifies, and once a
// registration has been authenticated its unauthenticated look-alikes are
// dropped (see table.register for the rules).

// macInfo is the HKDF label; the SteamID follows it, so that a key derived
// for one user is useless for another even with the same key pair.
const macInfo = "p2pcompat rendezvous"

// deriveMACKey is the key shared by the holders of priv and of peer's
// private key for messages about steamID. It fails for a public key that
// yields no secret (a low-order point).
func deriveMACKey(priv *ecdh.PrivateKey, peer [32]byte, steamID uint64) ([32]byte, error) {
	var key [32]byte
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return key, fmt.Errorf("rendezvous: public key: %w", err)
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		return key, fmt.Errorf("rendezvous: key agreement: %w", err)
	}
	var info [len(macInfo) + 8]byte
	copy(info[:], macInfo)
	binary.BigEndian.PutUint64(info[len(macInfo):], steamID)
	k, err := hkdf.Key(sha256.New, secret, nil, string(info[:]), len(key))
	if err != nil {
		return key, fmt.Errorf("rendezvous: derive key: %w", err)
	}
	copy(key[:], k)
	return key, nil
}

// macer computes HMAC-SHA256 (RFC 2104) truncated to macLen bytes with one
// reusable digest, so that checking a message allocates nothing: crypto/hmac
// builds its state per key, and the server sees a different key in nearly
// every message. It is not safe for concurrent use; its owner's lock guards
// it.
type macer struct {
	h     hash.Hash
	pad   [sha256.BlockSize]byte
	inner []byte // sha256.Size, reused
	outer []byte // sha256.Size, reused
}

func newMacer() *macer {
	return &macer{
		h:     sha256.New(),
		inner: make([]byte, 0, sha256.Size),
		outer: make([]byte, 0, sha256.Size),
	}
}

func (x *macer) keyPad(key *[32]byte, p byte) []byte {
	for i := range x.pad {
		x.pad[i] = p
	}
	for i, k := range key {
		x.pad[i] ^= k
	}
	return x.pad[:]
}

// sum is HMAC-SHA256(key, msg) truncated to macLen bytes.
func (x *macer) sum(key *[32]byte, msg []byte) (out [macLen]byte) {
	x.h.Reset()
	x.h.Write(x.keyPad(key, 0x36))
	x.h.Write(msg)
	x.inner = x.h.Sum(x.inner[:0])
	x.h.Reset()
	x.h.Write(x.keyPad(key, 0x5c))
	x.h.Write(x.inner)
	x.outer = x.h.Sum(x.outer[:0])
	copy(out[:], x.outer)
	return out
}

// sign fills in the MAC at the end of b, an encoded message with hasMAC set.
func (x *macer) sign(b []byte, key *[32]byte) {
	body := len(b) - macLen
	mac := x.sum(key, b[:body])
	copy(b[body:], mac[:])
}

// verify reports whether b, an encoded message with hasMAC set, ends with
// the right MAC under key. The comparison takes the same time wherever the
// MACs differ.
func (x *macer) verify(b []byte, key *[32]byte) bool {
	if len(b) < macLen {
		return false
	}
	body := len(b) - macLen
	mac := x.sum(key, b[:body])
	return hmac.Equal(mac[:], b[body:])
}

// constantTimeEqual compares two secrets in a time that does not depend on
// where they differ.
func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// tokenKeyLabel derives the key the token is encrypted under from the MAC
// key, so that the two are never the same key.
const tokenKeyLabel = "p2pcompat rendezvous token key"

// cryptToken encrypts, or decrypts, the token of a REGISTER with txID
// in place: it is XORed with ChaCha20 (RFC 8439) under
// SHA-256(tokenKeyLabel || macKey), with the txID as the nonce. The MAC
// that follows covers the ciphertext, so the pair is encrypt-then-MAC.
// A client never sends two registrations with one txID and different
// tokens (SetToken starts a new one), so no nonce repeats under one key;
// a retransmission repeats the same bytes.
func cryptToken(tok []byte, macKey *[32]byte, txID uint64) {
	h := sha256.New()
	h.Write([]byte(tokenKeyLabel))
	h.Write(macKey[:])
	var key [32]byte
	h.Sum(key[:0])
	var nonce [chacha20.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[4:], txID)
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
	if err != nil {
		// Only wrong key or nonce sizes fail, and these are fixed.
		panic("rendezvous: chacha20: " + err.Error())
	}
	c.XORKeyStream(tok, tok)
}

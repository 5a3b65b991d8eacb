// Package seal encrypts and authenticates every packet between two peers.
//
// Each peer has an X25519 key pair whose public half the rendezvous vouches
// for. Two peers derive a PairKey from their key pairs and SteamIDs; it seals
// the handshake packets, and once the handshake has fixed both session IDs it
// yields the SessionKeys that seal data packets. A packet that
// fails to open reports only ErrOpen, so that the caller can drop it without
// learning, or telling anyone, why.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

var (
	// ErrOpen means a sealed packet did not open: it was truncated, altered,
	// sealed under another key, or given the wrong header or packet number.
	ErrOpen = errors.New("seal: packet failed to open")
	// ErrBadPublicKey means the remote public key cannot form a shared secret
	// (a low-order point gives the all-zero secret that anyone can compute).
	ErrBadPublicKey = errors.New("seal: bad public key")
)

const (
	// HandshakeOverhead is what SealHandshake adds to a plaintext: the random
	// nonce in front and the tag behind.
	HandshakeOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	// Overhead is what SessionKeys.Seal adds to a plaintext: the tag. The
	// nonce is the packet number, which travels in the header.
	Overhead = 16
)

// The labels keep keys for different purposes apart even though they all come
// from the same shared secret.
const (
	labelHandshake = "p2pcompat handshake"
	labelData      = "p2pcompat data"
)

// KeyPair is an X25519 key pair.
type KeyPair struct{ Private, Public [32]byte }

// GenerateKeyPair returns a fresh X25519 key pair from crypto/rand.
func GenerateKeyPair() (KeyPair, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("seal: generate key: %w", err)
	}
	var kp KeyPair
	copy(kp.Private[:], priv.Bytes())
	copy(kp.Public[:], priv.PublicKey().Bytes())
	return kp, nil
}

// KeyPairFromPrivate is the key pair whose private half is priv, a key kept
// from an earlier GenerateKeyPair or made elsewhere (crypto/ecdh).
func KeyPairFromPrivate(priv [32]byte) (KeyPair, error) {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return KeyPair{}, fmt.Errorf("seal: private key: %w", err)
	}
	kp := KeyPair{Private: priv}
	copy(kp.Public[:], k.PublicKey().Bytes())
	return kp, nil
}

// PairKey is the secret shared by one local and one remote instance. Both
// sides derive the same PairKey. It is safe for concurrent use.
type PairKey struct {
	secret    [32]byte
	localID   uint64
	remoteID  uint64
	handshake cipher.AEAD
}

// NewPairKey derives the key shared with the holder of remotePublic. The
// SteamIDs are bound into every derived key, so a key pair vouched for one
// SteamID cannot be replayed as another's.
func NewPairKey(kp KeyPair, remotePublic [32]byte, localSteamID, remoteSteamID uint64) (*PairKey, error) {
	// One scalar multiplication: crypto/ecdh would spend a second one on
	// our own public key for every peer, and a flood of strangers is all
	// key agreements.
	shared, err := curve25519.X25519(kp.Private[:], remotePublic[:])
	if err != nil {
		// It refuses the all-zero result of a low-order point.
		return nil, fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	k := &PairKey{localID: localSteamID, remoteID: remoteSteamID}
	copy(k.secret[:], shared)

	// The handshake key is the same in both directions, so the SteamIDs go
	// in sorted: each side must build identical info.
	lo, hi := localSteamID, remoteSteamID
	if lo > hi {
		lo, hi = hi, lo
	}
	info := make([]byte, 0, len(labelHandshake)+16)
	info = append(info, labelHandshake...)
	info = binary.BigEndian.AppendUint64(info, lo)
	info = binary.BigEndian.AppendUint64(info, hi)
	var hk [chacha20poly1305.KeySize]byte
	if err := derive(hk[:], k.secret[:], nil, info); err != nil {
		return nil, err
	}
	k.handshake, err = chacha20poly1305.NewX(hk[:])
	if err != nil {
		return nil, fmt.Errorf("seal: handshake cipher: %w", err)
	}
	return k, nil
}

func derive(out, secret, salt, info []byte) error {
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, info), out); err != nil {
		return fmt.Errorf("seal: derive key: %w", err)
	}
	return nil
}

// SealHandshake appends nonce||ciphertext||tag to dst. The header is
// authenticated but sent in the clear. The nonce is random because handshake
// packets have no packet number to count with; 24 bytes make a repeat
// negligible.
func (k *PairKey) SealHandshake(dst, header, plaintext []byte) []byte {
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		// crypto/rand.Read does not fail on supported platforms; sealing
		// under a predictable nonce would be worse than stopping.
		panic("seal: crypto/rand failed: " + err.Error())
	}
	dst = append(dst, nonce[:]...)
	return k.handshake.Seal(dst, nonce[:], plaintext, header)
}

// OpenHandshake opens what SealHandshake produced and appends the plaintext
// to dst. Any failure is ErrOpen.
func (k *PairKey) OpenHandshake(dst, header, sealed []byte) ([]byte, error) {
	if len(sealed) < HandshakeOverhead {
		return nil, ErrOpen
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	out, err := k.handshake.Open(dst, nonce, ct, header)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// SessionKeys derives the data key for one session, named by the session
// ID each side chose at the handshake. Fresh session IDs give fresh keys, so
// packet numbers can start again at zero in every session without reusing a
// nonce.
//
// Both directions use one AES-256-GCM key and keep apart by the nonce:
// the side with the lower SteamID seals with direction byte 0, the other
// with 1. One key schedule per session instead of two halves the memory
// an idle session holds, and a packet reflected back to its sender still
// fails to open, because its nonce names the other direction.
func (k *PairKey) SessionKeys(localSession, remoteSession uint64) (*SessionKeys, error) {
	// Both sides must build the same salt and info: the SteamIDs sorted,
	// each followed by its own side's session ID.
	loID, hiID, loSession, hiSession := k.localID, k.remoteID, localSession, remoteSession
	var dir byte
	if loID > hiID {
		loID, hiID, loSession, hiSession = hiID, loID, hiSession, loSession
		dir = 1
	}
	var salt [16]byte
	binary.BigEndian.PutUint64(salt[:8], min(localSession, remoteSession))
	binary.BigEndian.PutUint64(salt[8:], max(localSession, remoteSession))
	var info [len(labelData) + 32]byte
	n := copy(info[:], labelData)
	binary.BigEndian.PutUint64(info[n:], loID)
	binary.BigEndian.PutUint64(info[n+8:], hiID)
	binary.BigEndian.PutUint64(info[n+16:], loSession)
	binary.BigEndian.PutUint64(info[n+24:], hiSession)
	var key [32]byte
	if err := derive(key[:], k.secret[:], salt[:], info[:]); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("seal: data cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: data cipher: %w", err)
	}
	s := &SessionKeys{aead: aead}
	s.send.nonce[0], s.recv.nonce[0] = dir, 1-dir
	return s, nil
}

// SessionKeys seals data packets in one session. It is safe for
// concurrent use.
type SessionKeys struct {
	aead       cipher.AEAD
	send, recv direction
}

// direction keeps its nonce in the struct rather than on the stack because a
// stack array handed to an interface method escapes, which would cost an
// allocation per packet. The mutex guards that buffer: two goroutines writing
// it at once could seal under the other's packet number, which reuses a GCM
// nonce; an uncontended lock is cheap next to sealing a packet.
type direction struct {
	mu    sync.Mutex
	nonce [12]byte // direction byte, 3 zero bytes, big-endian packet number
}

// Seal appends ciphertext||tag to dst. The header is authenticated but sent
// in the clear; pn is the nonce and must never repeat in this session's
// local→remote direction.
func (s *SessionKeys) Seal(dst, header []byte, pn uint64, plaintext []byte) []byte {
	d := &s.send
	d.mu.Lock()
	binary.BigEndian.PutUint64(d.nonce[4:], pn)
	out := s.aead.Seal(dst, d.nonce[:], plaintext, header)
	d.mu.Unlock()
	return out
}

// Open checks and decrypts a packet sealed by the remote side's Seal with the
// same header and pn, and appends the plaintext to dst. Any failure is
// ErrOpen. Open does not detect replays; see ReplayWindow.
func (s *SessionKeys) Open(dst, header []byte, pn uint64, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrOpen
	}
	d := &s.recv
	d.mu.Lock()
	binary.BigEndian.PutUint64(d.nonce[4:], pn)
	out, err := s.aead.Open(dst, d.nonce[:], sealed, header)
	d.mu.Unlock()
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

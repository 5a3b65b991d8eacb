package rendezvous

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key certificates.
//
// The rendezvous tells each peer the other's public key, and the peers
// seal their sessions under keys derived from those: whoever runs the
// rendezvous could give each side a key of its own and sit in the middle.
// A game back end that authenticates its players can take that power
// away, as GameNetworkingSockets' certificates do: it signs each player's
// public key with an Ed25519 key of its own (IssueCertificate), the player
// registers with the certificate (ClientConfig.Certificate), the server
// passes it on unread in offers and lookup results, and every peer, which
// ships the back end's public key, checks it (VerifyCertificate) before it
// talks to the key. A substituted key has no certificate that verifies, so
// a rendezvous that lies is found out and the session refused. A
// certificate is
//
//	expiry(8) signature(64)
//
// expiry in unix seconds (0 < expiry < 1<<63), and the signature, Ed25519
// (RFC 8032), over
//
//	certLabel || steamID(8) || appID(4) || publicKey(32) || expiry(8)
//
// all big-endian; the SteamID, AppID and key are those of the
// registration, so the wire does not repeat them. ClientConfig.Certificate
// carries its 72 bytes as unpadded base64url, 96 characters.

const (
	// certLen is the length of a decoded certificate.
	certLen = 8 + ed25519.SignatureSize
	// certLabel separates certificate signatures from anything else the
	// back end signs with the same key.
	certLabel = "p2pcompat key certificate v1"
)

// ErrCertificate is wrapped by every error of VerifyCertificate: the
// certificate is missing, malformed, expired, or not the back end's for
// that SteamID, AppID and key.
var ErrCertificate = errors.New("rendezvous: key certificate refused")

// certSigned is what a certificate's signature covers.
func certSigned(steamID uint64, appID uint32, publicKey [32]byte, expiry uint64) []byte {
	b := make([]byte, 0, len(certLabel)+8+4+32+8)
	b = append(b, certLabel...)
	b = binary.BigEndian.AppendUint64(b, steamID)
	b = binary.BigEndian.AppendUint32(b, appID)
	b = append(b, publicKey[:]...)
	return binary.BigEndian.AppendUint64(b, expiry)
}

// IssueCertificate makes the certificate that vouches, for ttl from now
// (rounded up to a whole second), that publicKey is steamID's under appID.
// It is what a game's back end runs for a player it has authenticated,
// with the public key the player's instance will use (p2p.Config's
// PrivateKey makes it stable); the player passes the result as
// ClientConfig.Certificate, and its peers check it against signer's
// public half. It fails for a signer that is not an Ed25519 private key, a
// zero SteamID or key, and a ttl that is not positive.
func IssueCertificate(signer ed25519.PrivateKey, steamID uint64, appID uint32, publicKey [32]byte, ttl time.Duration) (string, error) {
	switch {
	case len(signer) != ed25519.PrivateKeySize:
		return "", fmt.Errorf("rendezvous: IssueCertificate: signer of %d bytes, want %d", len(signer), ed25519.PrivateKeySize)
	case steamID == 0:
		return "", errors.New("rendezvous: IssueCertificate: zero SteamID")
	case publicKey == ([32]byte{}):
		return "", errors.New("rendezvous: IssueCertificate: zero public key")
	case ttl <= 0:
		return "", fmt.Errorf("rendezvous: IssueCertificate: ttl %v is not positive", ttl)
	}
	secs, ok := expiryAfter(ttl)
	if !ok {
		return "", fmt.Errorf("rendezvous: IssueCertificate: ttl %v gives no valid expiry", ttl)
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, certLen), secs)
	b = append(b, ed25519.Sign(signer, certSigned(steamID, appID, publicKey, secs))...)
	return tokenEncoding.EncodeToString(b), nil
}

// DecodeCertificate turns the text form of a certificate, as
// IssueCertificate makes it, into the bytes that VerifyCertificate checks
// and a REGISTER carries; "" is none (nil). The error wraps ErrCertificate.
func DecodeCertificate(s string) ([]byte, error) {
	return decodeCertificate(s)
}

func decodeCertificate(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) != tokenEncoding.EncodedLen(certLen) {
		return nil, fmt.Errorf("%w: %d characters, want %d", ErrCertificate, len(s), tokenEncoding.EncodedLen(certLen))
	}
	b, err := tokenEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	if e := binary.BigEndian.Uint64(b); e == 0 || e >= 1<<63 {
		return nil, fmt.Errorf("%w: expiry out of range", ErrCertificate)
	}
	return b, nil
}

// VerifyCertificate checks cert, as an Offer or a LookupResult carries it,
// against the back end's public key: it must be signed by that key for
// exactly steamID, appID and publicKey, and not be past its expiry by more
// than TokenClockSkew at now. The error wraps ErrCertificate and says
// which check failed.
func VerifyCertificate(key ed25519.PublicKey, cert []byte, steamID uint64, appID uint32, publicKey [32]byte, now time.Time) error {
	switch {
	case len(key) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: verification key of %d bytes, want %d", ErrCertificate, len(key), ed25519.PublicKeySize)
	case len(cert) == 0:
		return fmt.Errorf("%w: none", ErrCertificate)
	case len(cert) != certLen:
		return fmt.Errorf("%w: %d bytes, want %d", ErrCertificate, len(cert), certLen)
	}
	expiry := binary.BigEndian.Uint64(cert)
	if !ed25519.Verify(key, certSigned(steamID, appID, publicKey, expiry), cert[8:]) {
		return fmt.Errorf("%w: not signed by the back end for SteamID %d, AppID %d and this key", ErrCertificate, steamID, appID)
	}
	if expiry >= 1<<63 || now.Add(-TokenClockSkew).Unix() >= int64(expiry) {
		return fmt.Errorf("%w: expired at %v", ErrCertificate, time.Unix(int64(min(expiry, 1<<62)), 0).UTC())
	}
	return nil
}

package rendezvous

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Registration tokens.
//
// A server with a secret (ServerConfig.Secret) admits a registration only
// with a token that the game's back end made under the same secret for
// that player (IssueToken): without Steam vouching for SteamIDs, the token
// is what stops anyone from registering, and so being found, as someone
// else. A token is
//
//	steamID(8) appID(4) expiry(8) mac(32)
//
// all big-endian, expiry in unix seconds (0 < expiry < 1<<63), and
//
//	mac = HMAC-SHA256(secret, tokenLabel || steamID || appID || expiry)
//
// carried in ClientConfig.Token as unpadded base64url (RFC 4648 section 5)
// of those 52 bytes, 70 characters, and on the wire in REGISTER as the 52
// bytes. A back end written in another language makes the same tokens from
// this description. The server accepts a token for exactly the SteamID and
// AppID of the registration that carries it, until TokenClockSkew past its
// expiry; it checks the MAC first, in constant time, so that a token it
// did not make tells nothing about its fields. Every registration is
// checked, refreshes included: a client whose token expires must be given
// a new one (Client.SetToken) before its next refresh, or its registration
// lapses RegistrationTTL later. A token is a bearer credential: whoever
// holds it can register as its player until it expires, which is why it
// should be short-lived and why the REGISTER that carries it is otherwise
// authenticated (see auth.go) once the client knows the server's key.

const (
	// tokenLen is the length of a decoded token.
	tokenLen = 8 + 4 + 8 + sha256.Size
	// tokenLabel separates token MACs from anything else made under the
	// same secret.
	tokenLabel = "p2pcompat registration token v1"

	// TokenClockSkew is how long past its expiry the server still accepts
	// a token, for the clocks of the back end that made it and of the
	// server, which may disagree by that much.
	TokenClockSkew = 30 * time.Second
)

// tokenEncoding is the text form of a token: base64url without padding,
// strict, so that a token has one text form only.
var tokenEncoding = base64.RawURLEncoding.Strict()

// errToken is wrapped by the errors that decodeToken returns.
var errToken = errors.New("not a registration token")

// IssueToken makes the registration token that lets steamID register under
// appID with a server whose ServerConfig.Secret is secret, for ttl from now
// (rounded up to a whole second). It is what a game's back end runs for a
// player it has authenticated; the player's client passes the result as
// ClientConfig.Token. It fails for an empty secret, a zero SteamID and a ttl
// that is not positive.
func IssueToken(secret []byte, steamID uint64, appID uint32, ttl time.Duration) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("rendezvous: IssueToken: empty secret")
	case steamID == 0:
		return "", errors.New("rendezvous: IssueToken: zero SteamID")
	case ttl <= 0:
		return "", fmt.Errorf("rendezvous: IssueToken: ttl %v is not positive", ttl)
	}
	secs, ok := expiryAfter(ttl)
	if !ok {
		return "", fmt.Errorf("rendezvous: IssueToken: ttl %v gives no valid expiry", ttl)
	}
	return tokenEncoding.EncodeToString(makeToken(secret, steamID, appID, secs)), nil
}

// expiryAfter is the expiry, in unix seconds, ttl from now rounded up to a
// whole second; false if that is not within 0 < expiry < 1<<63.
func expiryAfter(ttl time.Duration) (uint64, bool) {
	exp := time.Now().Add(ttl)
	secs := exp.Unix()
	if exp.Nanosecond() != 0 {
		secs++
	}
	return uint64(secs), secs > 0
}

// makeToken is the decoded token for steamID and appID expiring at expiry
// (unix seconds).
func makeToken(secret []byte, steamID uint64, appID uint32, expiry uint64) []byte {
	b := make([]byte, 0, tokenLen)
	b = binary.BigEndian.AppendUint64(b, steamID)
	b = binary.BigEndian.AppendUint32(b, appID)
	b = binary.BigEndian.AppendUint64(b, expiry)
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(tokenLabel))
	h.Write(b)
	return h.Sum(b)
}

// token is a decoded token's fields.
type token struct {
	steamID uint64
	appID   uint32
	expiry  uint64 // unix seconds
	mac     []byte // into the decoded bytes
	signed  []byte // what the MAC covers, but the label
}

// parseToken reads a decoded token. Only the length and the expiry's range
// are checked here; the MAC takes the secret.
func parseToken(b []byte) (token, bool) {
	if len(b) != tokenLen {
		return token{}, false
	}
	tk := token{
		steamID: binary.BigEndian.Uint64(b[0:8]),
		appID:   binary.BigEndian.Uint32(b[8:12]),
		expiry:  binary.BigEndian.Uint64(b[12:20]),
		signed:  b[:20],
		mac:     b[20:],
	}
	return tk, tk.expiry != 0 && tk.expiry < 1<<63
}

// decodeToken turns the text form of a token into the bytes a REGISTER
// carries; "" is no token (nil).
func decodeToken(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) != tokenEncoding.EncodedLen(tokenLen) {
		return nil, fmt.Errorf("%w: %d characters, want %d", errToken, len(s), tokenEncoding.EncodedLen(tokenLen))
	}
	b, err := tokenEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errToken, err)
	}
	if _, ok := parseToken(b); !ok {
		return nil, fmt.Errorf("%w: expiry out of range", errToken)
	}
	return b, nil
}

// tokenChecker checks tokens under the server's secret with one reusable
// HMAC. It is not safe for concurrent use; the table's lock guards it.
type tokenChecker struct {
	h     hash.Hash
	label []byte
	sum   []byte
}

func newTokenChecker(secret []byte) *tokenChecker {
	return &tokenChecker{h: hmac.New(sha256.New, secret), label: []byte(tokenLabel), sum: make([]byte, 0, sha256.Size)}
}

// check says whether b, the token of a registration of steamID under
// appID received at now, admits it, and if not why. The MAC is checked
// first and in constant time: a token that was not made under the secret is
// invalid whatever its fields say.
func (c *tokenChecker) check(b []byte, steamID uint64, appID uint32, now time.Time) (RefuseReason, bool) {
	if len(b) == 0 {
		return RefuseTokenMissing, false
	}
	tk, ok := parseToken(b)
	if !ok {
		return RefuseTokenInvalid, false
	}
	c.h.Reset()
	c.h.Write(c.label)
	c.h.Write(tk.signed)
	c.sum = c.h.Sum(c.sum[:0])
	switch {
	case !hmac.Equal(c.sum, tk.mac):
		return RefuseTokenInvalid, false
	case now.Add(-TokenClockSkew).Unix() >= int64(tk.expiry):
		return RefuseTokenExpired, false
	case tk.steamID != steamID:
		return RefuseTokenWrongID, false
	case tk.appID != appID:
		return RefuseTokenWrongApp, false
	}
	return 0, true
}

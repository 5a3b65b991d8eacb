// Package stunpad makes the STUN and TURN requests of our own clients that a
// server answers before it has authenticated them at least as large as the
// answer, so that our clients never make a server amplify: a Binding request
// and the first, unauthenticated TURN Allocate are padded with a SOFTWARE
// attribute (comprehension-optional, so every server ignores it; RFC 8489
// section 14.14). A standard client's 20-byte request gets the same answers
// as before; the rendezvous server documents their factor and rate limit.
package stunpad

import (
	"strings"

	"github.com/pion/stun"
)

const (
	// BindingAnswer is the largest answer the rendezvous server gives a
	// Binding request: the header (20), XOR-MAPPED-ADDRESS of an IPv6
	// address (24) and FINGERPRINT (8).
	BindingAnswer = 20 + 24 + 8
	// UnauthenticatedTURNAnswer is the largest answer the embedded relay
	// (pion/turn v2's server) gives a TURN request it has not
	// authenticated, a 401 or a 438: the header (20), ERROR-CODE without a
	// reason phrase (8), NONCE of 80 hex digits (84) and REALM "p2pcompat"
	// (16). An authenticated request, which carries that NONCE, REALM, a
	// USERNAME and MESSAGE-INTEGRITY, is larger by itself.
	UnauthenticatedTURNAnswer = 20 + 8 + 84 + 16
)

const (
	attrHeader = 4
	name       = "p2pcompat"
)

// Software returns a SOFTWARE attribute that brings a message of size bytes
// without it to at least want bytes with it.
func Software(size, want int) stun.Software {
	n := want - size - attrHeader
	if n <= len(name) {
		return stun.NewSoftware(name)
	}
	return stun.NewSoftware(name + strings.Repeat(" ", n-len(name)))
}

// Request returns b, a datagram on its way to a TURN server, padded to at
// least want bytes if it is a STUN request other than Binding without
// MESSAGE-INTEGRITY: the request a server answers with a NONCE before it
// knows who asks. The transaction ID stays, so the answer still matches;
// a FINGERPRINT is made again, last. Anything else is returned as it is.
func Request(b []byte, want int) []byte {
	if len(b) >= want || len(b) < 20 || b[0]&0xC0 != 0 {
		return b
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type.Class != stun.ClassRequest || m.Type.Method == stun.MethodBinding || m.Contains(stun.AttrMessageIntegrity) {
		return b
	}
	out := &stun.Message{Type: m.Type, TransactionID: m.TransactionID}
	out.WriteHeader()
	fingerprint := false
	software := ""
	for _, a := range m.Attributes {
		switch a.Type {
		case stun.AttrFingerprint:
			fingerprint = true
		case stun.AttrSoftware:
			software = string(a.Value)
		default:
			out.Add(a.Type, a.Value)
		}
	}
	size := len(out.Raw)
	if fingerprint {
		size += 8
	}
	sw := Software(size, want)
	if software != "" {
		sw = stun.NewSoftware(software + strings.Repeat(" ", max(0, len(sw)-len(software))))
	}
	if sw.AddTo(out) != nil {
		return b
	}
	if fingerprint && stun.Fingerprint.AddTo(out) != nil {
		return b
	}
	return out.Raw
}

// BindingRequest is the Binding request of our own clients: FINGERPRINT,
// and SOFTWARE padding to BindingAnswer bytes.
func BindingRequest() (*stun.Message, error) {
	return stun.Build(stun.TransactionID, stun.BindingRequest, Software(20+8, BindingAnswer), stun.Fingerprint)
}

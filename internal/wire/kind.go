// Package wire holds what every datagram on the shared socket has in common:
// the first byte that tells STUN, TURN, rendezvous and peer traffic apart.
//
// STUN messages start with two zero bits (RFC 5389 §6) and TURN ChannelData
// with 0b01 (RFC 5766 §11), so our own kinds live above 0x80 and the reader
// can demultiplex on the first byte alone.
package wire

// Kind is the first byte of a datagram.
type Kind byte

const (
	// KindRendezvous marks a message between a peer and the rendezvous server.
	KindRendezvous Kind = 0xD0
	// KindHandshake marks a peer-to-peer handshake packet, sealed with the
	// key both peers derive from their rendezvous-vouched public keys.
	KindHandshake Kind = 0xE0
	// KindData marks a peer-to-peer data packet, sealed with session keys.
	KindData Kind = 0xE1
)

// Classify names the kind of a datagram; ok is false for an empty datagram.
func Classify(b []byte) (k Kind, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	return Kind(b[0]), true
}

// IsSTUN reports whether b may be a STUN message (first two bits zero).
func IsSTUN(b []byte) bool { return len(b) >= 20 && b[0]&0xC0 == 0 }

// IsChannelData reports whether b may be TURN ChannelData (first bits 01).
func IsChannelData(b []byte) bool { return len(b) >= 4 && b[0]&0xC0 == 0x40 }

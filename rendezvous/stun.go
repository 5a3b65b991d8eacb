package rendezvous

import (
	"encoding/binary"
	"net/netip"

	"github.com/pion/stun"
)

// The server's socket carries three protocols, told apart by the first
// byte of a datagram (RFC 7983): 0x00-0x03 STUN (and TURN, which is STUN),
// 0x40-0x7F TURN ChannelData, and wire.KindRendezvous.

const (
	stunHeaderLen   = 20
	stunMagicCookie = 0x2112A442
)

// isSTUN reports whether b looks like a STUN message: the first byte, the
// magic cookie, and a length that is the rest of the datagram.
func isSTUN(b []byte) bool {
	if len(b) < stunHeaderLen || b[0] > 0x03 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && stunHeaderLen+n == len(b)
}

// isChannelData reports whether b may be TURN ChannelData: a channel
// number in 0x4000-0x7FFF and room for its header.
func isChannelData(b []byte) bool {
	return len(b) >= 4 && b[0] >= 0x40 && b[0] <= 0x7F
}

// isBindingRequest reports whether b, which isSTUN, is a Binding request:
// the message type is in the first two bytes, and pion's constant says which.
func isBindingRequest(b []byte) bool {
	return binary.BigEndian.Uint16(b[0:2]) == stun.BindingRequest.Value()
}

// isIndication reports whether b, which isSTUN, is an indication: class
// bits C1 (0x0100) clear and C0 (0x0010) set (RFC 8489 section 5).
func isIndication(b []byte) bool {
	return binary.BigEndian.Uint16(b[0:2])&0x0110 == 0x0010
}

// stunResponder answers STUN Binding requests (RFC 8489) with the address
// they came from. It reuses its messages, so it belongs to one goroutine,
// the server's reader.
type stunResponder struct {
	req, resp stun.Message
}

// answer returns the Binding success response to b, a Binding request
// (isSTUN and isBindingRequest) from `from`, or nil if b is malformed. A
// FINGERPRINT, when there is one, must be right, and the answer carries one
// only then. The response is 32 bytes for an IPv4 source and 44 for an IPv6
// one, 8 more with FINGERPRINT, against a request of at least 20 (28 with
// FINGERPRINT): at most 1.6x for IPv4 and 2.2x for IPv6, for the minimal
// request a standard STUN client sends, which answering Binding requests,
// what a STUN server is for, cannot avoid; the per-source rate limit bounds
// it. Our own clients pad their requests to the largest answer
// (internal/stunpad), so they are never answered with more than they sent.
func (x *stunResponder) answer(b []byte, from netip.AddrPort) []byte {
	x.req.Raw = b
	if err := x.req.Decode(); err != nil || x.req.Type != stun.BindingRequest {
		return nil
	}
	fingerprint := x.req.Contains(stun.AttrFingerprint)
	if fingerprint {
		if err := stun.Fingerprint.Check(&x.req); err != nil {
			return nil
		}
	}
	x.resp.Reset()
	x.resp.TransactionID = x.req.TransactionID
	x.resp.Type = stun.BindingSuccess
	x.resp.WriteHeader()
	xor := stun.XORMappedAddress{IP: from.Addr().Unmap().AsSlice(), Port: int(from.Port())}
	err := xor.AddTo(&x.resp)
	if err == nil && fingerprint {
		err = stun.Fingerprint.AddTo(&x.resp)
	}
	x.req.Raw = nil
	if err != nil {
		return nil
	}
	return x.resp.Raw
}

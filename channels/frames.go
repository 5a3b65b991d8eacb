package channels

import (
	"encoding/binary"
	"errors"
	"math"
)

// Frame types inside one packet's plaintext. A packet is a sequence of
// frames; every frame but ACK asks the receiver for an acknowledgement.
const (
	frameUnreliable byte = 0x01 // channel, length, bytes
	frameStream     byte = 0x02 // stream offset, length, bytes
	frameAck        byte = 0x03 // largest, delay, window limit, ranges
	framePing       byte = 0x04 // nothing; elicits an ACK
)

// maxAckRanges bounds the ranges one ACK frame reports and one decoder accepts.
const maxAckRanges = 32

// ErrMalformed reports a packet payload that does not parse; the caller drops it.
var ErrMalformed = errors.New("channels: malformed packet")

// ackFrame is a decoded ACK frame. ranges are [lo, hi] inclusive, descending.
type ackFrame struct {
	largest   uint64
	delayUs   uint64
	maxOffset uint64
	ranges    [maxAckRanges]struct{ lo, hi uint64 }
	n         int
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// reader walks a payload; the first error sticks, so callers check once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrMalformed
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = ErrMalformed
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) ack(f *ackFrame) {
	f.largest = r.uvarint()
	f.delayUs = r.uvarint()
	f.maxOffset = r.uvarint()
	count := r.uvarint()
	first := r.uvarint()
	if r.err != nil {
		return
	}
	if count >= maxAckRanges || first > f.largest {
		r.err = ErrMalformed
		return
	}
	f.n = 0
	hi := f.largest
	lo := hi - first
	f.ranges[0] = struct{ lo, hi uint64 }{lo, hi}
	f.n = 1
	for i := uint64(0); i < count; i++ {
		gap := r.uvarint()
		length := r.uvarint()
		if r.err != nil {
			return
		}
		// The next range ends at least two below the previous start.
		if lo < gap+2 || lo-gap-2 < length {
			r.err = ErrMalformed
			return
		}
		hi = lo - gap - 2
		lo = hi - length
		f.ranges[f.n] = struct{ lo, hi uint64 }{lo, hi}
		f.n++
	}
}

// appendAck encodes the received set as an ACK frame, newest ranges first.
func appendAck(b []byte, recv *rangeSet, delayUs, maxOffset uint64) []byte {
	n := len(recv.s)
	if n == 0 {
		return b
	}
	if n > maxAckRanges {
		n = maxAckRanges
	}
	top := recv.s[len(recv.s)-1]
	b = append(b, frameAck)
	b = appendUvarint(b, top.end-1)
	b = appendUvarint(b, delayUs)
	b = appendUvarint(b, maxOffset)
	b = appendUvarint(b, uint64(n-1))
	b = appendUvarint(b, top.end-1-top.start)
	prevLo := top.start
	for i := len(recv.s) - 2; i >= len(recv.s)-n; i-- {
		sp := recv.s[i]
		hi := sp.end - 1
		b = appendUvarint(b, prevLo-hi-2)
		b = appendUvarint(b, hi-sp.start)
		prevLo = sp.start
	}
	return b
}

// maxChannel is the largest channel number on the wire: the API takes an int,
// and a 32-bit platform must be able to represent every channel it receives.
const maxChannel = math.MaxInt32

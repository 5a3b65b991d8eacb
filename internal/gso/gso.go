// Package gso gives a UDP socket the kernel's segmentation offloads where
// it has them: one sendmsg carries up to MaxSegments datagrams of one size
// to one address (UDP_SEGMENT), and one recvmsg returns a run of datagrams
// from one sender coalesced (UDP_GRO). On a system without them every
// function here reports false and callers keep to one datagram per call.
package gso

// MaxSegments is the most datagrams one segmented send may carry (the
// kernel's UDP_MAX_SEGMENTS on every version that has UDP_SEGMENT).
const MaxSegments = 64

// MaxBytes bounds the bytes of one segmented send: everything must fit one
// IP datagram's length field with the headers the kernel adds.
const MaxBytes = 65000

// ControlLen is the length of the control message SetSegmentControl
// writes, and of the buffer ReadControl needs to see a GRO segment size.
var ControlLen = controlLen

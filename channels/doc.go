// Package channels is the reliability engine of one session: the four send
// types of the session-less Steam API, per-channel messages, one ordered
// reliable stream across all channels, fragmentation and reassembly of
// messages up to 1 MiB, selective acknowledgements, RTT estimation, loss
// recovery, a congestion window, receive flow control and Nagle coalescing.
//
// It is pure logic in the sans-I/O style: no sockets, no goroutines, no
// clock of its own. The owner feeds it packets and the current time, drains
// the packets it wants sent, and calls OnTimer at Deadline. That makes every
// behaviour testable deterministically over simulated links.
//
// Wire shape: the reliable stream is a byte stream in which every message is
// framed as (channel uvarint, length uvarint, bytes). STREAM frames carry
// (offset, bytes) of that stream, so small buffered messages coalesce into
// one packet and large ones split across many. Unreliable messages travel in
// UNRELIABLE frames of their own. Packets are acknowledged by packet number,
// QUIC-style, and lost stream ranges are sent again in new packets.
package channels

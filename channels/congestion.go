package channels

import "time"

// congestion is NewReno over bytes (RFC 9002 §7): slow start, then one
// datagram per round trip, and one reduction per loss episode, to 0.7 of
// the window (CUBIC's factor, RFC 9438) rather than half, with a floor of
// eight datagrams: on a path with random loss, halving to two datagrams
// leaves a transfer crawling long after the loss said anything about
// congestion.
type congestion struct {
	cwnd              int
	ssthresh          int
	inFlight          int
	elicitingInFlight int
	recoveryStart     time.Time
}

const (
	datagramSize  = 1232
	initialWindow = 32 * datagramSize
	minWindow     = 8 * datagramSize
	maxWindow     = 16 << 20
)

func (c *congestion) init() {
	c.cwnd = initialWindow
	c.ssthresh = maxWindow
}

func (c *congestion) onSent(p *sentPacket) {
	if p.ackEliciting {
		c.inFlight += p.size
		c.elicitingInFlight++
	}
}

func (c *congestion) remove(p *sentPacket) {
	if p.ackEliciting {
		c.inFlight -= p.size
		c.elicitingInFlight--
	}
}

func (c *congestion) onAcked(p *sentPacket, now time.Time) {
	c.remove(p)
	if !p.ackEliciting || !p.sent.After(c.recoveryStart) && !c.recoveryStart.IsZero() {
		return
	}
	if c.cwnd < c.ssthresh {
		c.cwnd += p.size
	} else {
		c.cwnd += datagramSize * p.size / c.cwnd
	}
	if c.cwnd > maxWindow {
		c.cwnd = maxWindow
	}
}

func (c *congestion) onLost(p *sentPacket, now time.Time) {
	c.remove(p)
	if !c.recoveryStart.IsZero() && !p.sent.After(c.recoveryStart) {
		return // one reduction per loss episode
	}
	c.recoveryStart = now
	c.cwnd = c.cwnd * 7 / 10
	if c.cwnd < minWindow {
		c.cwnd = minWindow
	}
	c.ssthresh = c.cwnd
}

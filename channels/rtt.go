package channels

import "time"

// rttState estimates the round trip as RFC 6298 / RFC 9002 §5 do.
type rttState struct {
	smoothed, variance, min, latest time.Duration
	sampled                         bool
}

func (r *rttState) init(initial time.Duration) {
	r.smoothed = initial
	r.variance = initial / 2
}

func (r *rttState) update(sample, ackDelay time.Duration) {
	if sample <= 0 {
		sample = time.Microsecond
	}
	r.latest = sample
	if !r.sampled || sample < r.min {
		r.min = sample
	}
	// Subtract the peer's ack delay only where it does not push the sample
	// below the minimum ever seen (RFC 9002 §5.3).
	if sample-ackDelay >= r.min {
		sample -= ackDelay
	}
	if !r.sampled {
		r.sampled = true
		r.smoothed = sample
		r.variance = sample / 2
		return
	}
	d := r.smoothed - sample
	if d < 0 {
		d = -d
	}
	r.variance = (3*r.variance + d) / 4
	r.smoothed = (7*r.smoothed + sample) / 8
}

// lossDelay is how long after a later packet was acked an earlier one is
// declared lost (RFC 9002 §6.1.2: 9/8 of the larger RTT, at least 1 ms).
func (r *rttState) lossDelay() time.Duration {
	d := r.smoothed
	if r.latest > d {
		d = r.latest
	}
	d = d * 9 / 8
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}

// pto is the base probe timeout (RFC 9002 §6.2.1).
func (r *rttState) pto(maxAckDelay time.Duration) time.Duration {
	v := 4 * r.variance
	if v < time.Millisecond {
		v = time.Millisecond
	}
	return r.smoothed + v + maxAckDelay
}

// Package readerr tells a UDP read loop what to do with a read error, as
// quic-go's transport does: carry on after one that says nothing about the
// socket (a temporary error, a datagram too large for the buffer, an ICMP
// error the kernel queued on the socket), backing off while they repeat so
// that the loop does not spin; stop after any other, which will come back
// at every read.
package readerr

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// Transient reports whether err, from a read on a UDP socket that is not
// closed, leaves the socket usable.
func Transient(err error) bool {
	var ne net.Error
	//lint:ignore SA1019 Temporary is what marks the errors that a retry may cure (quic-go reads it too)
	if errors.As(err, &ne) && ne.Temporary() { //nolint:staticcheck
		return true
	}
	return errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}

// Backoff paces a loop through repeated transient errors: no wait for the
// first, then 1 ms doubling to 100 ms while they keep coming; a good read
// (Reset) starts it again.
type Backoff struct{ wait time.Duration }

// Next is how long to wait before reading again after a transient error.
func (b *Backoff) Next() time.Duration {
	d := b.wait
	switch {
	case b.wait == 0:
		b.wait = time.Millisecond
	case b.wait < 100*time.Millisecond:
		b.wait = min(2*b.wait, 100*time.Millisecond)
	}
	return d
}

// Reset is called after a good read.
func (b *Backoff) Reset() { b.wait = 0 }

// Wait waits Next's time, unless done is closed first, and reports
// whether the loop should go on reading.
func (b *Backoff) Wait(done <-chan struct{}) bool {
	d := b.Next()
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

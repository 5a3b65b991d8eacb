package relayfallback

import (
	"errors"

	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
)

var (
	// ErrUnauthorized means the TURN server refused our credentials: it
	// answered the authenticated Allocate with 401 Unauthorized, 441 Wrong
	// Credentials, or (as pion's own server does for an unknown user or a
	// wrong password) 400 Bad Request.
	ErrUnauthorized = errors.New("relayfallback: TURN server refused the credentials")
	// ErrTimeout means the TURN server did not answer in time: the context
	// ended first, or every retransmission went unanswered.
	ErrTimeout = errors.New("relayfallback: TURN server did not answer")
	// ErrRejected means the TURN server answered the Allocate with an error
	// other than a credentials error (for example 486 Allocation Quota
	// Reached or 508 Insufficient Capacity).
	ErrRejected = errors.New("relayfallback: TURN server refused the allocation")
	// ErrNotAllocated is returned by WriteTo before Allocate has succeeded.
	ErrNotAllocated = errors.New("relayfallback: no allocation")
	// ErrQueueFull is returned by WriteTo when the datagram had to wait for a
	// permission and the waiting queue was full; the datagram was dropped.
	ErrQueueFull = errors.New("relayfallback: send queue full, datagram dropped")
	// ErrTooManyPeers is returned by WriteTo for a new peer IP once the
	// client already tracks its maximum number of peer IPs and every one of
	// them was asked for by Permit or has writes waiting (the others make
	// room).
	ErrTooManyPeers = errors.New("relayfallback: too many peer addresses")
	// ErrNotIPv4 is returned by WriteTo for a peer that is not IPv4: the
	// allocation is an IPv4 one.
	ErrNotIPv4 = errors.New("relayfallback: the relay reaches IPv4 peers only")
)

// ConfigError is the error New returns for a Config it cannot use: Field
// names the field refused, Reason says why, and Config is
// "relayfallback.Config". It is the same type as the ConfigError of every
// other package of the module.
type ConfigError = cfgerr.Error

// sendError carries an error of Config.Send through pion, so that Allocate
// and WriteTo can tell a local send failure from a silent server.
type sendError struct{ err error }

func (e *sendError) Error() string { return "send: " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// errAborted fails pion's writes while an Allocate is being abandoned, so that
// no transaction it starts afterwards waits for an answer.
var errAborted = errors.New("relayfallback: allocation abandoned")

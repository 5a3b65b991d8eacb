package p2p

import (
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun"

	"github.com/p2pcompat/p2pcompat/internal/stunpad"
)

// The socket learns its server-reflexive address with a STUN Binding
// request to the rendezvous port, and so the mapping that peers punch to
// is the one this very socket has.

// STUN requests go again every stunRetry until answered, stunTries times.
const (
	stunRetry = time.Second
	stunTries = 8
)

type stunState struct {
	mu     sync.Mutex
	tries  int
	tx     [stun.TransactionIDSize]byte
	mapped netip.AddrPort
	done   chan struct{} // closed at the first answer
}

// requestMapping sends a Binding request to the rendezvous server, padded
// to the size of the largest answer, so that the server never answers us
// with more bytes than we sent.
func (n *Networking) requestMapping(server netip.AddrPort) {
	m, err := stunpad.BindingRequest()
	if err != nil {
		return
	}
	n.stun.mu.Lock()
	n.stun.tx = m.TransactionID
	n.stun.tries++
	n.stun.mu.Unlock()
	if err := n.writeTo(m.Raw, server); err != nil {
		n.log.Debug("p2p: STUN request not sent", "err", err)
	}
}

// handleSTUN takes a STUN message that no TURN client claimed; it reports
// whether it was the answer to our Binding request.
func (n *Networking) handleSTUN(b []byte, from netip.AddrPort) bool {
	if from != n.server {
		return false
	}
	var m stun.Message
	if err := stun.Decode(b, &m); err != nil || m.Type != stun.BindingSuccess {
		return false
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(&m); err != nil {
		return false
	}
	ip, ok := netip.AddrFromSlice(xor.IP)
	if !ok {
		return false
	}
	n.stun.mu.Lock()
	defer n.stun.mu.Unlock()
	if m.TransactionID != n.stun.tx {
		return false
	}
	n.stun.mapped = netip.AddrPortFrom(ip.Unmap(), uint16(xor.Port))
	select {
	case <-n.stun.done:
	default:
		close(n.stun.done)
	}
	return true
}

// MappedAddr is our server-reflexive address as STUN last reported it:
// where the rendezvous, and so most peers, see this socket. It waits up to
// timeout for the first answer; zero if none came.
func (n *Networking) MappedAddr(timeout time.Duration) netip.AddrPort {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-n.stun.done:
	case <-t.C:
	case <-n.done:
	}
	n.stun.mu.Lock()
	defer n.stun.mu.Unlock()
	return n.stun.mapped
}

// retryMapping sends the Binding request again while it is unanswered and
// tries remain; it reports whether it did.
func (n *Networking) retryMapping() bool {
	n.stun.mu.Lock()
	again := !n.stun.mapped.IsValid() && n.stun.tries > 0 && n.stun.tries < stunTries
	n.stun.mu.Unlock()
	if again {
		n.requestMapping(n.server)
	}
	return again
}

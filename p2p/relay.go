package p2p

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/p2pcompat/p2pcompat/relayfallback"
)

// The relay side of a Networking: one owned goroutine keeps a TURN
// allocation on the shared socket, from the servers in Config.Relays first
// and then those the rendezvous hands out, so that a session whose peers
// cannot reach each other directly still opens, about one round trip to
// the relay later.

const (
	relayAllocateTimeout = 10 * time.Second
	// relayRenewAhead is how long before its credentials expire an
	// allocation is replaced: the TURN server refreshes an allocation only
	// with valid credentials.
	relayRenewAhead = 2 * time.Minute
	relayRenewPause = time.Second
	relayRetryMin   = 2 * time.Second
	relayRetryMax   = time.Minute
)

type relaySide struct {
	mu      sync.Mutex
	offered []relayOffer  // from the rendezvous, newest list
	expires time.Time     // when the credentials of our allocation end; zero: never
	wake    chan struct{} // buffer 1: the server list changed
}

type relayOffer struct {
	srv     relayfallback.Server
	expires time.Time
}

func (n *Networking) relayServers() []relayOffer {
	n.rs.mu.Lock()
	defer n.rs.mu.Unlock()
	out := make([]relayOffer, 0, len(n.cfg.Relays)+len(n.rs.offered))
	for _, srv := range n.cfg.Relays {
		out = append(out, relayOffer{srv: srv})
	}
	return append(out, n.rs.offered...)
}

// knownRelay says whether ip is a relay we were handed or hold an
// allocation on, or the rendezvous server itself (whose port may be a
// relay too): a peer's relayed address there is one the operator runs,
// not an address of the peer's choosing (session.Config.KnownRelay).
func (n *Networking) knownRelay(ip netip.Addr) bool {
	if ip == n.server.Addr().Unmap() {
		return true
	}
	if rc := n.relay.Load(); rc != nil && (rc.ServerAddr().Addr().Unmap() == ip || rc.RelayedAddr().Addr().Unmap() == ip) {
		return true
	}
	for _, o := range n.relayServers() {
		if ap, err := netip.ParseAddrPort(o.srv.Addr); err == nil && ap.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// offerRelays takes the relays the rendezvous handed out.
func (n *Networking) offerRelays(servers []relayOffer) {
	n.rs.mu.Lock()
	n.rs.offered = servers
	n.rs.mu.Unlock()
	select {
	case n.rs.wake <- struct{}{}:
	default:
	}
}

// relayLoop allocates on the first relay that works and tries again,
// backing off, while none does.
func (n *Networking) relayLoop() {
	defer n.wg.Done()
	retry := relayRetryMin
	for {
		if rc := n.relay.Load(); rc != nil && n.relayExpiring() {
			// Replace it: make way for a new allocation on the same
			// server from the same socket, which the server would
			// otherwise refuse as a duplicate. The client keeps
			// receiving until Close has its deallocation answered.
			n.relay.Store(nil)
			rc.Close()
			n.turn.CompareAndSwap(rc, nil)
			// A server may still be tearing the old allocation down, by
			// its 5-tuple, which the new one shares (pion's server does
			// so from the old relay socket's reader): give it a moment,
			// or the late teardown takes the new allocation with it.
			t := time.NewTimer(relayRenewPause)
			select {
			case <-t.C:
			case <-n.done:
				t.Stop()
				return
			}
		}
		if n.relay.Load() == nil {
			if n.allocate() {
				retry = relayRetryMin
			} else if len(n.relayServers()) > 0 {
				retry = min(2*retry, relayRetryMax)
			}
		}
		// Sleep until something is due: a retry while relays fail, the
		// renewal of the one we hold; with no relay to try, until the
		// rendezvous offers one (wake).
		wait := time.Hour
		if len(n.relayServers()) > 0 {
			wait = retry
		}
		if n.relay.Load() != nil {
			wait = time.Hour
			n.rs.mu.Lock()
			if exp := n.rs.expires; !exp.IsZero() {
				wait = max(time.Until(exp.Add(-relayRenewAhead)), relayRetryMin)
			}
			n.rs.mu.Unlock()
		}
		if n.retryMapping() {
			wait = min(wait, stunRetry) // the STUN answer is still missing
		}
		t := time.NewTimer(wait)
		select {
		case <-n.rs.wake:
		case <-t.C:
		case <-n.done:
			t.Stop()
			n.closeRelay() // one finished between Close's and ours
			return
		}
		t.Stop()
	}
}

// relayExpiring reports whether the credentials of our allocation end soon.
func (n *Networking) relayExpiring() bool {
	n.rs.mu.Lock()
	defer n.rs.mu.Unlock()
	return !n.rs.expires.IsZero() && time.Until(n.rs.expires) < relayRenewAhead
}

func (n *Networking) allocate() bool {
	for _, o := range n.relayServers() {
		if n.closed.Load() {
			return false
		}
		if !o.expires.IsZero() && time.Until(o.expires) < relayRenewAhead {
			continue // stale: the rendezvous sends new ones on our next registration
		}
		srv := o.srv
		rc, err := relayfallback.New(relayfallback.Config{
			Server: srv,
			Send:   n.writeTo,
			OnData: func(b []byte, from netip.AddrPort) {
				if n.sim != nil {
					n.sim.handle(simRecvRelay, b, from)
					return
				}
				n.mgr.HandlePacket(b, from, true)
			},
			Net:    n.cfg.Net,
			Logger: n.log,
		})
		if err != nil {
			n.log.Warn("p2p: relay unusable", "relay", srv.Addr, "err", err)
			continue
		}
		n.turn.Store(rc) // its answers must reach it while it allocates
		ctx, cancel := context.WithTimeout(context.Background(), relayAllocateTimeout)
		go func() {
			select {
			case <-n.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		addr, err := rc.Allocate(ctx)
		cancel()
		if err != nil {
			rc.Close()
			n.turn.CompareAndSwap(rc, nil)
			if !n.closed.Load() {
				n.log.Warn("p2p: relay allocation failed", "relay", srv.Addr, "err", err)
			}
			continue
		}
		n.rs.mu.Lock()
		n.rs.expires = o.expires
		n.rs.mu.Unlock()
		n.relay.Store(rc)
		n.log.Debug("p2p: relayed address", "relay", srv.Addr, "addr", addr)
		n.announceRelayed(addr)
		n.mgr.RelayReady()
		return true
	}
	return false
}

// handleTURN gives a datagram that looks like STUN or ChannelData to our
// TURN client; false if it was not for it.
func (n *Networking) handleTURN(b []byte, from netip.AddrPort) bool {
	rc := n.turn.Load()
	return rc != nil && rc.HandleInbound(b, from)
}

func (n *Networking) closeRelay() {
	if rc := n.turn.Load(); rc != nil {
		if err := rc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			n.log.Debug("p2p: relay close", "err", err)
		}
	}
}

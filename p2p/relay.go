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
	relayRetryMin        = 2 * time.Second
	relayRetryMax        = time.Minute
)

type relaySide struct {
	mu      sync.Mutex
	offered []relayfallback.Server // from the rendezvous, newest list
	wake    chan struct{}          // buffer 1: the server list changed
}

func (n *Networking) relayServers() []relayfallback.Server {
	n.rs.mu.Lock()
	defer n.rs.mu.Unlock()
	return append(append([]relayfallback.Server(nil), n.cfg.Relays...), n.rs.offered...)
}

// offerRelays takes the relays the rendezvous handed out.
func (n *Networking) offerRelays(servers []relayfallback.Server) {
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
	wait := relayRetryMin
	for {
		if n.relay.Load() == nil {
			if n.allocate() {
				wait = relayRetryMin
			} else if len(n.relayServers()) > 0 {
				wait = min(2*wait, relayRetryMax)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-n.rs.wake:
		case <-t.C:
		case <-n.done:
			t.Stop()
			return
		}
		t.Stop()
	}
}

func (n *Networking) allocate() bool {
	for _, srv := range n.relayServers() {
		rc, err := relayfallback.New(relayfallback.Config{
			Server: srv,
			Send:   n.writeTo,
			OnData: func(b []byte, from netip.AddrPort) { n.mgr.HandlePacket(b, from, true, time.Now()) },
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
			n.turn.Store(nil)
			rc.Close()
			if !n.closed.Load() {
				n.log.Warn("p2p: relay allocation failed", "relay", srv.Addr, "err", err)
			}
			continue
		}
		n.relay.Store(rc)
		n.log.Debug("p2p: relayed address", "relay", srv.Addr, "addr", addr)
		n.announceRelayed(addr)
		n.mgr.RelayReady(time.Now())
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

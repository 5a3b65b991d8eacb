package relayfallback

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun"

	"github.com/p2pcompat/p2pcompat/internal/stunpad"
)

// permState is where the permission for one peer IP stands.
type permState uint8

const (
	permNone permState = iota
	permRequesting
	permInstalled
	permFailed
)

// peerIP is one peer IP: the permission that lets it reach our relayed
// address and lets us send to it.
type peerIP struct {
	state permState
	// permitted: asked for by Permit, so kept and renewed even with
	// nothing to send.
	permitted bool
	port      uint16 // the last port seen; permissions ignore it
	failedAt  time.Time
	// pending counts this IP's writes in the queue; while there are any,
	// new writes queue behind them to keep their order.
	pending int
}

// bindState is where the channel binding for one peer address stands.
type bindState uint8

const (
	bindNone bindState = iota
	bindRequesting
	bindBound
	bindFailed
)

// channel is the channel binding for one peer address.
type channel struct {
	peer   netip.AddrPort
	from   *net.UDPAddr // read-only; handed to pion with each inbound datagram
	number uint16
	state  bindState
	// boundAt is the last successful bind; failedAt the last failed one.
	boundAt, failedAt time.Time
	// revokedAt: Revoke stopped renewing it. The server keeps the binding
	// until it lapses and may still send ChannelData on its number, so
	// the number stays known until then, and is reused if the peer is
	// permitted again (the server would refuse another number for it).
	revokedAt time.Time
}

type queuedWrite struct {
	b    []byte
	peer netip.AddrPort
	ip   *peerIP // its state when queued; a Revoke in between drops the write
}

const (
	// bindRefreshAge: a binding lives 10 minutes on the server; renewed at
	// the first two-minute tick after this age, it never lapses.
	bindRefreshAge = 5 * time.Minute
	// bindLifetime is how long a server keeps a binding that is not
	// refreshed (RFC 8656 §12).
	bindLifetime = 10 * time.Minute
	// bindRetryBackoff: after a refused ChannelBind, datagrams go as Send
	// indications and the bind is tried again after this long.
	bindRetryBackoff = 30 * time.Second
)

// WriteTo sends b to peer through the relay and never waits for the
// network. Once the relay holds a permission for the peer's IP, the datagram
// goes out on the caller's goroutine: as ChannelData when the peer's channel
// is bound (4 bytes of overhead), as a Send indication until then (the
// binding is made in the background). Before the permission exists, b is
// copied to a bounded queue that the client's worker goroutine sends, in
// order, once the CreatePermission round trip is done. WriteTo does not keep
// b.
//
// Errors: ErrNotAllocated before Allocate, net.ErrClosed after Close,
// ErrQueueFull (the datagram was dropped), ErrTooManyPeers, ErrNotIPv4, or
// the error of Config.Send.
func (c *Client) WriteTo(b []byte, peer netip.AddrPort) error {
	peer = canonical(peer)
	if !peer.Addr().Is4() || peer.Port() == 0 {
		return fmt.Errorf("relayfallback: write to %v: %w", peer, ErrNotIPv4)
	}
	if len(b) > maxPayload {
		return fmt.Errorf("relayfallback: write to %v: %w", peer, errTooLarge)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("relayfallback: write: %w", net.ErrClosed)
	}
	if c.relayConn == nil {
		c.mu.Unlock()
		return ErrNotAllocated
	}
	ip := c.ips[peer.Addr()]
	if ip != nil && ip.state == permInstalled && ip.pending == 0 {
		number, bind := c.channelFor(peer)
		c.mu.Unlock()
		if bind {
			c.wakeWorker()
		}
		return c.send(b, peer, number)
	}
	if ip == nil {
		if len(c.ips) >= maxPeers && !c.evictLocked() {
			c.mu.Unlock()
			return fmt.Errorf("relayfallback: write to %v: %w", peer, ErrTooManyPeers)
		}
		ip = &peerIP{port: peer.Port()}
		c.ips[peer.Addr()] = ip
	}
	if len(c.queue) >= maxQueued || c.queuedBytes+len(b) > maxQueuedBytes {
		c.mu.Unlock()
		return fmt.Errorf("relayfallback: write to %v: %w", peer, ErrQueueFull)
	}
	c.queue = append(c.queue, queuedWrite{b: append([]byte(nil), b...), peer: peer, ip: ip})
	c.queuedBytes += len(b)
	ip.pending++
	c.mu.Unlock()
	c.wakeWorker()
	return nil
}

// channelFor returns the bound channel number for peer (0 if none yet) and
// whether a binding was just created, for the worker to make. c.mu is held.
func (c *Client) channelFor(peer netip.AddrPort) (number uint16, created bool) {
	if ch := c.chans[peer]; ch != nil {
		if !ch.revokedAt.IsZero() {
			ch.revokedAt = time.Time{}
			if ch.state == bindBound && time.Since(ch.boundAt) >= bindLifetime {
				ch.state = bindNone // lapsed on the server: bind the same number again
				return 0, true
			}
		}
		if ch.state == bindBound {
			return ch.number, false
		}
		return 0, false
	}
	if len(c.chans) >= maxPeers {
		return 0, false // Send indications only
	}
	for range maxChannel - minChannel + 1 {
		n := c.nextChannel
		c.nextChannel++
		if c.nextChannel > maxChannel {
			c.nextChannel = minChannel
		}
		if c.byNumber[n] == nil {
			ch := &channel{peer: peer, from: net.UDPAddrFromAddrPort(peer), number: n}
			c.chans[peer] = ch
			c.byNumber[n] = ch
			return 0, true
		}
	}
	return 0, false
}

func (c *Client) send(b []byte, peer netip.AddrPort, number uint16) error {
	var err error
	if number != 0 {
		err = c.sendChannelData(number, b)
	} else {
		err = c.sendIndication(b, peer)
	}
	if err != nil {
		var se *sendError
		if errors.As(err, &se) {
			err = se.err
		}
		return fmt.Errorf("relayfallback: write to %v: %w", peer, err)
	}
	return nil
}

// Permit asks the relay to let the given peers' IPs send to our relayed
// address (TURN permissions are per IP; ports are ignored). It returns at
// once: the CreatePermission runs on the client's worker (after the
// allocation, if there is none yet), and the client renews it every two
// minutes until Revoke or Close. Non-IPv4 peers are ignored.
func (c *Client) Permit(peers ...netip.AddrPort) {
	added, full := false, false
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for _, p := range peers {
		p = canonical(p)
		if !p.Addr().Is4() {
			continue
		}
		ip := c.ips[p.Addr()]
		if ip == nil {
			if len(c.ips) >= maxPeers && !c.evictLocked() {
				full = true
				break
			}
			ip = &peerIP{port: p.Port()}
			c.ips[p.Addr()] = ip
		}
		if !ip.permitted || ip.state != permInstalled {
			added = true
		}
		ip.permitted = true
	}
	c.mu.Unlock()
	if full {
		c.log.Warn("relayfallback: too many peer addresses; some not permitted", "max", maxPeers)
	}
	if added {
		c.wakeWorker()
	}
}

// Revoke forgets the peers' IPs: the client stops renewing their permissions
// and channel bindings (which then lapse on the server within 5 and 10
// minutes), drops their queued writes, and the next WriteTo to one of them
// starts over with a new permission. Call it when a session ends, since the
// client otherwise renews every peer it has seen for as long as it lives.
func (c *Client) Revoke(peers ...netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range peers {
		c.forgetLocked(canonical(p).Addr())
	}
}

// forgetLocked is Revoke for one IP. c.mu is held.
func (c *Client) forgetLocked(addr netip.Addr) {
	if _, ok := c.ips[addr]; !ok {
		return
	}
	delete(c.ips, addr)
	for ap, ch := range c.chans {
		if ap.Addr() == addr {
			ch.revokedAt = time.Now()
		}
	}
}

// evictLocked makes room in a full peer table: it forgets one IP that no
// Permit asked for and no queued write waits on, a failed one first. Such
// an entry is only the trace of writes that went out (to a peer's host
// address, say) and nothing renews it for a session the caller keeps, so a
// table full of them must not keep a new peer of an accepted session out.
// It reports whether it made room; IPs that Permit asked for are never
// evicted. c.mu is held.
func (c *Client) evictLocked() bool {
	var victim netip.Addr
	for addr, ip := range c.ips {
		if ip.permitted || ip.pending > 0 || ip.state == permRequesting {
			continue
		}
		victim = addr
		if ip.state == permFailed {
			break
		}
	}
	if !victim.IsValid() {
		return false
	}
	c.forgetLocked(victim)
	return true
}

// PeerIPs returns the peer IPs the client holds a permission for or is
// asking one for, in no order: those that Permit asked for and those that
// WriteTo sent to, until Revoke, eviction or Close. It is for diagnostics
// and tests.
func (c *Client) PeerIPs() []netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]netip.Addr, 0, len(c.ips))
	for addr := range c.ips {
		out = append(out, addr)
	}
	return out
}

func (c *Client) wakeWorker() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// readLoop is the client's reader goroutine: it delivers what peers send to
// the relayed address (Data indications, which pion decodes, and our
// ChannelData, which HandleInbound hands to pion's relayed conn), until
// Close closes the relayed conn.
func (c *Client) readLoop(conn net.PacketConn) {
	defer c.wg.Done()
	buf := make([]byte, readBufferSize)
	for {
		n, from, err := conn.ReadFrom(buf)
		if errors.Is(err, io.ErrShortBuffer) {
			continue
		}
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || c.cfg.OnData == nil {
			continue
		}
		c.cfg.OnData(buf[:n], canonical(ua.AddrPort()))
	}
}

// workLoop is the client's worker goroutine. It owns every step that waits
// for the server: permissions, channel bindings, their renewal, and the
// keepalive. One timer serves both deadlines.
//
// The client does not use pion's relayed conn for sending: its WriteTo
// blocks the caller for the CreatePermission round trip of a new peer IP,
// renews a channel binding only when a write comes more than 5 minutes after
// the last renewal (so the first datagram after 10 idle minutes is lost),
// and that renewal races (in the Go memory model sense) with the write that
// started it.
func (c *Client) workLoop() {
	defer c.wg.Done()
	nextRefresh := time.Now().Add(c.permitRefresh)
	timer := time.NewTimer(c.permitRefresh)
	defer timer.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-c.wake:
		case <-timer.C:
		}
		if now := time.Now(); !now.Before(nextRefresh) {
			c.renew()
			nextRefresh = now.Add(c.permitRefresh)
		}
		for !c.stopping() {
			did := c.installPermissions()
			did = c.drainQueue() || did
			did = c.bindOne() || did
			if !did {
				break
			}
		}
		if time.Since(c.conn.idleSince()) >= c.keepalive {
			c.sendKeepalive()
		}
		next := c.conn.idleSince().Add(c.keepalive)
		if nextRefresh.Before(next) {
			next = nextRefresh
		}
		timer.Reset(time.Until(next))
	}
}

func (c *Client) stopping() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// installPermissions requests the permissions that are wanted and missing
// (new, or failed longer ago than the backoff). It reports whether it tried.
func (c *Client) installPermissions() bool {
	now := time.Now()
	var ips []*peerIP
	var attrs []stun.Setter
	c.mu.Lock()
	for addr, ip := range c.ips {
		wanted := ip.pending > 0 || ip.permitted
		retry := ip.state == permFailed && now.Sub(ip.failedAt) >= permitRetryBackoff
		if wanted && (ip.state == permNone || retry) {
			ip.state = permRequesting
			ips = append(ips, ip)
			attrs = append(attrs, peerAddress(netip.AddrPortFrom(addr, ip.port)))
		}
	}
	c.mu.Unlock()
	c.permitBatches(ips, attrs, true)
	return len(ips) > 0
}

// permitBatches sends CreatePermission for ips, permitBatch at a time. With
// settle it records the outcome in each IP's state; a failed renewal only
// logs, since the permission may well still be in place.
func (c *Client) permitBatches(ips []*peerIP, attrs []stun.Setter, settle bool) {
	for i := 0; i < len(attrs); i += permitBatch {
		j := min(i+permitBatch, len(attrs))
		var err error
		if !c.stopping() {
			err = c.request(stun.MethodCreatePermission, attrs[i:j]...)
		} else {
			err = net.ErrClosed
		}
		if err != nil && j-i > 1 && !c.stopping() {
			// A server refuses a whole request for one peer it will not
			// relay to (its own address, a private one): ask for each
			// peer alone, so that the others still get theirs.
			for k := i; k < j; k++ {
				var one []*peerIP
				if settle {
					one = ips[k : k+1]
				}
				c.permitBatches(one, attrs[k:k+1], settle)
			}
			continue
		}
		if settle {
			c.mu.Lock()
			for _, ip := range ips[i:j] {
				if err == nil {
					ip.state, ip.failedAt = permInstalled, time.Time{}
				} else {
					ip.state, ip.failedAt = permFailed, time.Now()
				}
			}
			c.mu.Unlock()
		}
		if err != nil && !c.stopping() {
			c.log.Warn("relayfallback: CreatePermission failed", "peers", j-i, "err", err)
		}
	}
}

// drainQueue sends the queued writes in order, as far as their permissions
// allow: a write whose IP is still waiting for one stops it (the loop in
// workLoop requests the permission and comes back). It reports whether it
// took any write off the queue.
func (c *Client) drainQueue() bool {
	progressed := false
	for !c.stopping() {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return progressed
		}
		w := c.queue[0]
		revoked := c.ips[w.peer.Addr()] != w.ip
		state := w.ip.state
		drop := revoked || (state == permFailed && time.Since(w.ip.failedAt) < permitRetryBackoff)
		if !drop && state != permInstalled {
			c.mu.Unlock()
			return progressed
		}
		c.queue[0] = queuedWrite{}
		c.queue = c.queue[1:]
		c.queuedBytes -= len(w.b)
		var number uint16
		if !drop {
			// A new binding is made by bindOne, next in the same pass.
			number, _ = c.channelFor(w.peer)
		}
		c.mu.Unlock()

		var err error
		if !drop {
			err = c.send(w.b, w.peer, number)
		}
		// Only now may WriteTo send to this IP itself: it must not overtake
		// the write just sent.
		c.mu.Lock()
		w.ip.pending--
		c.mu.Unlock()
		progressed = true
		if err != nil && !c.stopping() {
			c.log.Debug("relayfallback: relayed write failed", "peer", w.peer, "err", err)
		}
	}
	return progressed
}

// bindOne makes one wanted channel binding (new, or refused longer ago than
// the backoff). It reports whether it tried.
func (c *Client) bindOne() bool {
	now := time.Now()
	var ch *channel
	c.mu.Lock()
	for _, x := range c.chans {
		if x.state == bindNone || (x.state == bindFailed && now.Sub(x.failedAt) >= bindRetryBackoff) {
			ch = x
			break
		}
	}
	if ch != nil {
		ch.state = bindRequesting
	}
	c.mu.Unlock()
	if ch == nil {
		return false
	}
	c.bind(ch)
	return true
}

func (c *Client) bind(ch *channel) {
	err := c.request(stun.MethodChannelBind, peerAddress(ch.peer), channelNumber(ch.number))
	c.mu.Lock()
	if err == nil {
		ch.state, ch.boundAt = bindBound, time.Now()
	} else {
		ch.state, ch.failedAt = bindFailed, time.Now()
	}
	c.mu.Unlock()
	if err != nil && !c.stopping() {
		c.log.Debug("relayfallback: ChannelBind failed; using Send indications", "peer", ch.peer, "err", err)
	}
}

// renew refreshes every installed permission and every binding older than
// bindRefreshAge. A bound channel stays in use while it is renewed.
func (c *Client) renew() {
	now := time.Now()
	var attrs []stun.Setter
	var old []*channel
	c.mu.Lock()
	for addr, ip := range c.ips {
		if ip.state == permInstalled {
			attrs = append(attrs, peerAddress(netip.AddrPortFrom(addr, ip.port)))
		}
	}
	for ap, ch := range c.chans {
		if !ch.revokedAt.IsZero() {
			if now.Sub(ch.boundAt) >= bindLifetime || ch.state != bindBound {
				delete(c.chans, ap) // lapsed on the server too: forget it
				delete(c.byNumber, ch.number)
			}
			continue
		}
		if ch.state == bindBound && now.Sub(ch.boundAt) >= bindRefreshAge {
			old = append(old, ch)
		}
	}
	c.mu.Unlock()
	c.permitBatches(nil, attrs, false)
	for _, ch := range old {
		if c.stopping() {
			return
		}
		c.bind(ch)
	}
}

// sendKeepalive sends a Binding request to the server, padded to the size
// of the rendezvous server's largest answer; HandleInbound recognises the
// answer and drops it.
func (c *Client) sendKeepalive() {
	msg, err := stunpad.BindingRequest()
	if err != nil {
		return
	}
	c.obs.addKeepalive(msg.TransactionID)
	if err := c.conn.write(msg.Raw, c.server, false); err != nil && !c.stopping() {
		c.log.Debug("relayfallback: keepalive", "err", err)
	}
}

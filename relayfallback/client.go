package relayfallback

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun"
	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/turn/v2"

	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
)

// Server names a TURN server and its credentials.
type Server struct {
	Addr, Username, Password string
}

// Config configures a Client. The zero value of every optional field is a
// working default.
type Config struct {
	// Server is the TURN server; Server.Addr ("host:port") is required.
	Server Server
	// Send writes one datagram on the shared socket. It is required, must be
	// safe for concurrent use, must not block long and must not keep b.
	Send func(b []byte, to netip.AddrPort) error
	// OnData receives a datagram that a peer sent to our relayed address;
	// from is the peer's address as the relay saw it. It is called from the
	// client's one reader goroutine, never with a lock of the client held; it
	// must not block long and must not keep b after it returns.
	OnData func(b []byte, from netip.AddrPort)
	// Net resolves Server.Addr; nil means the real network.
	Net transport.Net
	// Logger receives the client's and pion's logs; nil discards them.
	Logger *slog.Logger
	// RTO is the first retransmission timeout of TURN transactions; pion
	// doubles it per retry up to 1.6 s, for 7 transmissions in all. 0 means
	// pion's default of 200 ms, which gives up after about 7.8 s.
	RTO time.Duration
}

func (cfg Config) validate() error {
	if cfg.Server.Addr == "" {
		return cfgerr.New("relayfallback.Config", "Server.Addr", "required: host:port of the TURN server")
	}
	if cfg.Send == nil {
		return cfgerr.New("relayfallback.Config", "Send", "required")
	}
	if cfg.RTO < 0 {
		return cfgerr.Negative("relayfallback.Config", "RTO")
	}
	return nil
}

const (
	// defaultRTO restates pion's default; it sizes our wait for the
	// deallocation answer.
	defaultRTO = 200 * time.Millisecond
	// keepaliveInterval: with nothing else sent to the server for this
	// long, a Binding request keeps our NAT's mapping toward it alive. NATs
	// forget idle UDP mappings after as little as 30 s, renewals go out
	// only every two minutes, and under a new mapping the server no longer
	// knows the allocation.
	keepaliveInterval = 15 * time.Second
	// permitRefreshInterval is the worker's renewal tick: every installed
	// permission (servers keep one for 5 minutes, RFC 5766 §8) and every
	// channel binding older than bindRefreshAge.
	permitRefreshInterval = 2 * time.Minute
	// permitRetryBackoff: after a failed permission for an IP, writes to it
	// are dropped for this long instead of each paying another round trip.
	permitRetryBackoff = time.Second
	// permitBatch caps the peers of one CreatePermission request.
	permitBatch = 16
	// maxQueued and maxQueuedBytes bound the writes waiting for a
	// permission.
	maxQueued      = 256
	maxQueuedBytes = 256 << 10
	// maxPeers bounds the peer IPs the client tracks (written to or
	// permitted), and separately its channel bindings; peers beyond it get
	// Send indications. A full table makes room by forgetting an IP that
	// was only written to (evictLocked).
	maxPeers = 1024
	// readBufferSize fits any UDP payload.
	readBufferSize = 1 << 16
)

// Client is a TURN client on the shared socket. Its methods are safe for
// concurrent use.
type Client struct {
	cfg       Config
	log       *slog.Logger
	server    netip.AddrPort
	serverUDP *net.UDPAddr // read-only; handed to pion for every inbound message
	turn      *turn.Client
	conn      *sharedConn
	obs       *observer

	deallocWait   time.Duration
	permitRefresh time.Duration
	keepalive     time.Duration

	// allocSem serialises Allocate, and Close takes it to wait one out.
	allocSem  chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	closeDone chan struct{}
	wake      chan struct{}
	wg        sync.WaitGroup

	// auth signs the client's own requests; set by Allocate before the
	// worker starts, read-only after.
	auth struct {
		username  stun.Username
		realm     stun.Realm
		integrity stun.MessageIntegrity
	}

	mu          sync.Mutex
	closed      bool
	relayConn   net.PacketConn
	inbound     inboundHandler // relayConn, for our ChannelData
	relayed     netip.AddrPort
	queue       []queuedWrite
	queuedBytes int
	ips         map[netip.Addr]*peerIP
	chans       map[netip.AddrPort]*channel
	byNumber    map[uint16]*channel
	nextChannel uint16
}

// inboundHandler is the method of pion's relayed conn that queues a
// datagram for its ReadFrom, as pion does itself for Data indications.
type inboundHandler interface {
	HandleInbound(data []byte, from net.Addr)
}

// New validates cfg and resolves the server's address. It sends nothing.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Net == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("relayfallback: network: %w", err)
		}
		cfg.Net = n
	}
	ua, err := cfg.Net.ResolveUDPAddr("udp4", cfg.Server.Addr)
	if err != nil {
		return nil, fmt.Errorf("relayfallback: resolve %q: %w", cfg.Server.Addr, err)
	}
	server := canonical(ua.AddrPort())
	if !server.Addr().Is4() || server.Port() == 0 {
		return nil, cfgerr.New("relayfallback.Config", "Server.Addr", fmt.Sprintf("%q does not name an IPv4 address and port", cfg.Server.Addr))
	}
	rto := cfg.RTO
	if rto == 0 {
		rto = defaultRTO
	}
	obs := newObserver()
	c := &Client{
		cfg:           cfg,
		log:           cfg.Logger,
		server:        server,
		serverUDP:     net.UDPAddrFromAddrPort(server),
		obs:           obs,
		conn:          newSharedConn(cfg.Send, obs),
		deallocWait:   max(3*rto, 50*time.Millisecond),
		permitRefresh: permitRefreshInterval,
		keepalive:     keepaliveInterval,
		allocSem:      make(chan struct{}, 1),
		closing:       make(chan struct{}),
		closeDone:     make(chan struct{}),
		wake:          make(chan struct{}, 1),
		ips:           make(map[netip.Addr]*peerIP),
		chans:         make(map[netip.AddrPort]*channel),
		byNumber:      make(map[uint16]*channel),
		nextChannel:   minChannel,
	}
	c.turn, err = turn.NewClient(&turn.ClientConfig{
		// Already resolved: pion resolves again through Net, and an
		// address literal costs no lookup. No STUNServerAddr: the caller
		// does its own STUN on the shared socket.
		TURNServerAddr: server.String(),
		Username:       cfg.Server.Username,
		Password:       cfg.Server.Password,
		RTO:            cfg.RTO,
		Conn:           c.conn,
		Net:            cfg.Net,
		LoggerFactory:  slogFactory{cfg.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("relayfallback: %w", err)
	}
	return c, nil
}

// ServerAddr returns the TURN server's resolved address: the address whose
// datagrams belong to HandleInbound.
func (c *Client) ServerAddr() netip.AddrPort { return c.server }

// RelayedAddr returns our relayed address, or the zero AddrPort before
// Allocate has succeeded and after Close.
func (c *Client) RelayedAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.relayed
}

// Allocate performs the TURN allocation and returns our relayed address. It
// returns at once with the address if the client already has an allocation;
// concurrent calls wait for each other. pion's Allocate takes no context, so
// when ctx ends first the attempt is abandoned (its transactions are closed)
// and Allocate may be called again.
//
// Errors wrap ErrUnauthorized (wrong credentials), ErrTimeout (no answer
// before ctx's deadline or after all retransmissions), ErrRejected (another
// error answer), the error of Config.Send, ctx.Err(), or net.ErrClosed.
func (c *Client) Allocate(ctx context.Context) (netip.AddrPort, error) {
	select {
	case c.allocSem <- struct{}{}:
	case <-c.closing:
		return netip.AddrPort{}, fmt.Errorf("relayfallback: allocate: %w", net.ErrClosed)
	case <-ctx.Done():
		return netip.AddrPort{}, c.abandoned(ctx.Err())
	}
	defer func() { <-c.allocSem }()

	c.mu.Lock()
	closed, relayed := c.closed, c.relayed
	c.mu.Unlock()
	if closed {
		return netip.AddrPort{}, fmt.Errorf("relayfallback: allocate: %w", net.ErrClosed)
	}
	if relayed.IsValid() {
		return relayed, nil
	}

	type result struct {
		conn net.PacketConn
		err  error
	}
	c.obs.startAllocate()
	done := make(chan result, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		conn, err := c.turn.Allocate()
		done <- result{conn, err}
	}()
	var r result
	var stopped error
	select {
	case r = <-done:
	case <-ctx.Done():
		stopped = ctx.Err()
	case <-c.closing:
		stopped = net.ErrClosed
	}
	if stopped != nil {
		// Fail every write pion attempts from now on and close the
		// transactions it waits on, so that its Allocate returns now
		// whatever step it is in.
		c.conn.abort.Store(true)
		c.turn.Close()
		r = <-done
		c.conn.abort.Store(false)
	}
	if r.err != nil {
		return netip.AddrPort{}, c.allocateError(r.err, stopped)
	}

	ua, _ := r.conn.LocalAddr().(*net.UDPAddr)
	if ua != nil {
		relayed = canonical(ua.AddrPort())
	}
	inbound, _ := r.conn.(inboundHandler)
	realm := c.turn.Realm()
	c.auth.username = stun.NewUsername(c.cfg.Server.Username)
	c.auth.realm = append(stun.Realm(nil), realm...)
	c.auth.integrity = stun.NewLongTermIntegrity(c.cfg.Server.Username, realm.String(), c.cfg.Server.Password)
	c.mu.Lock()
	c.relayConn = r.conn // even when closing: Close deallocates it
	c.inbound = inbound
	c.relayed = relayed
	closed = c.closed
	if !closed {
		c.wg.Add(2)
	}
	c.mu.Unlock()
	if closed {
		return netip.AddrPort{}, fmt.Errorf("relayfallback: allocate: %w", net.ErrClosed)
	}
	if inbound == nil {
		c.log.Error("relayfallback: pion's relayed conn cannot take ChannelData; only Send indications will arrive")
	}
	go c.readLoop(r.conn)
	go c.workLoop()
	c.wakeWorker() // Permit calls made before the allocation
	c.log.Info("relayfallback: allocated", "server", c.server, "relayed", relayed)
	return relayed, nil
}

func (c *Client) abandoned(ctxErr error) error {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return fmt.Errorf("relayfallback: allocate at %v: %w: %w", c.server, ErrTimeout, ctxErr)
	}
	return fmt.Errorf("relayfallback: allocate at %v: %w", c.server, ctxErr)
}

// allocateError classifies pion's Allocate error. pion reports error answers
// only as text, so the observer's record of what the server answered decides.
func (c *Client) allocateError(err, stopped error) error {
	code, answered := c.obs.allocOutcome()
	var se *sendError
	switch {
	case code == int(stun.CodeUnauthorized) || code == int(stun.CodeWrongCredentials) || code == int(stun.CodeBadRequest):
		return fmt.Errorf("relayfallback: allocate at %v: %w (%v)", c.server, ErrUnauthorized, err)
	case code != 0:
		return fmt.Errorf("relayfallback: allocate at %v: %w (%v)", c.server, ErrRejected, err)
	case errors.Is(stopped, net.ErrClosed):
		return fmt.Errorf("relayfallback: allocate: %w", net.ErrClosed)
	case stopped != nil:
		return c.abandoned(stopped)
	case errors.As(err, &se):
		return fmt.Errorf("relayfallback: allocate at %v: %w", c.server, se.err)
	case !answered:
		return fmt.Errorf("relayfallback: allocate at %v: %w (%v)", c.server, ErrTimeout, err)
	default:
		return fmt.Errorf("relayfallback: allocate at %v: %w", c.server, err)
	}
}

// HandleInbound takes a datagram from the shared socket. It returns true if
// the datagram came from the TURN server and is TURN traffic (ChannelData, a
// STUN message of a TURN method, or the answer to our own keepalive), which
// it consumed. Anything else, including STUN Binding answers and non-STUN
// datagrams from the server's address, is left to the caller. It does not
// keep b and does not wait for the network: datagrams from peers are queued
// for the client's reader goroutine (pion's queue; dropped when 1024 are
// waiting), and a transaction's answer is handed over (unbuffered) to the
// goroutine waiting for it, which may still be finishing the Send of its
// request, so the caller must not hold a lock that Send takes.
func (c *Client) HandleInbound(b []byte, from netip.AddrPort) bool {
	if canonical(from) != c.server || len(b) < 4 {
		return false
	}
	switch {
	case b[0]&0xC0 == 0x40: // ChannelData (RFC 5766 §11.4)
		c.channelData(b)
		return true
	case b[0]&0xC0 == 0 && stun.IsMessage(b):
		var t stun.MessageType
		t.ReadValue(binary.BigEndian.Uint16(b))
		switch t.Method {
		case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
			if t.Class == stun.ClassErrorResponse || t.Method == stun.MethodAllocate || t.Method == stun.MethodRefresh {
				c.obs.answer(b, t)
			}
		case stun.MethodData:
		case stun.MethodBinding:
			return t.Class != stun.ClassRequest && c.obs.isKeepalive(b)
		default:
			return false
		}
	default:
		return false
	}
	if _, err := c.turn.HandleInbound(b, c.serverUDP); err != nil {
		c.log.Debug("relayfallback: inbound TURN message dropped", "err", err)
	}
	return true
}

// channelData hands the payload of ChannelData on one of our channels to
// pion's relayed conn, which copies it for the reader goroutine.
func (c *Client) channelData(b []byte) {
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+n > len(b) {
		return
	}
	number := binary.BigEndian.Uint16(b[0:2])
	c.mu.Lock()
	ch, in := c.byNumber[number], c.inbound
	c.mu.Unlock()
	if ch != nil && in != nil {
		in.HandleInbound(b[4:4+n], ch.from)
	}
}

// Close deallocates (best effort: it waits a few retransmission timeouts
// for the server's answer, so call it while the shared socket's reader still
// feeds HandleInbound), stops the client's goroutines and returns once they
// have ended and no Send is running or can start. It is idempotent;
// concurrent calls all wait for the first one to finish.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		defer close(c.closeDone)
		c.mu.Lock()
		c.closed = true
		close(c.closing)
		c.mu.Unlock()

		c.allocSem <- struct{}{} // an Allocate in progress gives up promptly

		c.mu.Lock()
		conn := c.relayConn
		c.relayed = netip.AddrPort{}
		c.inbound = nil // nobody reads pion's queue any more
		c.queue, c.queuedBytes = nil, 0
		c.mu.Unlock()
		if conn != nil {
			c.deallocate(conn)
		}
		// No writes from here on, then end every transaction (pion's
		// refresh and bind goroutines, a worker waiting for a permission).
		c.conn.shut()
		c.turn.Close()
		c.wg.Wait()
	})
	<-c.closeDone
	return nil
}

// deallocate closes pion's relayed conn, which stops pion's refresh timers
// and sends a Refresh with lifetime 0, and waits for the answer. pion does not
// wait for it; a 438 Stale Nonce would leave the allocation in place until it
// expires, so that one is retried once with the fresh nonce.
func (c *Client) deallocate(conn net.PacketConn) {
	answers := c.obs.armDealloc()
	if err := conn.Close(); err != nil {
		c.log.Debug("relayfallback: deallocate", "err", err)
	}
	timer := time.NewTimer(c.deallocWait)
	defer timer.Stop()
	for retried := false; ; {
		select {
		case a := <-answers:
			switch {
			case a.code == 0:
				c.log.Debug("relayfallback: deallocated", "server", c.server)
				return
			case a.code == int(stun.CodeStaleNonce) && !retried && len(a.nonce) > 0:
				retried = true
				c.sendDeallocate(a)
			default:
				c.log.Warn("relayfallback: deallocation refused", "server", c.server, "code", a.code)
				return
			}
		case <-timer.C:
			c.log.Debug("relayfallback: no answer to the deallocation", "server", c.server)
			return
		}
	}
}

func (c *Client) sendDeallocate(a refreshAnswer) {
	realm := a.realm
	if len(realm) == 0 {
		realm = c.turn.Realm()
	}
	user := c.cfg.Server.Username
	msg, err := stun.Build(
		stun.TransactionID,
		stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		zeroLifetime{},
		stun.NewUsername(user),
		realm,
		a.nonce,
		stun.NewLongTermIntegrity(user, realm.String(), c.cfg.Server.Password),
		stun.Fingerprint,
	)
	if err == nil {
		_, err = c.turn.PerformTransaction(msg, c.serverUDP, true)
	}
	if err != nil {
		c.log.Debug("relayfallback: deallocate again", "err", err)
	}
}

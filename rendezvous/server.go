package rendezvous

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v2"
	"github.com/pion/turn/v2"

	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
	"github.com/p2pcompat/p2pcompat/internal/readerr"
	"github.com/p2pcompat/p2pcompat/internal/sockbuf"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

const (
	defaultListenAddr       = ":0"
	defaultRegistrationTTL  = 30 * time.Second
	defaultMaxRegistrations = 1 << 20
	// maxSweepInterval keeps the expiry sweep frequent; a sweep only walks
	// the registrations that did expire, so running it often costs nothing.
	maxSweepInterval = time.Second
	readBufferLen    = 2048

	defaultRelayCredentialTTL  = 12 * time.Hour
	defaultMaxRelayAllocations = 4096
)

// ConfigError is the error NewServer and NewClient return for a
// configuration they cannot use: Config is "rendezvous.ServerConfig" or
// "rendezvous.ClientConfig", Field the field refused, Reason why. It is
// the same type as every other package's ConfigError.
type ConfigError = cfgerr.Error

// ServerConfig configures a Server. The zero value of every field is a
// working default.
type ServerConfig struct {
	ListenAddr string // UDP, e.g. "127.0.0.1:0"; "" means ":0"
	// AllowedApps, when non-empty, lists the AppIDs this server admits; a
	// registration for another AppID is refused with a "no rights to app" reason.
	AllowedApps []uint32
	// PrivateKey is the server's X25519 private key. Zero: a new one each
	// run, which clients learn on first use. A fixed one lets clients pin
	// it (ClientConfig.ServerKey), so that nobody who answers before the
	// server can pose as it, and lets several servers share one identity.
	PrivateKey [32]byte
	// RegistrationTTL: how long a registration lives without refresh; 0 means 30s.
	RegistrationTTL time.Duration
	// MaxRegistrations caps the registration table, since anyone on the
	// network can fill it; registrations beyond it are refused as
	// RefuseServerFull. 0 means 1<<20.
	MaxRegistrations int
	// Net is the network to listen on, and on which the embedded relay
	// opens its relay sockets and external relays' names are resolved; nil
	// means the real one. Tests pass a github.com/pion/transport/v2/vnet
	// network.
	Net transport.Net
	// Readers is how many goroutines read the server's port, each on a
	// socket of its own bound to it with SO_REUSEPORT, where the kernel
	// spreads the sources over them (Linux, and Net nil); elsewhere one
	// reads. 0 means 1. More readers keep a flood on one core from
	// delaying everyone's answers on the others; each has its own rate
	// limits, which stay whole since one source always reaches the same
	// socket.
	Readers int

	// RelayIP, when set, makes the server also a TURN relay (RFC 5766) on
	// its one UDP port, and is the public IPv4 address its allocations
	// advertise: the address players reach the server at. Clients learn the
	// relay, at RelayIP and the server's port, with credentials, from the
	// answers to their authenticated registrations. An allocation on it
	// reaches only the player's contacts, the users it looked up or was
	// offered by, at public addresses unless RelayIP itself is loopback or
	// private (see contactPermissions). "" means no embedded relay.
	RelayIP string
	// TURN lists external TURN servers, "host:port" each (IPv4), that
	// accept coturn's shared-secret credentials under TURNSecret (coturn
	// with use-auth-secret and static-auth-secret=TURNSecret). Clients are
	// handed credentials for them too: at most MaxRelays relays each, the
	// embedded one first, external ones spread over the users. Names are
	// resolved once, by NewServer. Which peers their allocations may reach
	// is their own policy (coturn's allowed-peer-ip and denied-peer-ip),
	// not limited to contacts as the embedded relay's are.
	TURN []string
	// TURNSecret is the secret shared with the TURN servers of TURN, which
	// the embedded relay then uses too. Required with TURN; "" otherwise
	// means that the embedded relay makes a random secret of its own.
	TURNSecret string
	// RelayCredentialTTL is how long relay credentials stay valid at least;
	// 0 means 12 hours. A TURN allocation is refreshed with the credentials
	// it was made with, so this bounds an allocation's life: clients make a
	// new one, with newer credentials, shortly before it ends.
	RelayCredentialTTL time.Duration
	// MaxRelayAllocations caps the embedded relay's open allocations, each
	// of which holds a socket; 0 means 4096.
	MaxRelayAllocations int

	// Secret, when not empty, makes the server admit only registrations
	// that carry a token made under it (IssueToken) for exactly their
	// SteamID and AppID and not expired (see token.go); the others are
	// refused with RefuseTokenMissing, RefuseTokenInvalid,
	// RefuseTokenExpired, RefuseTokenWrongID or RefuseTokenWrongApp. Empty:
	// an open server, where anyone may register under any SteamID, which
	// NewServer logs as a warning.
	Secret []byte
	// HidePresence: a lookup of a user who is not online, or is online
	// under another AppID, gets no answer at all, so that nobody learns
	// who is online in which game but the players of the same game; the
	// requester sees its lookup time out, as on Steam. Lookups of users
	// online under the requester's AppID are answered as always.
	HidePresence bool

	// RateLimit is how many messages per second the server takes from one
	// source (an IPv4 address, an IPv6 /64): rendezvous messages, STUN
	// Binding requests and TURN requests. More are dropped silently (see
	// ratelimit.go). 0 means 50; negative means no limit.
	RateLimit float64
	// RateBurst is how many messages one source may send at once, beyond
	// RateLimit; 0 means 100, or twice RateLimit if that is more.
	RateBurst int
	// RelayRateLimit is how many datagrams per second one source may send
	// through the embedded relay (TURN ChannelData and Send indications),
	// which count apart from messages. 0 means 5000; negative means no
	// limit.
	RelayRateLimit float64
	// RelayRateBurst is RateBurst for relay data; 0 means 10000, or twice
	// RelayRateLimit if that is more.
	RelayRateBurst int

	Logger *slog.Logger // nil: discard
}

// rateParams turns a rate and burst of the configuration, defaults
// applied, into a bucket's.
func rateParamsOf(rate float64, burst int) rateParams {
	if rate < 0 {
		return rateParams{}
	}
	return rateParams{rate: rate, burst: float64(burst)}
}

func (c ServerConfig) withDefaults() (ServerConfig, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = defaultListenAddr
	}
	if c.Readers < 0 {
		return c, cfgerr.New("rendezvous.ServerConfig", "Readers", fmt.Sprintf("must not be negative (%d)", c.Readers))
	}
	if c.RegistrationTTL < 0 {
		return c, cfgerr.New("rendezvous.ServerConfig", "RegistrationTTL", fmt.Sprintf("must not be negative (%v)", c.RegistrationTTL))
	}
	if c.RegistrationTTL == 0 {
		c.RegistrationTTL = defaultRegistrationTTL
	}
	if c.MaxRegistrations < 0 {
		return c, cfgerr.New("rendezvous.ServerConfig", "MaxRegistrations", fmt.Sprintf("must not be negative (%d)", c.MaxRegistrations))
	}
	if c.MaxRegistrations == 0 {
		c.MaxRegistrations = defaultMaxRegistrations
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.AllowedApps = append([]uint32(nil), c.AllowedApps...)
	if c.RelayIP != "" {
		ip, err := netip.ParseAddr(c.RelayIP)
		if err != nil || !ip.Unmap().Is4() || !validCandidate(netip.AddrPortFrom(ip, 1)) {
			return c, cfgerr.New("rendezvous.ServerConfig", "RelayIP", fmt.Sprintf("%q is not a unicast IPv4 address", c.RelayIP))
		}
	}
	for i, a := range c.TURN {
		host, port, err := net.SplitHostPort(a)
		if p, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || p == 0 {
			return c, cfgerr.New("rendezvous.ServerConfig", fmt.Sprintf("TURN[%d]", i), fmt.Sprintf("%q is not host:port", a))
		}
	}
	c.TURN = append([]string(nil), c.TURN...)
	if len(c.TURN) > 0 && c.TURNSecret == "" {
		return c, cfgerr.New("rendezvous.ServerConfig", "TURNSecret", "is empty, but ServerConfig.TURN lists relays that need it")
	}
	if c.RelayCredentialTTL < 0 {
		return c, cfgerr.New("rendezvous.ServerConfig", "RelayCredentialTTL", fmt.Sprintf("must not be negative (%v)", c.RelayCredentialTTL))
	}
	if c.RelayCredentialTTL == 0 {
		c.RelayCredentialTTL = defaultRelayCredentialTTL
	}
	if c.MaxRelayAllocations < 0 {
		return c, cfgerr.New("rendezvous.ServerConfig", "MaxRelayAllocations", fmt.Sprintf("must not be negative (%d)", c.MaxRelayAllocations))
	}
	if c.MaxRelayAllocations == 0 {
		c.MaxRelayAllocations = defaultMaxRelayAllocations
	}
	c.Secret = bytes.Clone(c.Secret)
	var err error
	if c.RateLimit, c.RateBurst, err = rateDefaults("Rate", c.RateLimit, c.RateBurst, defaultRateLimit, defaultRateBurst); err != nil {
		return c, err
	}
	if c.RelayRateLimit, c.RelayRateBurst, err = rateDefaults("RelayRate", c.RelayRateLimit, c.RelayRateBurst, defaultRelayRateLimit, defaultRelayRateBurst); err != nil {
		return c, err
	}
	return c, nil
}

// rateDefaults checks a rate and burst of the configuration, named
// prefix+"Limit" and prefix+"Burst", and fills in their defaults.
func rateDefaults(prefix string, rate float64, burst int, defRate float64, defBurst int) (float64, int, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) {
		return rate, burst, cfgerr.New("rendezvous.ServerConfig", prefix+"Limit", fmt.Sprintf("must be a number (%v)", rate))
	}
	if burst < 0 {
		return rate, burst, cfgerr.New("rendezvous.ServerConfig", prefix+"Burst", fmt.Sprintf("must not be negative (%d)", burst))
	}
	if rate < 0 {
		return -1, burst, nil
	}
	if rate == 0 {
		rate = defRate
	}
	if burst == 0 {
		burst = defBurst
		if r := 2 * rate; r > float64(burst) {
			burst = int(min(math.Ceil(r), math.MaxInt32))
		}
	}
	return rate, burst, nil
}

// resolveTURN resolves the external relays once, to the IPv4 addresses that
// clients are given.
func resolveTURN(cfg *ServerConfig) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(cfg.TURN))
	for i, a := range cfg.TURN {
		var ua *net.UDPAddr
		var err error
		if cfg.Net != nil {
			ua, err = cfg.Net.ResolveUDPAddr("udp4", a)
		} else {
			ua, err = net.ResolveUDPAddr("udp4", a)
		}
		if err != nil {
			return nil, fmt.Errorf("rendezvous: ServerConfig.TURN[%d] %q: %w", i, a, err)
		}
		ap := canonical(ua.AddrPort())
		if !ap.Addr().Is4() || !validCandidate(ap) {
			return nil, cfgerr.New("rendezvous.ServerConfig", fmt.Sprintf("TURN[%d]", i), fmt.Sprintf("%q is not a unicast IPv4 address", a))
		}
		out = append(out, ap)
	}
	return out, nil
}

// Server is a rendezvous server on its own UDP socket, which also answers
// STUN Binding requests and, with ServerConfig.RelayIP, is a TURN relay.
type Server struct {
	conn    net.PacketConn
	udp     *net.UDPConn  // conn, when it is a real socket: allocation-free I/O
	readers []*sockReader // readers[0] reads conn
	tab     *table
	log     *slog.Logger
	stats   *counters // the table's

	// The embedded relay, if any: pion's TURN server, reading from
	// turnConn what the reader hands it.
	turn     *turn.Server
	turnConn *turnConn

	sweepEvery time.Duration
	done       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// NewServer binds cfg.ListenAddr and starts serving: one goroutine reads the
// socket, one sweeps expired registrations. Both end on Close. With
// cfg.RelayIP, pion's TURN server runs too, with a goroutine of its own and
// one per allocation, which end shortly after Close.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	external, err := resolveTURN(&cfg)
	if err != nil {
		return nil, err
	}
	conns, err := listen(&cfg)
	if err != nil {
		return nil, err
	}
	conn := conns[0]
	// A key per run unless configured: clients learn it from every
	// CHALLENGE, and one that still uses the previous run's is told the
	// new one (see table.register).
	var priv *ecdh.PrivateKey
	if cfg.PrivateKey != ([32]byte{}) {
		priv, err = ecdh.X25519().NewPrivateKey(cfg.PrivateKey[:])
	} else {
		priv, err = ecdh.X25519().GenerateKey(rand.Reader)
	}
	if err != nil {
		closeAll(conns)
		return nil, fmt.Errorf("rendezvous: server key: %w", err)
	}
	s := &Server{
		conn:       conn,
		tab:        newTable(priv, cfg.RegistrationTTL, cfg.MaxRegistrations, cfg.AllowedApps, cfg.Logger),
		log:        cfg.Logger,
		sweepEvery: max(min(cfg.RegistrationTTL/2, maxSweepInterval), time.Millisecond),
		done:       make(chan struct{}),
	}
	s.udp, _ = conn.(*net.UDPConn)
	for _, c := range conns {
		if u, ok := c.(*net.UDPConn); ok {
			// A burst from a flood must not push honest requests out of
			// the socket's queue while a reader is busy: ask for a deep
			// one. Linux grants at most net.core.rmem_max (often 208 KiB,
			// about 500 registrations; raise it on a server).
			if r, _ := sockbuf.Set(u, serverReadBuffer); sockbuf.Short(serverReadBuffer, r) && c == conns[0] {
				cfg.Logger.Info("rendezvous: the kernel granted a smaller receive buffer than asked (raise net.core.rmem_max)",
					"asked", serverReadBuffer, "granted", r)
			}
		}
		r := &sockReader{s: s, conn: c, rate: newRateLimiter(rateParamsOf(cfg.RateLimit, cfg.RateBurst), rateParamsOf(cfg.RelayRateLimit, cfg.RelayRateBurst), maxRateSources)}
		r.udp, _ = c.(*net.UDPConn)
		s.readers = append(s.readers, r)
	}
	s.stats = s.tab.stats
	if len(cfg.Secret) > 0 {
		s.tab.tokens = newTokenChecker(cfg.Secret)
	} else {
		s.log.Warn("rendezvous: no registration secret (ServerConfig.Secret): anyone may register under any SteamID")
	}
	s.tab.hidePresence = cfg.HidePresence
	s.tab.agreements = newRateLimiter(rateParams{keyAgreementRate, keyAgreementBurst}, rateParams{}, maxRateSources)
	if cfg.RelayIP != "" || len(external) > 0 {
		if err := s.startRelays(&cfg, external); err != nil {
			closeAll(conns)
			return nil, err
		}
	}
	s.wg.Add(1 + len(s.readers))
	for _, r := range s.readers {
		go r.loop()
	}
	go s.sweepLoop()
	s.log.Debug("rendezvous: serving", "addr", conn.LocalAddr(), "readers", len(s.readers), "relay", cfg.RelayIP, "turn", len(external),
		"tokens", s.tab.tokens != nil, "hidePresence", cfg.HidePresence, "rateLimit", cfg.RateLimit, "relayRateLimit", cfg.RelayRateLimit)
	return s, nil
}

// startRelays sets up the credentials for the relays and starts the
// embedded one, if any.
func (s *Server) startRelays(cfg *ServerConfig, external []netip.AddrPort) error {
	secret := []byte(cfg.TURNSecret)
	var embedded netip.AddrPort
	if cfg.RelayIP != "" {
		if len(secret) == 0 {
			// Only the embedded relay checks it, and it lives as long as
			// this server, as do the credentials issued under it.
			var r [32]byte
			if _, err := rand.Read(r[:]); err != nil {
				return fmt.Errorf("rendezvous: generate relay secret: %w", err)
			}
			secret = []byte(hex.EncodeToString(r[:]))
		}
		local, ok := s.conn.LocalAddr().(*net.UDPAddr)
		if !ok {
			return fmt.Errorf("rendezvous: listening on %v, not a UDP address", s.conn.LocalAddr())
		}
		relayIP := netip.MustParseAddr(cfg.RelayIP).Unmap() // withDefaults has checked it
		embedded = netip.AddrPortFrom(relayIP, uint16(local.Port))

		// Relay sockets are bound where the server listens, or everywhere
		// if it listens everywhere or on IPv6 (allocations are IPv4).
		bind := "0.0.0.0"
		if ip, ok := netip.AddrFromSlice(local.IP); ok && ip.Unmap().Is4() && !ip.IsUnspecified() {
			bind = ip.Unmap().String()
		}
		s.turnConn = newTurnConn(s)
		users := newRelayUsers(maxRelayUsers)
		s.tab.relayable = func(ip netip.Addr) bool { return relayable(relayIP, ip) }
		sockets := &relaySockets{
			RelayAddressGeneratorStatic: turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IP(relayIP.AsSlice()),
				Address:      bind,
				Net:          cfg.Net,
			},
			max:   int64(cfg.MaxRelayAllocations),
			stats: s.stats,
		}
		ts, err := turn.NewServer(turn.ServerConfig{
			Realm:         turnRealm,
			AuthHandler:   turnAuthHandler(secret, s.log, users, sockets),
			LoggerFactory: pionLogs{s.log},
			PacketConnConfigs: []turn.PacketConnConfig{{
				PacketConn:            s.turnConn,
				RelayAddressGenerator: sockets,
				PermissionHandler:     contactPermissions(relayIP, users, s.tab, s.log),
			}},
		})
		if err != nil {
			return fmt.Errorf("rendezvous: start relay: %w", err)
		}
		s.turn = ts
	}
	s.tab.relays = newRelayIssuer(embedded, secret, external, []byte(cfg.TURNSecret), cfg.RelayCredentialTTL)
	return nil
}

// Addr is the address the server listens on, a *net.UDPAddr.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// PublicKey is the server's X25519 public key, made when it started, which
// clients learn from its answers to their registrations and authenticate
// their messages with.
func (s *Server) PublicKey() [32]byte { return s.tab.pub }

// Close stops the server and waits for its goroutines to end; those of the
// embedded relay, which pion's TURN server starts and does not wait for,
// end by themselves just after, their allocations closed. Calls after the
// first return nil.
func (s *Server) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		if s.turn != nil {
			// Closes turnConn, which ends the relay's reader, which then
			// closes every allocation.
			s.turn.Close()
		}
		s.closeErr = s.conn.Close()
		closeAll(s.readers[1:])
		s.wg.Wait()
		err = s.closeErr
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (s *Server) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// serverReadBuffer is the receive buffer the server asks for on each of
// its sockets: a second of registrations at 10,000 a second.
const serverReadBuffer = 4 << 20

// sockReader reads one of the server's sockets. Its rate limiter and STUN
// responder are its own, used by its goroutine alone.
type sockReader struct {
	s    *Server
	conn net.PacketConn
	udp  *net.UDPConn // conn, when it is a real socket
	rate *rateLimiter
	stun stunResponder
	// datagrams counts what this reader read, for the tests of how the
	// kernel spreads sources.
	datagrams atomic.Uint64
}

func (r *sockReader) Close() error { return r.conn.Close() }

func closeAll[C io.Closer](cs []C) {
	for _, c := range cs {
		c.Close()
	}
}

// listen opens the server's sockets: one, or cfg.Readers bound to one
// port where the platform has SO_REUSEPORT (reuseport.go).
func listen(cfg *ServerConfig) ([]net.PacketConn, error) {
	if cfg.Net != nil {
		conn, err := cfg.Net.ListenPacket("udp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: listen on %q: %w", cfg.ListenAddr, err)
		}
		return []net.PacketConn{conn}, nil
	}
	if cfg.Readers > 1 && reusePortSupported {
		return listenReusePort(cfg.ListenAddr, cfg.Readers)
	}
	conn, err := net.ListenPacket("udp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: listen on %q: %w", cfg.ListenAddr, err)
	}
	return []net.PacketConn{conn}, nil
}

func (r *sockReader) readFrom(b []byte) (int, netip.AddrPort, error) {
	if r.udp != nil {
		return r.udp.ReadFromUDPAddrPort(b)
	}
	n, addr, err := r.conn.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, nil
	}
	return n, ua.AddrPort(), nil
}

// writeTo sends b to `to` on the server's socket, and counts it.
func (s *Server) writeTo(b []byte, to netip.AddrPort) error {
	var err error
	if s.udp != nil {
		_, err = s.udp.WriteToUDPAddrPort(b, to)
	} else {
		_, err = s.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
	if err != nil {
		if !s.closed() {
			s.stats.writeErrors.Add(1)
		}
		return err
	}
	s.stats.datagramsOut.Add(1)
	s.stats.bytesOut.Add(uint64(len(b)))
	return nil
}

func (r *sockReader) loop() {
	s := r.s
	defer s.wg.Done()
	buf := make([]byte, readBufferLen)
	var out []datagram
	var backoff readerr.Backoff
	for {
		n, from, err := r.readFrom(buf)
		if err != nil {
			if s.closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.stats.readErrors.Add(1)
			if !readerr.Transient(err) {
				// It would come back at every read, one log line each.
				s.log.Error("rendezvous: reading the socket failed for good: this reader stops", "addr", r.conn.LocalAddr(), "err", err)
				return
			}
			s.log.Debug("rendezvous: read failed", "err", err)
			if !backoff.Wait(s.done) {
				return
			}
			continue
		}
		backoff.Reset()
		s.stats.datagramsIn.Add(1)
		s.stats.bytesIn.Add(uint64(n))
		r.datagrams.Add(1)
		b := buf[:n]
		now := time.Now()
		// Counted against the source's rate limit before anything looks
		// at it; what is of no protocol we speak, or from a source that
		// sends nothing legitimate, is dropped below without costing the
		// source anything.
		if class, ok := s.classify(b); ok && validCandidate(canonical(from)) && !r.rate.allow(canonical(from), class, now) {
			s.stats.rateLimited.Add(1)
			s.log.Debug("rendezvous: over the rate limit, dropped datagram", "from", from, "len", n)
			continue
		}
		switch {
		case n > 0 && b[0] == byte(wire.KindRendezvous):
			out = s.tab.handle(b, from, now, out[:0])
			for i, d := range out {
				if err := s.writeTo(d.b, d.to); err != nil {
					s.log.Debug("rendezvous: write failed", "to", d.to, "err", err)
				}
				out[i] = datagram{}
			}
		case !validCandidate(canonical(from)):
			// Nothing legitimate comes from port 0 or a multicast group.
			s.stats.unrecognized.Add(1)
		case isSTUN(b) && isBindingRequest(b):
			// Answered here whether or not a relay runs, and never handed
			// to the relay, so that it is answered once.
			resp := r.stun.answer(b, from)
			if resp == nil {
				s.stats.malformed.Add(1)
				break
			}
			s.stats.stunBindings.Add(1)
			if err := s.writeTo(resp, from); err != nil {
				s.log.Debug("rendezvous: write failed", "to", from, "err", err)
			}
		case s.turnConn != nil && (isSTUN(b) || isChannelData(b)):
			if !s.turnConn.deliver(b, from) {
				s.stats.relayQueueFull.Add(1)
				s.log.Debug("rendezvous: relay queue full, dropped datagram", "from", from)
			}
		default:
			s.stats.unrecognized.Add(1)
			s.log.Debug("rendezvous: dropped datagram of unknown kind", "from", from, "len", n)
		}
	}
}

// classify says which rate limit b counts against, and false if the server
// will not look at it anyway.
func (s *Server) classify(b []byte) (rateClass, bool) {
	switch {
	case len(b) > 0 && b[0] == byte(wire.KindRendezvous):
		return rateMessage, true
	case isSTUN(b) && isBindingRequest(b):
		return rateMessage, true
	case s.turnConn == nil:
		return 0, false
	case isSTUN(b) && isIndication(b):
		// Send indications: data for a peer.
		return rateRelayData, true
	case isSTUN(b):
		return rateMessage, true
	case isChannelData(b):
		return rateRelayData, true
	}
	return 0, false
}

func (s *Server) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			if n := s.tab.expire(now); n > 0 {
				s.log.Debug("rendezvous: registrations expired", "count", n)
			}
		}
	}
}

package rendezvous

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/transport/v2"
)

const (
	defaultListenAddr       = ":0"
	defaultRegistrationTTL  = 30 * time.Second
	defaultMaxRegistrations = 1 << 20
	// maxSweepInterval keeps the expiry sweep frequent; a sweep only walks
	// the registrations that did expire, so running it often costs nothing.
	maxSweepInterval = time.Second
	readBufferLen    = 2048
)

// ErrInvalidConfig is wrapped by the errors NewServer and NewClient return
// for a configuration they cannot use; the message names the field.
var ErrInvalidConfig = errors.New("rendezvous: invalid config")

// ServerConfig configures a Server. The zero value of every field is a
// working default.
type ServerConfig struct {
	ListenAddr string // UDP, e.g. "127.0.0.1:0"; "" means ":0"
	// AllowedApps, when non-empty, lists the AppIDs this server admits; a
	// registration for another AppID is refused with a "no rights to app" reason.
	AllowedApps []uint32
	// RegistrationTTL: how long a registration lives without refresh; 0 means 30s.
	RegistrationTTL time.Duration
	// MaxRegistrations caps the registration table, since anyone on the
	// network can fill it; registrations beyond it are refused as
	// RefuseServerFull. 0 means 1<<20.
	MaxRegistrations int
	// Net is the network to listen on; nil means the real one. Tests pass a
	// github.com/pion/transport/v2/vnet network.
	Net    transport.Net
	Logger *slog.Logger // nil: discard
}

func (c ServerConfig) withDefaults() (ServerConfig, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = defaultListenAddr
	}
	if c.RegistrationTTL < 0 {
		return c, fmt.Errorf("%w: ServerConfig.RegistrationTTL is negative (%v)", ErrInvalidConfig, c.RegistrationTTL)
	}
	if c.RegistrationTTL == 0 {
		c.RegistrationTTL = defaultRegistrationTTL
	}
	if c.MaxRegistrations < 0 {
		return c, fmt.Errorf("%w: ServerConfig.MaxRegistrations is negative (%d)", ErrInvalidConfig, c.MaxRegistrations)
	}
	if c.MaxRegistrations == 0 {
		c.MaxRegistrations = defaultMaxRegistrations
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.AllowedApps = append([]uint32(nil), c.AllowedApps...)
	return c, nil
}

// Server is a rendezvous server on its own UDP socket.
type Server struct {
	conn net.PacketConn
	udp  *net.UDPConn // conn, when it is a real socket: allocation-free I/O
	tab  *table
	log  *slog.Logger

	sweepEvery time.Duration
	done       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// NewServer binds cfg.ListenAddr and starts serving: one goroutine reads the
// socket, one sweeps expired registrations. Both end on Close.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var conn net.PacketConn
	if cfg.Net != nil {
		conn, err = cfg.Net.ListenPacket("udp", cfg.ListenAddr)
	} else {
		conn, err = net.ListenPacket("udp", cfg.ListenAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("rendezvous: listen on %q: %w", cfg.ListenAddr, err)
	}
	// A key per run: clients learn it from every REGISTERED, and one that
	// still uses the previous run's is told the new one (see table.register).
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("rendezvous: generate key: %w", err)
	}
	s := &Server{
		conn:       conn,
		tab:        newTable(priv, cfg.RegistrationTTL, cfg.MaxRegistrations, cfg.AllowedApps, cfg.Logger),
		log:        cfg.Logger,
		sweepEvery: max(min(cfg.RegistrationTTL/2, maxSweepInterval), time.Millisecond),
		done:       make(chan struct{}),
	}
	s.udp, _ = conn.(*net.UDPConn)
	s.wg.Add(2)
	go s.readLoop()
	go s.sweepLoop()
	s.log.Debug("rendezvous: serving", "addr", conn.LocalAddr())
	return s, nil
}

// Addr is the address the server listens on, a *net.UDPAddr.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// PublicKey is the server's X25519 public key, made when it started, which
// clients learn from its answers to their registrations and authenticate
// their messages with.
func (s *Server) PublicKey() [32]byte { return s.tab.pub }

// Close stops the server and waits for its goroutines to end. Calls after
// the first return nil.
func (s *Server) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.conn.Close()
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

func (s *Server) readFrom(b []byte) (int, netip.AddrPort, error) {
	if s.udp != nil {
		return s.udp.ReadFromUDPAddrPort(b)
	}
	n, addr, err := s.conn.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, nil
	}
	return n, ua.AddrPort(), nil
}

func (s *Server) writeTo(b []byte, to netip.AddrPort) error {
	if s.udp != nil {
		_, err := s.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (s *Server) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, readBufferLen)
	var out []datagram
	for {
		n, from, err := s.readFrom(buf)
		if err != nil {
			if s.closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("rendezvous: read failed", "err", err)
			continue
		}
		out = s.tab.handle(buf[:n], from, time.Now(), out[:0])
		for i, d := range out {
			if err := s.writeTo(d.b, d.to); err != nil {
				s.log.Debug("rendezvous: write failed", "to", d.to, "err", err)
			}
			out[i] = datagram{}
		}
	}
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

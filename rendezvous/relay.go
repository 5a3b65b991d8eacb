package rendezvous

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v2"
)

// Relay credentials.
//
// The server hands every client whose registration is authenticated
// short-lived credentials for its TURN relays, in coturn's shared-secret
// scheme (the "TURN REST API" of draft-uberti-behave-turn-rest, coturn's
// use-auth-secret): the username is "expiry:steamID", expiry in unix
// seconds, and the password is base64(HMAC-SHA1(secret, username)). Any
// TURN server that knows the secret checks them without asking us, so an
// operator can add coturn instances (ServerConfig.TURN) next to the relay
// embedded in the server (ServerConfig.RelayIP) and run them on other
// machines. A credential is useless for another user (the SteamID is in the
// username) and after its expiry.
//
// The wire carries only the expiry, once, and the raw HMAC per relay: the
// client knows its own SteamID, so it rebuilds the username, and it encodes
// the password itself (see Client.Relays).

// turnRealm is the realm of the embedded relay; clients learn it from the
// relay's first answer.
const turnRealm = "p2pcompat"

// turnUsername is the username of the credentials for steamID valid until
// expiry.
func turnUsername(expiry, steamID uint64) string {
	return string(appendTURNUsername(nil, expiry, steamID))
}

func appendTURNUsername(b []byte, expiry, steamID uint64) []byte {
	b = strconv.AppendUint(b, expiry, 10)
	b = append(b, ':')
	return strconv.AppendUint(b, steamID, 10)
}

// parseTURNUsername reads "expiry:steamID".
func parseTURNUsername(username string) (expiry int64, steamID uint64, ok bool) {
	e, id, found := strings.Cut(username, ":")
	if !found {
		return 0, 0, false
	}
	expiry, err := strconv.ParseInt(e, 10, 64)
	if err != nil || expiry <= 0 {
		return 0, 0, false
	}
	steamID, err = strconv.ParseUint(id, 10, 64)
	if err != nil || steamID == 0 {
		return 0, 0, false
	}
	return expiry, steamID, true
}

// turnPassword is base64(HMAC-SHA1(secret, username)).
func turnPassword(secret []byte, username string) string {
	h := hmac.New(sha1.New, secret)
	h.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// relayIssuer makes the credentials a REGISTERED carries. It is not safe
// for concurrent use; the table's lock guards it.
type relayIssuer struct {
	embedded    netip.AddrPort // the embedded relay as clients reach it; invalid: none
	embeddedMAC hash.Hash      // HMAC-SHA1 under the embedded relay's secret
	external    []netip.AddrPort
	externalMAC hash.Hash // HMAC-SHA1 under ServerConfig.TURNSecret
	// ttl is how long credentials stay valid at least; expiries are
	// rounded up to a multiple of step, so that the refreshes within one
	// step get the same credentials and a client sees them change only
	// once a step.
	ttl, step int64 // seconds
	username  []byte
	sum       []byte
}

func newRelayIssuer(embedded netip.AddrPort, embeddedSecret []byte, external []netip.AddrPort, externalSecret []byte, ttl time.Duration) *relayIssuer {
	secs := max(int64((ttl+time.Second-1)/time.Second), 1)
	ri := &relayIssuer{
		embedded: embedded,
		external: external,
		ttl:      secs,
		step:     max(secs/4, 1),
	}
	if embedded.IsValid() {
		ri.embeddedMAC = hmac.New(sha1.New, embeddedSecret)
	}
	if len(external) > 0 {
		ri.externalMAC = hmac.New(sha1.New, externalSecret)
	}
	return ri
}

// expiry is when credentials issued at now expire.
func (ri *relayIssuer) expiry(now time.Time) uint64 {
	e := now.Unix() + ri.ttl
	e = (e + ri.step - 1) / ri.step * ri.step
	return uint64(e)
}

func (ri *relayIssuer) password(h hash.Hash) (p [relayPasswordLen]byte) {
	h.Reset()
	h.Write(ri.username)
	ri.sum = h.Sum(ri.sum[:0])
	copy(p[:], ri.sum)
	return p
}

// issue returns steamID's credentials for at most MaxRelays relays: the
// embedded one first, then external ones from a place that depends on the
// SteamID, so that the users of a large fleet spread over it.
func (ri *relayIssuer) issue(steamID uint64, now time.Time) (expiry uint64, out []relayCred) {
	n := len(ri.external)
	total := n
	if ri.embedded.IsValid() {
		total++
	}
	if total == 0 {
		return 0, nil
	}
	expiry = ri.expiry(now)
	ri.username = appendTURNUsername(ri.username[:0], expiry, steamID)
	out = make([]relayCred, 0, min(total, MaxRelays))
	if ri.embedded.IsValid() {
		out = append(out, relayCred{addr: ri.embedded, password: ri.password(ri.embeddedMAC)})
	}
	for i := 0; i < n && len(out) < MaxRelays; i++ {
		a := ri.external[(steamID+uint64(i))%uint64(n)]
		out = append(out, relayCred{addr: a, password: ri.password(ri.externalMAC)})
	}
	return expiry, out
}

// turnAuthHandler checks credentials of the shared-secret scheme under
// secret, refusing expired ones, as coturn does with use-auth-secret.
func turnAuthHandler(secret []byte, log *slog.Logger) turn.AuthHandler {
	return func(username, realm string, src net.Addr) ([]byte, bool) {
		if realm != turnRealm {
			log.Debug("rendezvous: relay refused a foreign realm", "realm", realm, "from", src)
			return nil, false
		}
		expiry, _, ok := parseTURNUsername(username)
		if !ok {
			log.Debug("rendezvous: relay refused a malformed username", "username", username, "from", src)
			return nil, false
		}
		if expiry < time.Now().Unix() {
			log.Debug("rendezvous: relay refused expired credentials", "username", username, "from", src)
			return nil, false
		}
		return turn.GenerateAuthKey(username, realm, turnPassword(secret, username)), true
	}
}

// turnPermissions decides which peers an allocation of the embedded relay
// may exchange datagrams with. Players are on the internet, so the relay
// relays to public addresses only: not into the server's own host
// (loopback) or private network, which a player could otherwise reach
// through it, unless the relay itself is advertised there (a test, or a LAN
// party's server).
func turnPermissions(relayIP netip.Addr) turn.PermissionHandler {
	return func(_ net.Addr, peer net.IP) bool {
		ip, ok := netip.AddrFromSlice(peer)
		if !ok {
			return false
		}
		ip = ip.Unmap()
		switch {
		case ip.IsLoopback():
			return relayIP.IsLoopback()
		case !ip.IsGlobalUnicast():
			return false
		case ip.IsPrivate():
			return relayIP.IsPrivate() || relayIP.IsLoopback()
		}
		return true
	}
}

// relaySockets is the embedded relay's RelayAddressGenerator: pion's
// static one, with a cap on how many relay sockets are open at once, since
// every allocation holds one and anyone with credentials can ask for many.
type relaySockets struct {
	turn.RelayAddressGeneratorStatic
	max  int64
	open atomic.Int64
}

var errRelayFull = errors.New("rendezvous: relay allocation limit reached")

func (g *relaySockets) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	if g.open.Add(1) > g.max {
		g.open.Add(-1)
		return nil, nil, errRelayFull
	}
	conn, addr, err := g.RelayAddressGeneratorStatic.AllocatePacketConn(network, port)
	if err != nil {
		g.open.Add(-1)
		return nil, nil, err
	}
	return &countedConn{PacketConn: conn, open: &g.open}, addr, nil
}

// countedConn gives its place back when it closes.
type countedConn struct {
	net.PacketConn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.PacketConn.Close()
}

// turnInboundQueue bounds the datagrams waiting for the embedded relay;
// more are dropped, as a full socket buffer would.
const turnInboundQueue = 256

// turnConn is the embedded relay's view of the server's socket. The
// server's reader hands it the STUN and ChannelData datagrams that are for
// the relay (deliver), and the relay's writes go straight to the socket, so
// relay and rendezvous share one port.
type turnConn struct {
	s      *Server
	in     chan turnDatagram
	closed chan struct{}
	once   sync.Once
	pool   sync.Pool // of *[]byte of readBufferLen
}

type turnDatagram struct {
	buf  *[]byte
	n    int
	from *net.UDPAddr
}

func newTurnConn(s *Server) *turnConn {
	c := &turnConn{s: s, in: make(chan turnDatagram, turnInboundQueue), closed: make(chan struct{})}
	c.pool.New = func() any {
		b := make([]byte, readBufferLen)
		return &b
	}
	return c
}

// deliver queues a copy of b for the relay, or drops it if the queue is full.
func (c *turnConn) deliver(b []byte, from netip.AddrPort) bool {
	buf := c.pool.Get().(*[]byte)
	n := copy(*buf, b)
	d := turnDatagram{buf: buf, n: n, from: net.UDPAddrFromAddrPort(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))}
	select {
	case <-c.closed:
	case c.in <- d:
		return true
	default:
	}
	c.pool.Put(buf)
	return false
}

func (c *turnConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case d := <-c.in:
		n := copy(p, (*d.buf)[:d.n])
		c.pool.Put(d.buf)
		return n, d.from, nil
	}
}

func (c *turnConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("rendezvous: relay write to %T", addr)
	}
	if err := c.s.writeTo(p, ua.AddrPort()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the relay's reads; the socket stays the server's.
func (c *turnConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *turnConn) LocalAddr() net.Addr              { return c.s.conn.LocalAddr() }
func (c *turnConn) SetDeadline(time.Time) error      { return nil }
func (c *turnConn) SetReadDeadline(time.Time) error  { return nil }
func (c *turnConn) SetWriteDeadline(time.Time) error { return nil }

// pionLogs adapts pion's loggers to slog. Everything pion says goes out at
// Debug: most of it is about what remote parties sent (bad requests, wrong
// credentials, datagrams without permission), which must not be able to
// flood an operator's log at its default level.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ l *slog.Logger }

func (p pionLogger) logf(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (p pionLogger) Trace(msg string)                  { p.l.Debug(msg) }
func (p pionLogger) Tracef(format string, args ...any) { p.logf(format, args...) }
func (p pionLogger) Debug(msg string)                  { p.l.Debug(msg) }
func (p pionLogger) Debugf(format string, args ...any) { p.logf(format, args...) }
func (p pionLogger) Info(msg string)                   { p.l.Debug(msg) }
func (p pionLogger) Infof(format string, args ...any)  { p.logf(format, args...) }
func (p pionLogger) Warn(msg string)                   { p.l.Debug(msg) }
func (p pionLogger) Warnf(format string, args ...any)  { p.logf(format, args...) }
func (p pionLogger) Error(msg string)                  { p.l.Debug(msg) }
func (p pionLogger) Errorf(format string, args ...any) { p.logf(format, args...) }

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v2"
)

// Relay credentials.
//
// The server hands every client whose registration is authenticated
// short-lived credentials for its TURN relays, in coturn's shared-secret
// scheme (the "TURN REST API" of draft-uberti-behave-turn-rest, coturn's
// use-auth-secret): the username is "expiry:steamID:appID", expiry in unix
// seconds, and the password is base64(HMAC-SHA1(secret, username)). Any
// TURN server that knows the secret checks them without asking us, so an
// operator can add coturn instances (ServerConfig.TURN) next to the relay
// embedded in the server (ServerConfig.RelayIP) and run them on other
// machines. A credential is useless for another user (the SteamID is in the
// username) and after its expiry. The AppID names, for the embedded relay,
// the registration whose contacts the allocation may reach: a server that
// hides presence keeps one per SteamID and AppID.
//
// The wire carries only the expiry, once, and the raw HMAC per relay: the
// client knows its own SteamID and AppID, so it rebuilds the username, and it encodes
// the password itself (see Client.Relays).

// turnRealm is the realm of the embedded relay; clients learn it from the
// relay's first answer.
const turnRealm = "p2pcompat"

// turnUsername is the username of the credentials for steamID under appID
// valid until expiry.
func turnUsername(expiry, steamID uint64, appID uint32) string {
	return string(appendTURNUsername(nil, expiry, steamID, appID))
}

func appendTURNUsername(b []byte, expiry, steamID uint64, appID uint32) []byte {
	b = strconv.AppendUint(b, expiry, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, steamID, 10)
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(appID), 10)
}

// relayUser is whom a relay credential was issued to.
type relayUser struct {
	steamID uint64
	appID   uint32
}

// parseTURNUsername reads "expiry:steamID:appID".
func parseTURNUsername(username string) (expiry int64, u relayUser, ok bool) {
	e, rest, found := strings.Cut(username, ":")
	if !found {
		return 0, u, false
	}
	id, app, found := strings.Cut(rest, ":")
	if !found {
		return 0, u, false
	}
	expiry, err := strconv.ParseInt(e, 10, 64)
	if err != nil || expiry <= 0 {
		return 0, u, false
	}
	if u.steamID, err = strconv.ParseUint(id, 10, 64); err != nil || u.steamID == 0 {
		return 0, u, false
	}
	a, err := strconv.ParseUint(app, 10, 32)
	if err != nil {
		return 0, u, false
	}
	u.appID = uint32(a)
	return expiry, u, true
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

// isRelay says whether ip is the IP of one of the relays this server hands
// out: where a player's relayed addresses can be.
func (ri *relayIssuer) isRelay(ip netip.Addr) bool {
	if ri == nil {
		return false
	}
	if ri.embedded.IsValid() && ri.embedded.Addr() == ip {
		return true
	}
	for _, e := range ri.external {
		if e.Addr() == ip {
			return true
		}
	}
	return false
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
func (ri *relayIssuer) issue(steamID uint64, appID uint32, now time.Time) (expiry uint64, out []relayCred) {
	n := len(ri.external)
	total := n
	if ri.embedded.IsValid() {
		total++
	}
	if total == 0 {
		return 0, nil
	}
	expiry = ri.expiry(now)
	ri.username = appendTURNUsername(ri.username[:0], expiry, steamID, appID)
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
// secret, refusing expired ones, as coturn does with use-auth-secret. It
// tells users whose credentials each source uses.
func turnAuthHandler(secret []byte, log *slog.Logger, users *relayUsers, sockets *relaySockets) turn.AuthHandler {
	return func(username, realm string, src net.Addr) ([]byte, bool) {
		if realm != turnRealm {
			log.Debug("rendezvous: relay refused a foreign realm", "realm", realm, "from", src)
			return nil, false
		}
		expiry, user, ok := parseTURNUsername(username)
		if !ok {
			log.Debug("rendezvous: relay refused a malformed username", "username", username, "from", src)
			return nil, false
		}
		if expiry < time.Now().Unix() {
			log.Debug("rendezvous: relay refused expired credentials", "username", username, "from", src)
			return nil, false
		}
		if ap, ok := udpAddrPort(src); ok {
			users.set(ap, user)
		}
		if sockets != nil {
			sockets.authenticated(user.steamID)
		}
		return turn.GenerateAuthKey(username, realm, turnPassword(secret, username)), true
	}
}

// relayable says whether the embedded relay, advertised at relayIP, may
// relay to ip at all. Players are on the internet, so the relay relays to
// public addresses only: not into the server's own host (loopback) or
// private network, which a player could otherwise reach through it, unless
// the relay itself is advertised there (a test, or a LAN party's server).
func relayable(relayIP, ip netip.Addr) bool {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return false
	case ip.IsLoopback():
		return relayIP.IsLoopback()
	case !ip.IsGlobalUnicast():
		return false
	case ip.IsPrivate():
		return relayIP.IsPrivate() || relayIP.IsLoopback()
	}
	return true
}

// turnPermissions is relayable as a permission handler: the policy on
// addresses alone.
func turnPermissions(relayIP netip.Addr) turn.PermissionHandler {
	return func(_ net.Addr, peer net.IP) bool {
		ip, ok := netip.AddrFromSlice(peer)
		return ok && relayable(relayIP, ip)
	}
}

// contactPermissions decides which peers an allocation of the embedded
// relay may exchange datagrams with: besides the policy of relayable, only
// the contacts of the player it belongs to, the users that player looked
// up or was offered by (see table.addContacts), so that the relay cannot be
// used to reach strangers. The player is the one whose credentials the
// request for the permission (a CreatePermission or a ChannelBind) carried,
// registered from the address the request came from: the rendezvous
// traffic and the relay's share the client's socket, and so its NAT
// mapping.
//
// pion's server authenticates a request (calling turnAuthHandler, which
// notes the username's SteamID against the source) and then grants its
// permissions, on the one goroutine that reads its socket; so what users
// says of the source when a permission is asked for is the SteamID of that
// very request, whose MESSAGE-INTEGRITY has verified by then. Permissions
// last five minutes and are renewed by asking again, checked again.
//
// External TURN servers (ServerConfig.TURN) apply their own policy, which
// this server has no say in (coturn: its allowed-peer-ip and
// denied-peer-ip options).
func contactPermissions(relayIP netip.Addr, users *relayUsers, tab *table, log *slog.Logger) turn.PermissionHandler {
	return func(client net.Addr, peer net.IP) bool {
		ip, ok := netip.AddrFromSlice(peer)
		if !ok || !relayable(relayIP, ip) {
			log.Debug("rendezvous: relay refused a permission to a non-public address", "client", client, "peer", peer)
			return false
		}
		src, ok := udpAddrPort(client)
		if !ok {
			return false
		}
		u, ok := users.get(src)
		if !ok || !tab.permits(u.steamID, u.appID, src, ip.Unmap(), time.Now()) {
			log.Debug("rendezvous: relay refused a permission to a stranger", "client", client, "steamID", u.steamID, "peer", peer)
			return false
		}
		return true
	}
}

// udpAddrPort is the canonical address of a, a *net.UDPAddr.
func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return canonical(ua.AddrPort()), true
}

// relayUsers remembers, per source address, the SteamID in the credentials
// of the latest request the embedded relay authenticated from it, for the
// permission handler. It holds at most max sources, forgetting the longest
// known first.
type relayUsers struct {
	mu   sync.Mutex
	max  int
	ids  map[netip.AddrPort]relayUser
	ring []netip.AddrPort // a ring once it holds max sources; next is the oldest
	next int
}

// maxRelayUsers bounds relayUsers. A permission is asked for right after
// the request it comes with is authenticated, so the bound only has to
// cover the sources authenticated meanwhile.
const maxRelayUsers = 4096

func newRelayUsers(max int) *relayUsers {
	return &relayUsers{max: max, ids: make(map[netip.AddrPort]relayUser)}
}

func (u *relayUsers) set(src netip.AddrPort, user relayUser) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.ids[src]; ok {
		u.ids[src] = user
		return
	}
	if len(u.ring) < u.max {
		u.ring = append(u.ring, src)
	} else {
		delete(u.ids, u.ring[u.next])
		u.ring[u.next] = src
		u.next = (u.next + 1) % u.max
	}
	u.ids[src] = user
}

func (u *relayUsers) get(src netip.AddrPort) (relayUser, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	id, ok := u.ids[src]
	return id, ok
}

// relaySockets is the embedded relay's RelayAddressGenerator: pion's
// static one, with a cap on how many relay sockets are open at once, since
// every allocation holds one and anyone with credentials can ask for many.
// It counts the allocations, open ones in stats.relayOpen, and the traffic
// on their sockets.
type relaySockets struct {
	turn.RelayAddressGeneratorStatic
	max   int64
	stats *counters

	// The allocations open per player, oldest first, at most
	// maxAllocationsPerUser: one player's credentials cannot take the
	// relay from everyone else, and a player whose old allocations were
	// left behind (a crash, a NAT rebinding) is not locked out by them: its
	// newest allocation closes its oldest. pion's server authenticates a
	// request and then allocates for it on the one goroutine that reads
	// the relay's socket, so the SteamID of the credentials last
	// authenticated is the allocation's.
	mu      sync.Mutex
	current uint64
	perUser map[uint64][]*countedConn
}

// maxAllocationsPerUser bounds one player's allocations on the embedded
// relay: a client holds one, and two while it replaces it with one on
// fresh credentials.
const maxAllocationsPerUser = 4

var errRelayFull = errors.New("rendezvous: relay allocation limit reached")

// authenticated records the SteamID of the credentials of the request
// being handled.
func (g *relaySockets) authenticated(steamID uint64) {
	g.mu.Lock()
	g.current = steamID
	g.mu.Unlock()
}

func (g *relaySockets) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	g.mu.Lock()
	user := g.current
	var oldest *countedConn
	if conns := g.perUser[user]; len(conns) >= maxAllocationsPerUser {
		oldest = conns[0]
	}
	g.mu.Unlock()
	if oldest != nil {
		oldest.Close() // gives its place back
	}
	open := &g.stats.relayOpen
	if open.Add(1) > g.max {
		open.Add(-1)
		g.stats.relayAllocsRefused.Add(1)
		return nil, nil, errRelayFull
	}
	conn, addr, err := g.RelayAddressGeneratorStatic.AllocatePacketConn(network, port)
	if err != nil {
		open.Add(-1)
		return nil, nil, err
	}
	g.stats.relayAllocs.Add(1)
	c := &countedConn{PacketConn: conn, stats: g.stats}
	c.release = func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		conns := slices.DeleteFunc(g.perUser[user], func(o *countedConn) bool { return o == c })
		if len(conns) == 0 {
			delete(g.perUser, user)
		} else {
			g.perUser[user] = conns
		}
	}
	g.mu.Lock()
	if g.perUser == nil {
		g.perUser = make(map[uint64][]*countedConn)
	}
	g.perUser[user] = append(g.perUser[user], c)
	g.mu.Unlock()
	return c, addr, nil
}

// countedConn is an allocation's relay socket. It counts what goes
// through it, and gives its place back when it closes.
type countedConn struct {
	net.PacketConn
	stats   *counters
	release func() // gives the player's place back
	once    sync.Once
}

// ReadFrom reads what a peer sent to the allocation.
func (c *countedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.stats.relayFromPeers.Add(1)
		c.stats.relayBytesFromPeers.Add(uint64(n))
	}
	return n, addr, err
}

// WriteTo sends what the client relays to a peer it has a permission for.
func (c *countedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.stats.relayToPeers.Add(1)
		c.stats.relayBytesToPeers.Add(uint64(n))
	}
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.stats.relayOpen.Add(-1)
		c.release()
	})
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

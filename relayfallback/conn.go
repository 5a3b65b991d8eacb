package relayfallback

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun"

	"github.com/p2pcompat/p2pcompat/internal/stunpad"
)

// sharedConn is the net.PacketConn that pion's client is given. Writes go to
// Config.Send; reads never happen (we never call pion's Listen, which would
// start a second reader on the shared socket), so ReadFrom only waits for
// Close.
type sharedConn struct {
	send  func([]byte, netip.AddrPort) error
	obs   *observer
	epoch time.Time

	// lastSend is the time of the latest write, in nanoseconds since epoch
	// (monotonic): the keepalive goes out only when the path has been idle.
	lastSend atomic.Int64
	// abort fails every write while an Allocate is being abandoned.
	abort atomic.Bool

	// mu is held shared for every send and exclusively by close, so that
	// no send is still running (or starts) once close has returned: pion's
	// retransmission timers call WriteTo on their own goroutines.
	mu     sync.RWMutex
	closed bool
	done   chan struct{}
}

func newSharedConn(send func([]byte, netip.AddrPort) error, obs *observer) *sharedConn {
	return &sharedConn{send: send, obs: obs, epoch: time.Now(), done: make(chan struct{})}
}

var placeholderAddr = &net.UDPAddr{IP: net.IPv4zero}

func (s *sharedConn) ReadFrom([]byte) (int, net.Addr, error) {
	<-s.done
	return 0, nil, net.ErrClosed
}

// WriteTo is pion's way out: its requests are watched by the observer.
// Its one unauthenticated request, the first Allocate, is padded to the
// size of the answer it brings (a 401 with a NONCE), so that the server
// never answers us with more bytes than we sent.
func (s *sharedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("relayfallback: not a UDP address")
	}
	if err := s.write(stunpad.Request(b, stunpad.UnauthenticatedTURNAnswer), canonical(ua.AddrPort()), true); err != nil {
		return 0, err
	}
	return len(b), nil
}

// write sends one datagram unless the conn is shut or an Allocate is being
// abandoned; a failure of Config.Send comes back as a *sendError.
func (s *sharedConn) write(b []byte, to netip.AddrPort, observe bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.abort.Load() {
		return errAborted
	}
	if observe {
		s.obs.outbound(b)
	}
	if err := s.send(b, to); err != nil {
		return &sendError{err}
	}
	s.lastSend.Store(int64(time.Since(s.epoch)))
	return nil
}

// idleSince reports when the last datagram went out.
func (s *sharedConn) idleSince() time.Time {
	return s.epoch.Add(time.Duration(s.lastSend.Load()))
}

// Close does nothing: the shared socket is not ours to close. The client
// ends writes and ReadFrom itself (shut), after the deallocation.
func (s *sharedConn) Close() error { return nil }

func (s *sharedConn) shut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

func (s *sharedConn) LocalAddr() net.Addr              { return placeholderAddr }
func (s *sharedConn) SetDeadline(time.Time) error      { return nil }
func (s *sharedConn) SetReadDeadline(time.Time) error  { return nil }
func (s *sharedConn) SetWriteDeadline(time.Time) error { return nil }

// canonical turns IPv4-mapped IPv6 addresses (which pion and vnet produce)
// into plain IPv4 ones, so that addresses compare equal.
func canonical(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

type txID = [stun.TransactionIDSize]byte

// refreshAnswer is the server's answer to one of our deallocations.
type refreshAnswer struct {
	code  int // 0: success
	nonce stun.Nonce
	realm stun.Realm
}

// observer watches the TURN requests that pion sends and the answers that
// come back, for what pion does not tell us: whether an Allocate failed on
// credentials or on silence, and whether the deallocation was answered.
type observer struct {
	mu sync.Mutex
	// authAlloc holds the transaction IDs of the current Allocate attempt's
	// authenticated requests.
	authAlloc map[txID]struct{}
	// allocAnswered: any Allocate answer arrived during the current attempt.
	allocAnswered bool
	// allocCode: the error code answered to an authenticated Allocate.
	allocCode int
	// dealloc holds the transaction IDs of Refresh requests with lifetime 0.
	dealloc   map[txID]struct{}
	deallocCh chan refreshAnswer
	// keepalive holds the IDs of our last few Binding keepalives, so that
	// their answers are kept from the caller's own STUN client.
	keepalive [4]txID
	nextKA    int
	// nonce is the server's latest NONCE (from a 401 or 438 answer), for
	// the requests the client signs itself.
	nonce stun.Nonce
}

var (
	typeAllocateRequest = stun.NewType(stun.MethodAllocate, stun.ClassRequest).Value()
	typeRefreshRequest  = stun.NewType(stun.MethodRefresh, stun.ClassRequest).Value()
)

func newObserver() *observer {
	return &observer{
		authAlloc: make(map[txID]struct{}),
		dealloc:   make(map[txID]struct{}),
	}
}

// outbound notes the requests we need to recognise answers to. Only Allocate
// and Refresh requests are decoded; everything else costs one comparison.
func (o *observer) outbound(b []byte) {
	if len(b) < 20 || b[0]&0xC0 != 0 {
		return
	}
	t := binary.BigEndian.Uint16(b)
	if t != typeAllocateRequest && t != typeRefreshRequest {
		return
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch t {
	case typeAllocateRequest:
		if m.Contains(stun.AttrMessageIntegrity) && len(o.authAlloc) < 64 {
			o.authAlloc[m.TransactionID] = struct{}{}
		}
	case typeRefreshRequest:
		v, err := m.Get(stun.AttrLifetime)
		if err == nil && len(v) == 4 && binary.BigEndian.Uint32(v) == 0 && o.deallocCh != nil && len(o.dealloc) < 16 {
			o.dealloc[m.TransactionID] = struct{}{}
		}
	}
}

// answer looks at an answer from the server: any error answer (for its
// NONCE), and Allocate and Refresh success answers.
func (o *observer) answer(b []byte, t stun.MessageType) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	code := errorCode(m)
	var nonce stun.Nonce
	if code != 0 && nonce.GetFrom(m) == nil {
		o.setNonce(nonce)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch t.Method {
	case stun.MethodAllocate:
		o.allocAnswered = true
		if _, ok := o.authAlloc[m.TransactionID]; ok && code != 0 {
			o.allocCode = code
		}
	case stun.MethodRefresh:
		if _, ok := o.dealloc[m.TransactionID]; !ok {
			return
		}
		delete(o.dealloc, m.TransactionID)
		a := refreshAnswer{code: code, nonce: nonce}
		if code != 0 {
			var realm stun.Realm
			if realm.GetFrom(m) == nil {
				a.realm = realm
			}
		}
		select {
		case o.deallocCh <- a:
		default:
		}
	}
}

func (o *observer) setNonce(n stun.Nonce) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nonce = n
}

func (o *observer) currentNonce() stun.Nonce {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nonce
}

// errorCode is the code of an error answer, -1 for one without ERROR-CODE,
// 0 for any other message.
func errorCode(m *stun.Message) int {
	if m.Type.Class != stun.ClassErrorResponse {
		return 0
	}
	var ec stun.ErrorCodeAttribute
	if ec.GetFrom(m) != nil {
		return -1
	}
	return int(ec.Code)
}

func (o *observer) startAllocate() {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.authAlloc)
	o.allocAnswered = false
	o.allocCode = 0
}

func (o *observer) allocOutcome() (code int, answered bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.allocCode, o.allocAnswered
}

// armDealloc starts watching for deallocation answers.
func (o *observer) armDealloc() <-chan refreshAnswer {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deallocCh = make(chan refreshAnswer, 4)
	return o.deallocCh
}

func (o *observer) addKeepalive(id txID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keepalive[o.nextKA] = id
	o.nextKA = (o.nextKA + 1) % len(o.keepalive)
}

// isKeepalive reports whether a Binding answer (whose transaction ID sits at
// bytes 8..20) answers one of our keepalives.
func (o *observer) isKeepalive(b []byte) bool {
	var id txID
	copy(id[:], b[8:20])
	if id == (txID{}) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range o.keepalive {
		if k == id {
			return true
		}
	}
	return false
}

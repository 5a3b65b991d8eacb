package rendezvous

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/internal/stunpad"
	"github.com/p2pcompat/p2pcompat/relayfallback"
)

// What the server sends back for what it receives, in bytes on the wire:
// the factor by which one who spoofs a victim's address could use it as
// an amplifier. Issue 11, row 9: TURN Allocate and Refresh 20 B -> 128 B
// (6.4x), STUN Binding 2.0x (IPv6 2.6x).

// exchange sends req from conn to srv and returns the first answer that
// match accepts, or nil if none comes within eventuallyWithin.
func exchange(t *testing.T, conn *net.UDPConn, srv netip.AddrPort, req []byte, match func([]byte) bool) []byte {
	t.Helper()
	_, err := conn.WriteToUDPAddrPort(req, srv)
	require.NoError(t, err)
	buf := make([]byte, 2048)
	deadline := time.Now().Add(eventuallyWithin)
	for {
		require.NoError(t, conn.SetReadDeadline(deadline)) // bounds the test only
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		require.NoError(t, err)
		if match(buf[:n]) {
			return bytes.Clone(buf[:n])
		}
	}
}

// sameTransaction matches the STUN answer to req.
func sameTransaction(req []byte) func([]byte) bool {
	return func(b []byte) bool {
		return len(b) >= 20 && b[0] < 0x04 && bytes.Equal(b[8:20], req[8:20])
	}
}

func build(t *testing.T, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
	require.NoError(t, err)
	return m.Raw
}

func turnRequest(method stun.Method) stun.MessageType { return stun.NewType(method, stun.ClassRequest) }

// requestedUDP is REQUESTED-TRANSPORT UDP (RFC 8656 section 18.7).
var requestedUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

func lifetime(seconds uint32) stun.RawAttribute {
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, seconds)}
}

type amplificationCase struct {
	name string
	req  []byte
	// most is the largest answer the server is designed to give it; 0:
	// none at all.
	most int
	// ours: a request of our own clients, which the server must never
	// answer with more than it carried.
	ours bool
}

func measure(t *testing.T, conn *net.UDPConn, srv netip.AddrPort, cases []amplificationCase) {
	t.Helper()
	for _, c := range cases {
		if c.most == 0 {
			// The relay handles a source's requests in order: an answer
			// to the request would come before the one to the
			// unauthenticated Allocate sent after it.
			_, err := conn.WriteToUDPAddrPort(c.req, srv)
			require.NoError(t, err)
			barrier := build(t, turnRequest(stun.MethodAllocate))
			ans := exchange(t, conn, srv, barrier, func(b []byte) bool { return sameTransaction(c.req)(b) || sameTransaction(barrier)(b) })
			require.NotNil(t, ans, "%s: no answer to the barrier after it", c.name)
			assert.True(t, sameTransaction(barrier)(ans), "%s: answered with %d B", c.name, len(ans))
			t.Logf("%-58s %3d B -> no answer", c.name, len(c.req))
			continue
		}
		ans := exchange(t, conn, srv, c.req, sameTransaction(c.req))
		if !assert.NotNil(t, ans, "%s: no answer", c.name) {
			continue
		}
		t.Logf("%-58s %3d B -> %3d B  %.2fx", c.name, len(c.req), len(ans), float64(len(ans))/float64(len(c.req)))
		assert.LessOrEqual(t, len(ans), c.most, "%s: answer larger than designed", c.name)
		if c.ours {
			assert.LessOrEqual(t, len(ans), len(c.req), "%s: our own client's request is answered with more bytes than it carried", c.name)
		}
	}
}

// Every unauthenticated request a standard STUN or TURN client sends is
// answered with at most the designed number of bytes, and our own clients'
// requests with no more than they carried.
func TestAmplificationFactors(t *testing.T) {
	_, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1"})
	conn := rawSocket(t)

	ours, err := stunpad.BindingRequest()
	require.NoError(t, err)
	const (
		bindingV4   = 20 + 12 // header, XOR-MAPPED-ADDRESS of IPv4
		bindingV6   = 20 + 24
		fingerprint = 8
		unauthTURN  = stunpad.UnauthenticatedTURNAnswer
	)
	pionAllocate := build(t, turnRequest(stun.MethodAllocate), requestedUDP, stun.Fingerprint)
	measure(t, conn, srv, []amplificationCase{
		{"STUN Binding, 20 B minimal", build(t, stun.BindingRequest), bindingV4, false},
		{"STUN Binding with FINGERPRINT", build(t, stun.BindingRequest, stun.Fingerprint), bindingV4 + fingerprint, false},
		{"STUN Binding with SOFTWARE and FINGERPRINT", build(t, stun.BindingRequest, stun.NewSoftware("p2pcompat test"), stun.Fingerprint), bindingV4 + fingerprint, false},
		{"STUN Binding of our clients (p2p, relayfallback keepalive)", ours.Raw, bindingV4 + fingerprint, true},

		{"TURN Allocate, 20 B without attributes", build(t, turnRequest(stun.MethodAllocate)), unauthTURN, false},
		{"TURN Allocate as pion's client sends it", pionAllocate, unauthTURN, false},
		{"TURN Allocate with LIFETIME, DONT-FRAGMENT, SOFTWARE", build(t, turnRequest(stun.MethodAllocate), requestedUDP, lifetime(600),
			stun.RawAttribute{Type: stun.AttrDontFragment}, stun.NewSoftware("a TURN client 1.0"), stun.Fingerprint), unauthTURN, false},
		{"TURN Allocate of our clients (relayfallback, padded)", stunpad.Request(pionAllocate, unauthTURN), unauthTURN, true},
		{"TURN Refresh, 20 B", build(t, turnRequest(stun.MethodRefresh)), unauthTURN, false},
		{"TURN Refresh with LIFETIME and FINGERPRINT", build(t, turnRequest(stun.MethodRefresh), lifetime(600), stun.Fingerprint), unauthTURN, false},
		// Without an allocation of the source's, nothing at all.
		{"TURN CreatePermission, 20 B", build(t, turnRequest(stun.MethodCreatePermission)), 0, false},
		{"TURN ChannelBind, 20 B", build(t, turnRequest(stun.MethodChannelBind)), 0, false},
		// A made-up NONCE is stale: 438, with a fresh NONCE and the REALM.
		{"TURN Refresh, made-up NONCE and MESSAGE-INTEGRITY", build(t, turnRequest(stun.MethodRefresh), stun.NewNonce("x"),
			stun.NewUsername("u"), stun.NewRealm(turnRealm), stun.NewShortTermIntegrity("p")), unauthTURN, false},
	})

	// Our own protocol: a first, unauthenticated registration is padded to
	// cover its answer.
	reg := regBytes(0xa1, 77, 480, key(77))
	ans := exchange(t, conn, srv, reg, func(b []byte) bool { return len(b) > 0 && b[0] == 0xD0 })
	require.NotNil(t, ans, "no REGISTERED")
	t.Logf("%-58s %3d B -> %3d B  %.2fx", "REGISTER (unauthenticated, first)", len(reg), len(ans), float64(len(ans))/float64(len(reg)))
	assert.LessOrEqual(t, len(ans), len(reg), "REGISTERED larger than its REGISTER")

	// IPv6, where the address in the answer is 12 bytes longer.
	conn6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Logf("IPv6 skipped: no ::1 here: %v", err)
		return
	}
	defer conn6.Close()
	_, srv6 := startServer(t, ServerConfig{ListenAddr: "[::1]:0"})
	measure(t, conn6, srv6, []amplificationCase{
		{"STUN Binding over IPv6, 20 B minimal", build(t, stun.BindingRequest), bindingV6, false},
		{"STUN Binding over IPv6 with FINGERPRINT", build(t, stun.BindingRequest, stun.Fingerprint), bindingV6 + fingerprint, false},
		{"STUN Binding over IPv6 of our clients", ours.Raw, bindingV6 + fingerprint, true},
	})
}

// stunLog records the sizes of STUN messages by transaction ID.
type stunLog struct {
	mu   sync.Mutex
	size map[[12]byte]int
	kind map[[12]byte]stun.MessageType
}

func (l *stunLog) note(b []byte) {
	if len(b) < 20 || b[0] > 0x03 {
		return
	}
	var id [12]byte
	copy(id[:], b[8:20])
	var mt stun.MessageType
	mt.ReadValue(binary.BigEndian.Uint16(b))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size == nil {
		l.size, l.kind = map[[12]byte]int{}, map[[12]byte]stun.MessageType{}
	}
	l.size[id] = max(l.size[id], len(b))
	l.kind[id] = mt
}

// Our own TURN client, through a whole allocation against the embedded
// relay (the unauthenticated Allocate, its 401, the authenticated
// Allocate, a permission, a keepalive-sized Binding, the deallocation),
// is never answered with more bytes than the request carried.
func TestOurTURNClientIsNeverAmplified(t *testing.T) {
	_, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1"})
	a := newPeer(t, srv, 1, 480, keyed(t))
	a.register(t)
	b := newPeer(t, srv, 2, 480, keyed(t))
	b.register(t)
	require.Equal(t, LookupOK, a.lookup(t, 2, 0xab).Status) // B is A's contact
	relays := a.client.Relays()
	require.Len(t, relays, 1)
	r := relays[0]

	var out, in stunLog
	rc, err := relayfallback.New(relayfallback.Config{
		Server: relayfallback.Server{Addr: r.Addr.String(), Username: r.Username, Password: r.Password},
		Send: func(p []byte, to netip.AddrPort) error {
			if to == srv {
				out.note(p)
			}
			_, err := a.conn.WriteToUDPAddrPort(p, to)
			return err
		},
		RTO: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	handle := func(p []byte, from netip.AddrPort) {
		if from == srv {
			in.note(p)
		}
		rc.HandleInbound(p, from)
	}
	a.other.Store(&handle)
	ctx, cancel := context.WithTimeout(context.Background(), eventuallyWithin)
	defer cancel()
	_, err = rc.Allocate(ctx)
	require.NoError(t, err)
	arrived := make(chan struct{}, 1)
	atB := func(p []byte, _ netip.AddrPort) {
		if string(p) == "through the relay" {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	}
	b.other.Store(&atB)
	rc.Permit(b.addr)
	require.NoError(t, rc.WriteTo([]byte("through the relay"), b.addr))
	await(t, arrived, "the datagram through the relay at B")
	answeredWith := func(mt stun.MessageType) func() bool {
		return func() bool {
			in.mu.Lock()
			defer in.mu.Unlock()
			for _, k := range in.kind {
				if k == mt {
					return true
				}
			}
			return false
		}
	}
	require.Eventually(t, answeredWith(stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse)), eventuallyWithin, 2*time.Millisecond,
		"the ChannelBind answer")
	// The keepalive's Binding request, as the client sends it.
	keepalive, err := stunpad.BindingRequest()
	require.NoError(t, err)
	out.note(keepalive.Raw)
	_, err = a.conn.WriteToUDPAddrPort(keepalive.Raw, srv)
	require.NoError(t, err)
	require.NoError(t, rc.Close()) // waits for the deallocation's answer

	require.Eventually(t, answeredWith(stun.BindingSuccess), eventuallyWithin, 2*time.Millisecond, "the keepalive's answer")
	out.mu.Lock()
	in.mu.Lock()
	defer out.mu.Unlock()
	defer in.mu.Unlock()
	answered := map[stun.Method]int{}
	for id, n := range in.size {
		req, ok := out.size[id]
		if !assert.True(t, ok, "an answer (%v) to no request of ours", in.kind[id]) {
			continue
		}
		answered[in.kind[id].Method]++
		t.Logf("%-32v %3d B -> %-32v %3d B  %.2fx", out.kind[id], req, in.kind[id], n, float64(n)/float64(req))
		assert.LessOrEqual(t, n, req, "%v answered with more bytes than it carried", out.kind[id])
	}
	// The flow had everything: two Allocates (401, success), a
	// CreatePermission, a ChannelBind, a Binding and the deallocation.
	assert.Equal(t, 2, answered[stun.MethodAllocate], "Allocate answers")
	for _, m := range []stun.Method{stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodBinding, stun.MethodRefresh} {
		assert.GreaterOrEqual(t, answered[m], 1, "%v answers", m)
	}
}

// The per-source rate limit bounds what the server sends toward one
// address however many requests carry it as their source: a burst of
// unauthenticated 20-byte Allocates, the most amplified request, gets at
// most RateBurst answers plus RateLimit a second.
func TestAmplificationIsRateLimited(t *testing.T) {
	const rate, burst = defaultRateLimit, defaultRateBurst // RateLimit and RateBurst left at 0
	_, srv := startServer(t, ServerConfig{RelayIP: "127.0.0.1"})
	victim := rawSocket(t) // on loopback, a source is an address and port
	require.NoError(t, victim.SetReadBuffer(1<<20))

	const sent = 250 // more than RateBurst, fewer than the relay's inbound queue holds
	start := time.Now()
	for range sent {
		_, err := victim.WriteToUDPAddrPort(build(t, turnRequest(stun.MethodAllocate)), srv)
		require.NoError(t, err)
	}
	// The relay handles its datagrams in order: once another source's
	// Allocate is answered, every answer to the burst is out.
	// The burst may have overflowed the server's socket buffer, which
	// then drops the barrier too: it is sent again until answered.
	other := rawSocket(t)
	barrier := build(t, turnRequest(stun.MethodAllocate))
	answered := false
	for try := 0; try < 20 && !answered; try++ {
		_, err := other.WriteToUDPAddrPort(barrier, srv)
		require.NoError(t, err)
		require.NoError(t, other.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
		n, _, err := other.ReadFromUDPAddrPort(make([]byte, 2048))
		answered = err == nil && n > 0
	}
	require.True(t, answered, "the barrier's answer")
	elapsed := time.Since(start)

	answers, answerBytes := 0, 0
	buf := make([]byte, 2048)
	for {
		// What the burst brought is queued at the socket already; the
		// deadline only ends the draining.
		require.NoError(t, victim.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
		n, _, err := victim.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		answers++
		answerBytes += n
	}
	bound := burst + int(rate*elapsed.Seconds()) + 1
	t.Logf("%d unauthenticated 20 B Allocates (%d B) in %v from one source: %d answered (%d B, %.2fx of what was sent); bound %d; sustained at most %d answers/s, %d B/s",
		sent, sent*20, elapsed.Round(time.Millisecond), answers, answerBytes, float64(answerBytes)/float64(sent*20), bound, rate, rate*stunpad.UnauthenticatedTURNAnswer)
	assert.Positive(t, answers)
	assert.LessOrEqual(t, answers, bound, "answers beyond the rate limit")
	assert.LessOrEqual(t, answerBytes, answers*stunpad.UnauthenticatedTURNAnswer)
}

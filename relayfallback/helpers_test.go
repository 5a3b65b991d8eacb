package relayfallback

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

const (
	testUser  = "alice"
	testPass  = "correct horse"
	testRealm = "p2pcompat.test"
	// failAfter bounds every wait in the tests; reaching it is a failure,
	// never the way a test moves on.
	failAfter = 5 * time.Second
)

func quietFactory() *logging.DefaultLoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.Writer = io.Discard
	return f
}

// authHandler accepts testUser with testPass, the way a long-term
// credential TURN server does.
func authHandler(username, realm string, _ net.Addr) ([]byte, bool) {
	if username != testUser {
		return nil, false
	}
	return turn.GenerateAuthKey(username, realm, testPass), true
}

// startTURN runs pion's TURN server on 127.0.0.1.
func startTURN(t testing.TB) (*turn.Server, netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         testRealm,
		AuthHandler:   authHandler,
		LoggerFactory: quietFactory(),
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1),
				Address:      "127.0.0.1",
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

// harness is the shared socket of a peer: a plain UDP socket on 127.0.0.1
// whose reader feeds HandleInbound and keeps what the client leaves.
type harness struct {
	t      testing.TB
	sock   *net.UDPConn
	client *Client
	data   chan datagram // OnData
	other  chan datagram // what HandleInbound did not consume

	// TURN answers seen on their way to HandleInbound.
	permOK      chan struct{}
	bindOK      chan struct{}
	channelData atomic.Int32

	// While holdPerm is set, CreatePermission answers are held back.
	mu       sync.Mutex
	holdPerm bool
	held     [][]byte
	heldCh   chan struct{}

	readerDone chan struct{}
	closeOnce  sync.Once
}

type harnessOpt func(*Config)

func newHarness(t testing.TB, server netip.AddrPort, pass string, opts ...harnessOpt) *harness {
	t.Helper()
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:          t,
		sock:       sock,
		data:       make(chan datagram, 1024),
		other:      make(chan datagram, 64),
		permOK:     make(chan struct{}, 64),
		bindOK:     make(chan struct{}, 64),
		heldCh:     make(chan struct{}, 64),
		readerDone: make(chan struct{}),
	}
	cfg := Config{
		Server: Server{Addr: server.String(), Username: testUser, Password: pass},
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := sock.WriteToUDPAddrPort(b, to)
			return err
		},
		OnData: func(b []byte, from netip.AddrPort) {
			select {
			case h.data <- datagram{bytes.Clone(b), from}:
			default:
			}
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.client, err = New(cfg)
	if err != nil {
		sock.Close()
		t.Fatal(err)
	}
	go h.read()
	t.Cleanup(h.close)
	return h
}

func (h *harness) read() {
	defer close(h.readerDone)
	buf := make([]byte, 1<<16)
	for {
		n, from, err := h.sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b := bytes.Clone(buf[:n])
		if from == h.client.ServerAddr() && b[0]&0xC0 == 0 && stun.IsMessage(b) {
			var mt stun.MessageType
			mt.ReadValue(binary.BigEndian.Uint16(b))
			if mt.Method == stun.MethodCreatePermission {
				h.mu.Lock()
				hold := h.holdPerm
				if hold {
					h.held = append(h.held, b)
				}
				h.mu.Unlock()
				if hold {
					h.heldCh <- struct{}{}
					continue
				}
			}
			h.client.HandleInbound(b, from)
			if mt.Class == stun.ClassSuccessResponse {
				switch mt.Method {
				case stun.MethodCreatePermission:
					h.permOK <- struct{}{}
				case stun.MethodChannelBind:
					h.bindOK <- struct{}{}
				}
			}
			continue
		}
		if from == h.client.ServerAddr() && b[0]&0xC0 == 0x40 {
			h.channelData.Add(1)
		}
		if !h.client.HandleInbound(b, from) {
			select {
			case h.other <- datagram{b, from}:
			default:
			}
		}
	}
}

// release hands the held CreatePermission answers to the client and stops
// holding them.
func (h *harness) release() {
	h.mu.Lock()
	held := h.held
	h.held, h.holdPerm = nil, false
	h.mu.Unlock()
	for _, b := range held {
		h.client.HandleInbound(b, h.client.ServerAddr())
	}
}

// close closes the client while the reader still runs (so that the
// deallocation's answer arrives), then the socket, and waits for the reader.
func (h *harness) close() {
	h.closeOnce.Do(func() {
		h.client.Close()
		h.sock.Close()
		<-h.readerDone
	})
}

func (h *harness) allocate() netip.AddrPort {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	relayed, err := h.client.Allocate(ctx)
	if err != nil {
		h.t.Fatalf("Allocate: %v", err)
	}
	return relayed
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(failAfter):
		t.Fatalf("no %s within %v", what, failAfter)
	}
}

func nextData(t *testing.T, ch <-chan datagram, what string) datagram {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(failAfter):
		t.Fatalf("no %s within %v", what, failAfter)
		return datagram{}
	}
}

// peerSocket is a remote peer on 127.0.0.1.
func peerSocket(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func readPeer(t testing.TB, c *net.UDPConn) datagram {
	t.Helper()
	buf := make([]byte, 1<<16)
	if err := c.SetReadDeadline(time.Now().Add(failAfter)); err != nil {
		t.Fatal(err)
	}
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	return datagram{bytes.Clone(buf[:n]), from}
}

// waitGoroutines checks for leaks. pion's timer goroutines are told to stop
// by Close but exit on their own schedule, so this polls the count until it
// is back to the baseline, failing after failAfter.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:n])
		}
		time.Sleep(time.Millisecond)
	}
}

func isQueueFull(err error) bool { return errors.Is(err, ErrQueueFull) }

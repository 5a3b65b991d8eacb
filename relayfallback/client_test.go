package relayfallback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun"
)

func TestNewValidates(t *testing.T) {
	send := func([]byte, netip.AddrPort) error { return nil }
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Send: send}, "Server.Addr"},
		{Config{Server: Server{Addr: "127.0.0.1:3478"}}, "Send"},
		{Config{Server: Server{Addr: "127.0.0.1:3478"}, Send: send, RTO: -1}, "RTO"},
		{Config{Server: Server{Addr: "127.0.0.1:0"}, Send: send}, "Server.Addr"},
	} {
		_, err := New(tc.cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("New(%+v) = %v, want a ConfigError for %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := New(Config{Server: Server{Addr: "no port"}, Send: send}); err == nil {
		t.Error("New accepted an address without a port")
	}
	c, err := New(Config{Server: Server{Addr: "127.0.0.1:3478"}, Send: send})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ServerAddr(); got != netip.MustParseAddrPort("127.0.0.1:3478") {
		t.Errorf("ServerAddr = %v", got)
	}
	if c.RelayedAddr().IsValid() {
		t.Error("RelayedAddr before Allocate is not zero")
	}
}

func TestAllocateCloseDeallocatesAndLeavesNoGoroutines(t *testing.T) {
	srv, addr := startTURN(t)
	peer := peerSocket(t)
	baseline := runtime.NumGoroutine()

	h := newHarness(t, addr, testPass)
	relayed := h.allocate()
	if relayed.Addr() != netip.MustParseAddr("127.0.0.1") || relayed.Port() == 0 {
		t.Fatalf("relayed address %v", relayed)
	}
	if got := h.client.RelayedAddr(); got != relayed {
		t.Errorf("RelayedAddr = %v, Allocate said %v", got, relayed)
	}
	if again := h.allocate(); again != relayed {
		t.Errorf("second Allocate = %v, want the existing %v", again, relayed)
	}
	if n := srv.AllocationCount(); n != 1 {
		t.Fatalf("server has %d allocations, want 1", n)
	}
	// Give every goroutine something to do: a permission, a write (and
	// with it a channel binding).
	h.client.Permit(addrOf(peer))
	if err := h.client.WriteTo([]byte("x"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	readPeer(t, peer)
	wait(t, h.bindOK, "channel binding")

	h.close()
	// Close waited for the deallocation's answer, which the server sends
	// after deleting the allocation.
	if n := srv.AllocationCount(); n != 0 {
		t.Errorf("server has %d allocations after Close, want 0", n)
	}
	if h.client.RelayedAddr().IsValid() {
		t.Error("RelayedAddr after Close is not zero")
	}
	if err := h.client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitGoroutines(t, baseline)
}

func TestPermitLetsPeerIn(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	peer := peerSocket(t)
	// Before the allocation: the permission waits for it.
	h.client.Permit(addrOf(peer))
	relayed := h.allocate()
	wait(t, h.permOK, "CreatePermission answer")

	if _, err := peer.WriteToUDPAddrPort([]byte("hello"), relayed); err != nil {
		t.Fatal(err)
	}
	d := nextData(t, h.data, "OnData")
	if string(d.b) != "hello" || d.from != addrOf(peer) {
		t.Errorf("OnData(%q, %v), want (hello, %v)", d.b, d.from, addrOf(peer))
	}
}

func TestWriteToReachesPeerAndRepliesComeBack(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	relayed := h.allocate()
	peer := peerSocket(t)

	// The first write goes as a Send indication while the channel is bound.
	if err := h.client.WriteTo([]byte("ping 1"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	d := readPeer(t, peer)
	if string(d.b) != "ping 1" || d.from != relayed {
		t.Fatalf("peer got (%q, %v), want (ping 1, %v)", d.b, d.from, relayed)
	}
	wait(t, h.bindOK, "channel binding")

	// Bound: our writes go as ChannelData, and the server relays the
	// peer's answers as ChannelData too.
	if err := h.client.WriteTo([]byte("ping 2"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	if d := readPeer(t, peer); string(d.b) != "ping 2" {
		t.Fatalf("peer got %q, want ping 2", d.b)
	}
	if _, err := peer.WriteToUDPAddrPort([]byte("pong"), relayed); err != nil {
		t.Fatal(err)
	}
	d = nextData(t, h.data, "OnData")
	if string(d.b) != "pong" || d.from != addrOf(peer) {
		t.Errorf("OnData(%q, %v), want (pong, %v)", d.b, d.from, addrOf(peer))
	}
	if h.channelData.Load() == 0 {
		t.Error("no ChannelData from the server after the channel binding")
	}
}

// The first datagram to a new peer IP needs a CreatePermission round trip.
// With the server's answers held back, WriteTo must still return at once,
// drop what overflows the queue, and the queued datagrams must arrive in
// order once the answer is let through.
func TestWriteToNeverWaitsForThePermission(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	h.allocate()
	peer := peerSocket(t)
	h.mu.Lock()
	h.holdPerm = true
	h.mu.Unlock()

	const n = 20
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := h.client.WriteTo(fmt.Appendf(nil, "%d", i), addrOf(peer)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("WriteTo blocked while the permission was pending")
	}
	full := 0
	for range maxQueued {
		if err := h.client.WriteTo([]byte("overflow"), addrOf(peer)); isQueueFull(err) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full != n {
		t.Errorf("%d writes refused with ErrQueueFull, want %d", full, n)
	}
	wait(t, h.heldCh, "held CreatePermission answer")
	h.release()
	for i := range n {
		if d := readPeer(t, peer); string(d.b) != fmt.Sprint(i) {
			t.Fatalf("peer got %q, want %d", d.b, i)
		}
	}
	for range maxQueued - n {
		if d := readPeer(t, peer); string(d.b) != "overflow" {
			t.Fatalf("peer got %q, want overflow", d.b)
		}
	}
	// With the permission in place, writes go out directly.
	if err := h.client.WriteTo([]byte("direct"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	if d := readPeer(t, peer); string(d.b) != "direct" {
		t.Fatalf("peer got %q, want direct", d.b)
	}
}

func TestWrongPasswordIsUnauthorizedAtOnce(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	start := time.Now()
	_, err := h.client.Allocate(ctx)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Allocate = %v, want ErrUnauthorized", err)
	}
	// Two round trips on loopback; the first retransmission alone
	// would take 200 ms and giving up 7.8 s.
	if el := time.Since(start); el > time.Second {
		t.Errorf("ErrUnauthorized after %v", el)
	}
}

// silentServer is a UDP socket that takes datagrams and never answers (and
// so causes no ICMP errors either).
func silentServer(t *testing.T) netip.AddrPort {
	t.Helper()
	c := peerSocket(t)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return addrOf(c)
}

func TestUnreachableServerTimesOutAtTheDeadline(t *testing.T) {
	h := newHarness(t, silentServer(t), testPass)
	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err := h.client.Allocate(ctx)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Allocate = %v, want ErrTimeout and DeadlineExceeded", err)
	}
	if el := time.Since(start); el > deadline+time.Second {
		t.Errorf("Allocate returned %v after the deadline", el-deadline)
	}
	// The abandoned attempt left the client usable: it tries again.
	ctx2, cancel2 := context.WithTimeout(context.Background(), deadline)
	defer cancel2()
	if _, err := h.client.Allocate(ctx2); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second Allocate = %v, want ErrTimeout", err)
	}
}

func TestUnreachableServerTimesOutAfterRetransmissions(t *testing.T) {
	// 7 transmissions, 1+2+...+64 RTOs apart: about 0.25 s.
	h := newHarness(t, silentServer(t), testPass, func(c *Config) { c.RTO = 2 * time.Millisecond })
	_, err := h.client.Allocate(context.Background())
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Allocate = %v, want ErrTimeout", err)
	}
}

func TestCloseAbandonsAllocate(t *testing.T) {
	h := newHarness(t, silentServer(t), testPass)
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.Allocate(context.Background())
		errc <- err
	}()
	h.close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Allocate = %v, want net.ErrClosed", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Allocate still running after Close")
	}
}

func TestSendErrorFailsAllocate(t *testing.T) {
	boom := errors.New("boom")
	h := newHarness(t, silentServer(t), testPass, func(c *Config) {
		c.Send = func([]byte, netip.AddrPort) error { return boom }
	})
	_, err := h.client.Allocate(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("Allocate = %v, want the Send error", err)
	}
}

func TestWriteToErrors(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	peer := netip.MustParseAddrPort("127.0.0.1:9")
	if err := h.client.WriteTo([]byte("x"), peer); !errors.Is(err, ErrNotAllocated) {
		t.Errorf("WriteTo before Allocate = %v, want ErrNotAllocated", err)
	}
	h.allocate()
	if err := h.client.WriteTo([]byte("x"), netip.MustParseAddrPort("[::1]:9")); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("WriteTo to IPv6 = %v, want ErrNotIPv4", err)
	}
	h.close()
	if err := h.client.WriteTo([]byte("x"), peer); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Close = %v, want net.ErrClosed", err)
	}
	if _, err := h.client.Allocate(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Allocate after Close = %v, want net.ErrClosed", err)
	}
	h.client.Permit(peer) // no effect, no panic
}

func TestHandleInboundLeavesOtherTraffic(t *testing.T) {
	c, err := New(Config{
		Server: Server{Addr: "127.0.0.1:3478"},
		Send:   func([]byte, netip.AddrPort) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := c.ServerAddr()
	mapped := netip.AddrPortFrom(netip.AddrFrom16(server.Addr().As16()), server.Port())
	other := netip.MustParseAddrPort("127.0.0.1:4000")

	binding := stun.MustBuild(stun.TransactionID, stun.BindingSuccess, stun.Fingerprint).Raw
	data := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodData, stun.ClassIndication), stun.Fingerprint).Raw
	channelData := []byte{0x40, 0x00, 0x00, 0x02, 'h', 'i'}
	rendezvous := append([]byte{0xD0, 2}, bytes.Repeat([]byte{0}, 30)...)
	for _, tc := range []struct {
		name string
		b    []byte
		from netip.AddrPort
		want bool
	}{
		{"ChannelData from the server", channelData, server, true},
		{"ChannelData from the server, 4in6", channelData, mapped, true},
		{"Data indication from the server", data, server, true},
		{"Binding answer from the server", binding, server, false},
		{"rendezvous message from the server", rendezvous, server, false},
		{"ChannelData from elsewhere", channelData, other, false},
		{"Data indication from elsewhere", data, other, false},
		{"empty", nil, server, false},
	} {
		if got := c.HandleInbound(tc.b, tc.from); got != tc.want {
			t.Errorf("%s: HandleInbound = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestKeepaliveAnswerIsConsumed(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	h.allocate()
	h.client.sendKeepalive()
	// The server answers the Binding request; the answer is ours, so it
	// must not reach the caller. A Binding answer we did not ask for must.
	stranger := stun.MustBuild(stun.TransactionID, stun.BindingSuccess, stun.Fingerprint).Raw
	if h.client.HandleInbound(stranger, addr) {
		t.Error("HandleInbound took a Binding answer that was not ours")
	}
	// The server answers in order and loopback keeps it, so once the
	// answer to a later request (a permission) has been handled, the
	// keepalive's answer has been too.
	peer := peerSocket(t)
	h.client.Permit(addrOf(peer))
	wait(t, h.permOK, "CreatePermission answer")
	select {
	case d := <-h.other:
		t.Errorf("the caller got %d bytes from %v", len(d.b), d.from)
	default:
	}
}

func TestConcurrentWriteTo(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	h.allocate()
	peers := []*net.UDPConn{peerSocket(t), peerSocket(t)}
	got := make([]chan struct{}, len(peers))
	for i, p := range peers {
		got[i] = make(chan struct{}, 1)
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := p.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				select {
				case got[i] <- struct{}{}:
				default:
				}
			}
		}()
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p := addrOf(peers[(w+i)%len(peers)])
				if err := h.client.WriteTo(fmt.Appendf(nil, "%d/%d", w, i), p); err != nil && !isQueueFull(err) {
					errs <- err
					return
				}
				if i%50 == 0 {
					h.client.Permit(p)
					_ = h.client.RelayedAddr()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range peers {
		wait(t, got[i], fmt.Sprintf("datagram at peer %d", i))
	}
}

func TestRevokeStartsOver(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	relayed := h.allocate()
	peer := peerSocket(t)
	h.client.Permit(addrOf(peer))
	if err := h.client.WriteTo([]byte("before"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	if d := readPeer(t, peer); string(d.b) != "before" {
		t.Fatalf("peer got %q", d.b)
	}
	wait(t, h.bindOK, "channel binding")
	h.client.Revoke(addrOf(peer))

	// The next write asks for the permission again and gets through.
	if err := h.client.WriteTo([]byte("after"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	if d := readPeer(t, peer); string(d.b) != "after" || d.from != relayed {
		t.Fatalf("peer got (%q, %v)", d.b, d.from)
	}
}

// After Revoke the server keeps the channel binding until it lapses and
// keeps sending ChannelData on its number: a peer permitted again must
// still be heard, and written to on the same channel.
func TestRevokedPeerPermittedAgainIsStillHeard(t *testing.T) {
	_, addr := startTURN(t)
	h := newHarness(t, addr, testPass)
	relayed := h.allocate()
	peer := peerSocket(t)
	h.client.Permit(addrOf(peer))
	if err := h.client.WriteTo([]byte("bind"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	readPeer(t, peer)
	wait(t, h.bindOK, "channel binding")
	h.client.Revoke(addrOf(peer))
	h.client.Permit(addrOf(peer))
	if err := h.client.WriteTo([]byte("again"), addrOf(peer)); err != nil {
		t.Fatal(err)
	}
	if d := readPeer(t, peer); string(d.b) != "again" {
		t.Fatalf("peer got %q", d.b)
	}
	// The server relays the peer's answer as ChannelData on the old number.
	if _, err := peer.WriteToUDPAddrPort([]byte("answer"), relayed); err != nil {
		t.Fatal(err)
	}
	if d := nextData(t, h.data, "the answer"); string(d.b) != "answer" || d.from != addrOf(peer) {
		t.Fatalf("got (%q, %v)", d.b, d.from)
	}
}

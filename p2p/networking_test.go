package p2p_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"

	"github.com/p2pcompat/p2pcompat/internal/testsupport"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

func start(t *testing.T, edit func(*p2p.Config)) (*rendezvous.Server, *p2p.Networking, *p2p.Networking) {
	t.Helper()
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	mk := func(id p2p.SteamID) *p2p.Networking {
		cfg := p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"}
		if edit != nil {
			edit(&cfg)
		}
		n, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	return srv, mk(1), mk(2)
}

func receive(t *testing.T, n *p2p.Networking, ch int) p2p.Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := n.Receive(ctx, ch)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return p
}

// TestCloseLeavesNoGoroutines: every goroutine of the library ends on Close.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var peers []*p2p.Networking
		for id := p2p.SteamID(1); id <= 3; id++ {
			n, err := p2p.New(p2p.Config{SteamID: id, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			n.AcceptP2PSessionWithUser(1)
			peers = append(peers, n)
		}
		// Sessions, timers, a blocked Receive and a failed lookup in flight.
		peers[0].SendP2PPacket(2, make([]byte, 100<<10), p2p.P2PSendReliable, 0)
		peers[0].SendP2PPacket(3, []byte("x"), p2p.P2PSendReliable, 0)
		peers[0].SendP2PPacket(404, []byte("x"), p2p.P2PSendReliable, 0)
		receive(t, peers[1], 0)
		receive(t, peers[2], 0)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := peers[2].Receive(context.Background(), 5); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Receive blocked across Close returned %v, want net.ErrClosed", err)
			}
		}()
		for _, n := range peers {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if err := peers[0].Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close = %v, want net.ErrClosed", err)
		}
	}()
	waitGoroutines(t, before)
}

func TestNewValidatesConfig(t *testing.T) {
	var ce *p2p.ConfigError
	if _, err := p2p.New(p2p.Config{RendezvousAddr: "127.0.0.1:1"}); !errors.As(err, &ce) || ce.Field != "SteamID" {
		t.Fatalf("missing SteamID: %v", err)
	}
	if _, err := p2p.New(p2p.Config{SteamID: 1}); !errors.As(err, &ce) || ce.Field != "RendezvousAddr" {
		t.Fatalf("missing RendezvousAddr: %v", err)
	}
	// Every negative duration is refused, naming its field, rather than
	// becoming the default.
	for field, set := range map[string]func(*p2p.Config){
		"ConnectTimeout":       func(c *p2p.Config) { c.ConnectTimeout = -1 },
		"IdleTimeout":          func(c *p2p.Config) { c.IdleTimeout = -1 },
		"KeepaliveInterval":    func(c *p2p.Config) { c.KeepaliveInterval = -1 },
		"SessionRequestRepeat": func(c *p2p.Config) { c.SessionRequestRepeat = -1 },
		"NagleDelay":           func(c *p2p.Config) { c.NagleDelay = -1 },
		"RegisterTimeout":      func(c *p2p.Config) { c.RegisterTimeout = -1 },
		"RendezvousRefresh":    func(c *p2p.Config) { c.RendezvousRefresh = -1 },
	} {
		cfg := p2p.Config{SteamID: 1, RendezvousAddr: "127.0.0.1:1"}
		set(&cfg)
		if _, err := p2p.New(cfg); !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("negative %s: %v", field, err)
		}
	}
	// No server answers: New gives up after RegisterTimeout.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = p2p.New(p2p.Config{SteamID: 1, RendezvousAddr: pc.LocalAddr().String(), RegisterTimeout: 100 * time.Millisecond, ListenAddr: "127.0.0.1:0"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered registration: %v", err)
	}
}

// recordNet is the real network, remembering every datagram its sockets send.
type recordNet struct {
	transport.Net
	mu   sync.Mutex
	sent [][]byte
}

func (r *recordNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := r.Net.ListenPacket(network, address)
	return &recordConn{pc, r}, err
}

type recordConn struct {
	net.PacketConn
	r *recordNet
}

func (c *recordConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.r.mu.Lock()
	c.r.sent = append(c.r.sent, append([]byte(nil), b...))
	c.r.mu.Unlock()
	return c.PacketConn.WriteTo(b, a)
}

// TestHostileDatagramsChangeNothing throws garbage, truncated packets,
// packets for unknown sessions, forged handshakes and replays of captured
// traffic at a peer and at the server: the session goes on exactly as
// before and nothing is delivered twice.
func TestHostileDatagramsChangeNothing(t *testing.T) {
	sn, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordNet{Net: sn}
	srv, a, b := start(t, func(c *p2p.Config) {
		if c.SteamID == 1 {
			c.Net = rec
		}
	})
	b.AcceptP2PSessionWithUser(1)
	for i := 0; i < 20; i++ {
		a.SendP2PPacket(2, []byte{byte(i)}, p2p.P2PSend(i%4), 0)
	}
	a.SendP2PPacket(2, []byte("end"), p2p.P2PSendReliable, 1)
	receive(t, b, 1)
	got := 0
	for {
		if _, _, ok := b.ReadP2PPacket(make([]byte, 8), 0); !ok {
			break
		}
		got++
	}

	attacker, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	rng := rand.New(rand.NewSource(1))
	targets := []net.Addr{b.LocalAddr(), srv.Addr()}
	rec.mu.Lock()
	captured := append([][]byte(nil), rec.sent...)
	rec.mu.Unlock()
	for _, to := range targets {
		for i := 0; i < 500; i++ {
			var d []byte
			switch i % 5 {
			case 0: // noise of every size
				d = make([]byte, rng.Intn(1500))
				rng.Read(d)
			case 1: // our kinds with random bodies
				d = make([]byte, 1+rng.Intn(100))
				rng.Read(d)
				d[0] = []byte{0xD0, 0xE0, 0xE1}[rng.Intn(3)]
			case 2: // truncated captured packets
				c := captured[rng.Intn(len(captured))]
				d = c[:rng.Intn(len(c))]
			case 3: // captured packets with one bit flipped
				c := captured[rng.Intn(len(captured))]
				d = append([]byte(nil), c...)
				d[rng.Intn(len(d))] ^= 1 << rng.Intn(8)
			case 4: // replays, from a stranger's address
				d = captured[rng.Intn(len(captured))]
			}
			attacker.WriteTo(d, to)
		}
	}
	// The session still works, and nothing captured was delivered again.
	a.SendP2PPacket(2, []byte("after"), p2p.P2PSendReliable, 1)
	if p := receive(t, b, 1); string(p.Data) != "after" {
		t.Fatalf("after the attack: %q", p.Data)
	}
	if _, ok := b.IsP2PPacketAvailable(0); ok {
		t.Fatal("a replayed packet was delivered again")
	}
	if got < 15 {
		t.Fatalf("only %d of 20 packets arrived before the attack", got)
	}
	st, _ := b.GetP2PSessionState(1)
	if port := uint16(a.LocalAddr().(*net.UDPAddr).Port); !st.ConnectionActive || st.RemotePort != port {
		t.Fatalf("the path moved to the attacker: %+v", st)
	}
}

// waitGoroutines waits until no more goroutines run than before, and fails
// with every stack if that does not happen within 10 s.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Between Close shutting the sessions down and marking the Networking
// closed, Receive returns net.ErrClosed at once instead of spinning on a
// wait that is over before it starts.
func TestReceiveDuringCloseDoesNotSpin(t *testing.T) {
	_, a, _ := start(t, nil)
	p2p.ShutDownSessionsForTest(a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Receive(ctx, 0); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Receive after the sessions shut down: %v, want net.ErrClosed", err)
	}
}

// failingNet's sockets read normally until fail is set; then every read
// fails with an error that says the socket is broken.
type failingNet struct {
	transport.Net
	fail  atomic.Bool
	reads atomic.Int32 // reads that failed
}

func (f *failingNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := f.Net.ListenPacket(network, address)
	return &failingConn{pc, f}, err
}

type failingConn struct {
	net.PacketConn
	f *failingNet
}

func (c *failingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil && c.f.fail.Load() {
		c.f.reads.Add(1)
		return 0, nil, errors.New("socket broken")
	}
	return n, a, err
}

// A read error that is no passing one (not temporary, not an ICMP error
// queued on the socket) stops the read loop with one log line, where it
// used to loop on it for good; Close still ends everything.
func TestPermanentReadErrorStopsTheReader(t *testing.T) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sn, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	fn := &failingNet{Net: sn}
	var logs testsupport.SyncBuffer
	n, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0", Net: fn,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fn.fail.Store(true)
	// A datagram wakes the reader, whose next read then fails.
	poke, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer poke.Close()
	if _, err := poke.WriteTo([]byte("x"), n.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "reading the socket failed for good") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the failure; %d failed reads", fn.reads.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if got := fn.reads.Load(); got != 1 {
		t.Fatalf("%d failed reads, want the loop to stop at the first", got)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

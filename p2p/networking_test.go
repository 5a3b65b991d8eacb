package p2p_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

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
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	var ce *p2p.ConfigError
	if _, err := p2p.New(p2p.Config{RendezvousAddr: "127.0.0.1:1"}); !errors.As(err, &ce) || ce.Field != "SteamID" {
		t.Fatalf("missing SteamID: %v", err)
	}
	if _, err := p2p.New(p2p.Config{SteamID: 1}); !errors.As(err, &ce) || ce.Field != "RendezvousAddr" {
		t.Fatalf("missing RendezvousAddr: %v", err)
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

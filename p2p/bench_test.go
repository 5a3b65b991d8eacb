package p2p_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

func benchServer(b *testing.B) *rendezvous.Server {
	b.Helper()
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return srv
}

func benchPeer(b *testing.B, srv *rendezvous.Server, id p2p.SteamID) *p2p.Networking {
	b.Helper()
	n, err := p2p.New(p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

// benchPair returns two peers with an established session between them.
func benchPair(b *testing.B) (*p2p.Networking, *p2p.Networking) {
	srv := benchServer(b)
	a, c := benchPeer(b, srv, 1), benchPeer(b, srv, 2)
	c.AcceptP2PSessionWithUser(1)
	a.AcceptP2PSessionWithUser(2)
	if err := a.Send(2, []byte("open"), p2p.P2PSendReliable, 0); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Receive(ctx, 0); err != nil {
		b.Fatal(err)
	}
	return a, c
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkFirstPacket measures the time from the first SendP2PPacket to a
// user (lookup, handshake, accept included) until the packet is readable on
// the other side.
func BenchmarkFirstPacket(b *testing.B) {
	srv := benchServer(b)
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := benchPeer(b, srv, p2p.SteamID(1000+2*i))
		c := benchPeer(b, srv, p2p.SteamID(1001+2*i))
		c.AcceptP2PSessionWithUser(p2p.SteamID(1000 + 2*i))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b.StartTimer()
		start := time.Now()
		a.SendP2PPacket(p2p.SteamID(1001+2*i), []byte("first"), p2p.P2PSendReliable, 0)
		_, err := c.Receive(ctx, 0)
		lat = append(lat, time.Since(start))
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		a.Close()
		c.Close()
		b.StartTimer()
	}
	reportPercentiles(b, lat)
}

// BenchmarkReliable1200 measures reliable throughput of 1200-byte messages,
// the sender respecting backpressure.
func BenchmarkReliable1200(b *testing.B) {
	a, c := benchPair(b)
	msg := make([]byte, 1200)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for i := 0; i < b.N; i++ {
			if _, err := c.Receive(ctx, 1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	sendAll(b, a, msg, b.N)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReliable1200Polled is BenchmarkReliable1200 with the receiver
// polling ReadP2PPacket into one buffer, as a game loop does: its
// allocations per message are those of the send and receive paths.
func BenchmarkReliable1200Polled(b *testing.B) {
	a, c := benchPair(b)
	msg := make([]byte, 1200)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1200)
		deadline := time.Now().Add(5 * time.Minute)
		for got := 0; got < b.N; {
			if _, _, ok := c.ReadP2PPacket(buf, 1); ok {
				got++
				continue
			}
			if time.Now().After(deadline) {
				done <- errors.New("receiver waited for 5 minutes")
				return
			}
			runtime.Gosched()
		}
		done <- nil
	}()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	sendAll(b, a, msg, b.N)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// sendAll sends msg n times reliably to user 2 on channel 1, waiting out
// backpressure.
func sendAll(b *testing.B, a *p2p.Networking, msg []byte, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < n; {
		err := a.Send(2, msg, p2p.P2PSendReliable, 1)
		switch {
		case err == nil:
			i++
		case errors.Is(err, p2p.ErrSendBufferFull):
			if time.Now().After(deadline) {
				b.Fatal("sender blocked for 5 minutes")
			}
			time.Sleep(50 * time.Microsecond) // backpressure: let acks drain the queue
		default:
			b.Fatal(err)
		}
	}
}

// BenchmarkReliable1MiB measures reliable throughput of 1 MiB messages,
// each fragmented into about 850 packets and reassembled.
func BenchmarkReliable1MiB(b *testing.B) {
	a, c := benchPair(b)
	msg := make([]byte, 1<<20)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buf := make([]byte, 1<<20)
		for i := 0; i < b.N; i++ {
			for {
				if n, _, ok := c.ReadP2PPacket(buf, 1); ok {
					if n != 1<<20 {
						done <- fmt.Errorf("message %d: %d bytes", i, n)
						return
					}
					break
				}
				select {
				case <-c.PacketReady(1):
				case <-ctx.Done():
					done <- ctx.Err()
					return
				}
			}
		}
		done <- nil
	}()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	sendAll(b, a, msg, b.N)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func benchRoundTrip(b *testing.B, st p2p.P2PSend) {
	a, c := benchPair(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // echo
		for {
			p, err := c.Receive(ctx, 2)
			if err != nil {
				return
			}
			c.Send(p.Remote, p.Data, st, 2)
		}
	}()
	msg := make([]byte, 64)
	rtts := make([]time.Duration, 0, b.N)
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer rcancel()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := a.Send(2, msg, st, 2); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Receive(rctx, 2); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, rtts)
}

// BenchmarkRoundTrip64Reliable measures the round trip of a 64-byte
// reliable message echoed by the peer.
func BenchmarkRoundTrip64Reliable(b *testing.B) { benchRoundTrip(b, p2p.P2PSendReliable) }

// BenchmarkRoundTrip64Unreliable is the same with unreliable messages.
func BenchmarkRoundTrip64Unreliable(b *testing.B) { benchRoundTrip(b, p2p.P2PSendUnreliable) }

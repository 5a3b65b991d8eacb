package p2p_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sort"
	"sync/atomic"
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
	sendTimed(b, a, msg, done)
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
	sendTimed(b, a, msg, done)
}

// sendTimed sends msg b.N times under the timer, then waits for the
// receiver's verdict on done.
func sendTimed(b *testing.B, a *p2p.Networking, msg []byte, done <-chan error) {
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
	sendTimed(b, a, msg, done)
}

// readWait reads the next packet on ch into buf as a game that blocks
// does: ReadP2PPacket, and PacketReady alone while there is nothing. It
// gives up once stop is set (and something woke it, such as Close).
func readWait(stop *atomic.Bool, n *p2p.Networking, buf []byte, ch int) (int, p2p.SteamID, bool) {
	for {
		if k, from, ok := n.ReadP2PPacket(buf, ch); ok {
			return int(k), from, true
		}
		if stop.Load() {
			return 0, 0, false
		}
		<-n.PacketReady(ch)
	}
}

// benchRoundTrip measures round trips of 64-byte messages of type st,
// echoed by the peer, both sides reading with ReadP2PPacket.
func benchRoundTrip(b *testing.B, st p2p.P2PSend) {
	a, c := benchPair(b)
	var stop atomic.Bool
	echoed := make(chan struct{})
	go func() { // echo
		defer close(echoed)
		buf := make([]byte, 2048)
		for {
			k, from, ok := readWait(&stop, c, buf, 2)
			if !ok {
				return
			}
			c.Send(from, buf[:k], st, 2)
		}
	}()
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	rtts := make([]time.Duration, 0, b.N)
	var never atomic.Bool
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := a.Send(2, msg, st, 2); err != nil {
			b.Fatal(err)
		}
		readWait(&never, a, buf, 2)
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	stop.Store(true)
	c.Close() // wakes the echo
	<-echoed
	reportPercentiles(b, rtts)
}

// BenchmarkRoundTrip64Reliable measures the round trip of a 64-byte
// reliable message echoed by the peer.
func BenchmarkRoundTrip64Reliable(b *testing.B) { benchRoundTrip(b, p2p.P2PSendReliable) }

// BenchmarkRoundTrip64Unreliable is the same with unreliable messages.
func BenchmarkRoundTrip64Unreliable(b *testing.B) { benchRoundTrip(b, p2p.P2PSendUnreliable) }

// benchUnreliable100 sends b.N 100-byte messages of type st as fast as
// Send takes them and reports what arrived per second at the receiver.
// Unreliable messages may be dropped when the receiver falls behind; the
// arrival rate is the figure. BenchmarkPlainUDP100 is the mark.
func benchUnreliable100(b *testing.B, st p2p.P2PSend) {
	a, c := benchPair(b)
	var got atomic.Int64
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1200)
		for {
			if _, _, ok := readWait(&stop, c, buf, 1); !ok {
				return
			}
			got.Add(1)
		}
	}()
	msg := make([]byte, 100)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for {
			err := a.Send(2, msg, st, 1)
			if err == nil {
				break
			}
			if !errors.Is(err, p2p.ErrSendBufferFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	elapsed := awaitQuiet(&got, start, b.N)
	b.StopTimer()
	stop.Store(true)
	c.Close()
	<-done
	b.ReportMetric(float64(got.Load())/elapsed.Seconds(), "recv-msgs/s")
}

// awaitQuiet waits until nothing has arrived for 50 ms (at most 2 s plus
// 10 µs per message sent) and returns the time from start to the last
// arrival seen.
func awaitQuiet(got *atomic.Int64, start time.Time, sent int) time.Duration {
	limit := 2*time.Second + time.Duration(sent)*10*time.Microsecond
	last, lastAt := got.Load(), time.Now()
	for time.Since(lastAt) < 50*time.Millisecond && time.Since(start) < limit {
		time.Sleep(5 * time.Millisecond) // polling a counter: there is no event to wait on
		if n := got.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	return lastAt.Sub(start)
}

// BenchmarkUnreliableNoDelay100 is 100-byte UnreliableNoDelay messages.
func BenchmarkUnreliableNoDelay100(b *testing.B) { benchUnreliable100(b, p2p.P2PSendUnreliableNoDelay) }

// BenchmarkPlainUDP100 is one WriteTo per 100-byte datagram between two
// loopback sockets, the receiver counting: the mark for the above.
func BenchmarkPlainUDP100(b *testing.B) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	rx.SetReadBuffer(4 << 20)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	msg := make([]byte, 100)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := tx.WriteToUDPAddrPort(msg, to); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := awaitQuiet(&got, start, b.N)
	b.StopTimer()
	rx.Close()
	<-done
	b.ReportMetric(float64(got.Load())/elapsed.Seconds(), "recv-msgs/s")
}

package p2p_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

func TestSimulateValidates(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		field string
		sim   p2p.Simulation
	}{
		{"Simulate.FakePacketLossSend", p2p.Simulation{FakePacketLossSend: -1}},
		{"Simulate.FakePacketLossRecv", p2p.Simulation{FakePacketLossRecv: 100.5}},
		{"Simulate.FakePacketReorderSend", p2p.Simulation{FakePacketReorderSend: nan}},
		{"Simulate.FakePacketReorderRecv", p2p.Simulation{FakePacketReorderRecv: 101}},
		{"Simulate.FakePacketDupSend", p2p.Simulation{FakePacketDupSend: -0.1}},
		{"Simulate.FakePacketDupRecv", p2p.Simulation{FakePacketDupRecv: 200}},
		{"Simulate.FakePacketLagSend", p2p.Simulation{FakePacketLagSend: -time.Millisecond}},
		{"Simulate.FakePacketLagRecv", p2p.Simulation{FakePacketLagRecv: -1}},
		{"Simulate.FakePacketReorderTime", p2p.Simulation{FakePacketReorderTime: -1}},
		{"Simulate.FakePacketDupTimeMax", p2p.Simulation{FakePacketDupTimeMax: -time.Second}},
	} {
		_, err := p2p.New(p2p.Config{SteamID: 1, RendezvousAddr: "127.0.0.1:1", Simulate: c.sim})
		var ce *p2p.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%+v: got %v, want a ConfigError for %s", c.sim, err, c.field)
		}
	}
}

// splitLoss is the percentage each of two stages must drop for pct to be
// lost through both.
func splitLoss(pct float64) float32 {
	return float32(100 * (1 - math.Sqrt(1-pct/100)))
}

// TestSimulateSoak: a 1 MiB reliable message arrives intact under loss,
// lag, reordering and duplication on both peers. Run in virtual time, on
// a simulated network: the lag and the retransmission timers cost no
// waiting.
func TestSimulateSoak(t *testing.T) {
	for _, loss := range []float64{5, 20, 40} {
		t.Run(fmt.Sprintf("loss%v", loss), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { soak(t, loss) })
		})
	}
}

func soak(t *testing.T, loss float64) {
	l := newNATLab(t, false)
	hosts := l.site(nil, 2)
	var peers [2]*p2p.Networking
	for i := range peers {
		peers[i] = l.peer(p2p.SteamID(i+1), hosts[i], func(c *p2p.Config) {
			c.ConnectTimeout = 30 * time.Second
			// Every packet passes its sender's Send settings and its
			// receiver's Recv settings: loss splits between the two,
			// and so does the 20 ms of lag.
			c.Simulate = p2p.Simulation{
				FakePacketLossSend:    splitLoss(loss),
				FakePacketLossRecv:    splitLoss(loss),
				FakePacketLagSend:     10 * time.Millisecond,
				FakePacketLagRecv:     10 * time.Millisecond,
				FakePacketReorderSend: 10,
				FakePacketReorderTime: 30 * time.Millisecond,
				FakePacketDupRecv:     5,
				FakePacketDupTimeMax:  20 * time.Millisecond,
				Seed:                  int64(c.SteamID)*100 + int64(loss),
			}
		})
	}
	a, b := peers[0], peers[1]
	b.AcceptP2PSessionWithUser(1)
	msg := make([]byte, 1<<20)
	rand.New(rand.NewSource(int64(loss))).Read(msg)
	began := time.Now()
	if err := a.Send(2, msg, p2p.P2PSendReliable, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := b.Receive(ctx, 0)
	if err != nil {
		t.Fatalf("1 MiB under %v%% loss: %v after %v", loss, err, time.Since(began).Round(time.Millisecond))
	}
	if p.Remote != 1 || !bytes.Equal(p.Data, msg) {
		t.Fatalf("got %d bytes from %d, not the message sent", len(p.Data), p.Remote)
	}
	t.Logf("%v%% loss: 1 MiB in %v of virtual time", loss, time.Since(began).Round(time.Millisecond))
}

// TestSimulateDrops: with all of A's sends lost, nothing of A's reaches B
// and A's session fails with a timeout.
func TestSimulateDrops(t *testing.T) {
	t.Parallel()
	_, a, b := start(t, func(c *p2p.Config) {
		c.ConnectTimeout = 500 * time.Millisecond
		if c.SteamID == 1 {
			c.Simulate = p2p.Simulation{FakePacketLossSend: 100, Seed: 1}
		}
	})
	b.AcceptP2PSessionWithUser(1)
	var fails []p2p.P2PSessionConnectFail
	a.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) { fails = append(fails, f) })
	for i := 0; i < 10; i++ {
		a.SendP2PPacket(2, []byte{byte(i)}, p2p.P2PSendUnreliableNoDelay, 0)
	}
	a.SendP2PPacket(2, []byte("x"), p2p.P2PSendReliable, 0)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for len(fails) == 0 && time.Now().Before(deadline) {
		a.RunCallbacks()
		<-tick.C
	}
	if len(fails) != 1 || fails[0].SteamIDRemote != 2 || fails[0].SessionError != p2p.P2PSessionErrorTimeout {
		t.Fatalf("failures %+v, want one Timeout for 2", fails)
	}
	if st, ok := a.GetP2PSessionState(2); ok && st.ConnectionActive {
		t.Fatalf("a session opened with every packet lost: %+v", st)
	}
	if _, ok := b.IsP2PPacketAvailable(0); ok {
		t.Fatal("B received a packet A's simulation should have dropped")
	}
	if st, ok := b.GetP2PSessionState(1); ok && st.ConnectionActive {
		t.Fatalf("B has an active session with A: %+v", st)
	}
}

// TestSimulatedCloseLeavesNoGoroutines: the simulation's goroutine ends on
// Close, with packets still held back.
func TestSimulatedCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		// Half the packets come again up to a minute later: when the
		// message is in, copies are still held back.
		sim := p2p.Simulation{
			FakePacketLossSend: 5, FakePacketLagSend: 5 * time.Millisecond, FakePacketLagRecv: 5 * time.Millisecond,
			FakePacketReorderRecv: 20, FakePacketReorderTime: 10 * time.Millisecond,
			FakePacketDupSend: 50, FakePacketDupTimeMax: time.Minute,
		}
		var peers []*p2p.Networking
		for id := p2p.SteamID(1); id <= 2; id++ {
			n, err := p2p.New(p2p.Config{SteamID: id, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0", Simulate: sim})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			n.AcceptP2PSessionWithUser(1)
			peers = append(peers, n)
		}
		peers[0].SendP2PPacket(2, make([]byte, 100<<10), p2p.P2PSendReliable, 0)
		receive(t, peers[1], 0)
		for _, n := range peers {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}()
	waitGoroutines(t, before)
}

// TestSimulateLag: a packet takes at least its sender's send lag plus its
// receiver's receive lag.
func TestSimulateLag(t *testing.T) {
	t.Parallel()
	const sendLag, recvLag = 150 * time.Millisecond, 100 * time.Millisecond
	_, a, b := start(t, func(c *p2p.Config) {
		if c.SteamID == 1 {
			c.Simulate = p2p.Simulation{FakePacketLagSend: sendLag, Seed: 1}
		} else {
			c.Simulate = p2p.Simulation{FakePacketLagRecv: recvLag, Seed: 2}
		}
	})
	b.AcceptP2PSessionWithUser(1)
	a.SendP2PPacket(2, []byte("open"), p2p.P2PSendReliable, 0)
	receive(t, b, 0)
	for i := 0; i < 3; i++ {
		sent := time.Now()
		a.SendP2PPacket(2, []byte("ping"), p2p.P2PSendUnreliableNoDelay, 1)
		receive(t, b, 1)
		if took := time.Since(sent); took < sendLag+recvLag {
			t.Fatalf("a packet took %v with %v of lag", took, sendLag+recvLag)
		}
	}
}

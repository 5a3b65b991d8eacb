package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// p2pEnv is a rendezvous server shared by the pairs of peers the workloads
// make, each pair under SteamIDs of its own.
type p2pEnv struct {
	srv  *rendezvous.Server
	next atomic.Uint64
}

func newP2PEnv() (*p2pEnv, error) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	e := &p2pEnv{srv: srv}
	e.next.Store(1000)
	return e, nil
}

func (e *p2pEnv) close() { e.srv.Close() }

// openChannel carries the message that opens a pair's session, apart from
// the channels the workloads measure.
const openChannel = 9

// pair returns two peers with an established session between them.
// tune, if not nil, changes both peers' configuration.
func (e *p2pEnv) pair(tune func(*p2p.Config)) (a, c *p2p.Networking, aid, cid p2p.SteamID, err error) {
	aid, cid = p2p.SteamID(e.next.Add(1)), p2p.SteamID(e.next.Add(1))
	peer := func(id p2p.SteamID) (*p2p.Networking, error) {
		cfg := p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: e.srv.Addr().String(), ListenAddr: "127.0.0.1:0"}
		if tune != nil {
			tune(&cfg)
		}
		return p2p.New(cfg)
	}
	if a, err = peer(aid); err != nil {
		return nil, nil, 0, 0, err
	}
	if c, err = peer(cid); err != nil {
		a.Close()
		return nil, nil, 0, 0, err
	}
	a.AcceptP2PSessionWithUser(cid)
	c.AcceptP2PSessionWithUser(aid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err = a.Send(cid, []byte("open"), p2p.P2PSendReliable, openChannel); err == nil {
		_, err = c.Receive(ctx, openChannel)
	}
	if err != nil {
		a.Close()
		c.Close()
		return nil, nil, 0, 0, fmt.Errorf("open session: %w", err)
	}
	return a, c, aid, cid, nil
}

// readPacket reads the next packet on ch into buf the way a game that
// blocks rather than polls does: ReadP2PPacket, and PacketReady alone
// while there is nothing (a select with a second channel wakes measurably
// later). It is p2pcompat's allocation-free receive path; Receive returns a
// slice of its own, an allocation per message. It answers false once stop
// is set and something woke it: the stopper closes n.
func readPacket(stop *atomic.Bool, n *p2p.Networking, ch int, buf []byte) (int, p2p.SteamID, bool) {
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

// sendWithBackpressure sends, and while the send buffer is full waits for
// acknowledgements to drain it, as a game respecting SendP2PPacket's false
// would. Reliable senders sleep a little (as p2p's own benchmark does);
// unreliable ones only yield, the counterpart of a blocking sendto.
func sendWithBackpressure(n *p2p.Networking, to p2p.SteamID, msg []byte, st p2p.P2PSend, ch int, deadline time.Time) error {
	for spins := 0; ; spins++ {
		err := n.Send(to, msg, st, ch)
		if !errors.Is(err, p2p.ErrSendBufferFull) {
			return err
		}
		if spins%64 == 0 && time.Now().After(deadline) {
			return err
		}
		if st == p2p.P2PSendReliable || st == p2p.P2PSendReliableWithBuffering {
			time.Sleep(50 * time.Microsecond)
		} else {
			runtime.Gosched()
		}
	}
}

// p2pThroughput sends count messages of size bytes from one peer to the
// other with send type st on channel 0. Unreliable messages that do not
// arrive are not counted: the receiver stops once the sender is done and
// nothing has come for longer than the Nagle delay.
func p2pThroughput(e *p2pEnv, size, count int, st p2p.P2PSend, limit time.Duration, tune func(*p2p.Config)) (tput, error) {
	a, c, _, cid, err := e.pair(tune)
	if err != nil {
		return tput{}, err
	}
	defer func() { a.Close(); c.Close() }()

	var m meter
	deadline := time.Now().Add(limit)
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
	defer cancel()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // ends the receiver once the sender is done and all is quiet
		defer wg.Done()
		end := func() { stop.Store(true); c.Close() }
		const quiet = 500 * time.Millisecond
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		lastCount, lastChange := int64(-1), time.Now()
		for {
			select {
			case <-ctx.Done():
				if ctx.Err() == context.DeadlineExceeded {
					end()
				}
				return
			case now := <-tick.C:
				if k := m.msgs.Load(); k != lastCount {
					lastCount, lastChange = k, now
				} else if m.sendDone.Load() && now.Sub(lastChange) > quiet {
					end()
					return
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		defer cancel()
		buf := make([]byte, p2p.MaxReliablePacketSize)
		for i := 0; i < count; i++ {
			k, _, ok := readPacket(&stop, c, 0, buf)
			if !ok {
				return
			}
			m.got(k, 1)
		}
	}()

	msg := make([]byte, size)
	m.begin()
	var serr error
	for i := 0; i < count && serr == nil; i++ {
		if i%256 == 0 && time.Now().After(deadline) {
			break
		}
		serr = sendWithBackpressure(a, cid, msg, st, 0, deadline)
	}
	m.sendDone.Store(true)
	wg.Wait()
	capped := time.Now().After(deadline)
	t := m.result(capped)
	if errors.Is(serr, p2p.ErrSendBufferFull) && capped {
		serr = nil
	}
	var rerr error
	if serr == nil && st == p2p.P2PSendReliable && t.Msgs < int64(count) && !capped {
		rerr = fmt.Errorf("received %d of %d reliable messages", t.Msgs, count)
	}
	return t, errors.Join(serr, rerr)
}

// p2pRTT measures round trips of size-byte messages of send type st,
// echoed by the other peer.
func p2pRTT(e *p2pEnv, st p2p.P2PSend, size, warmup, count int, limit time.Duration) ([]time.Duration, error) {
	a, c, _, cid, err := e.pair(nil)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	var stop atomic.Bool
	// The time limit ends a run that lost an unreliable packet for good.
	limiter := time.AfterFunc(limit, func() { stop.Store(true); a.Close(); c.Close() })
	echoDone := make(chan struct{})
	defer func() { limiter.Stop(); stop.Store(true); c.Close(); <-echoDone; a.Close() }()
	go func() { // echo until the run ends
		defer close(echoDone)
		buf := make([]byte, 2048)
		for {
			k, from, ok := readPacket(&stop, c, 2, buf)
			if !ok {
				return
			}
			c.Send(from, buf[:k], st, 2)
		}
	}()
	msg := make([]byte, size)
	buf := make([]byte, 2048)
	rtts := make([]time.Duration, 0, count)
	for i := 0; i < warmup+count && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		if err := a.Send(cid, msg, st, 2); err != nil {
			if stop.Load() {
				return rtts, nil // the time limit
			}
			return rtts, err
		}
		if _, _, ok := readPacket(&stop, a, 2, buf); !ok {
			return rtts, nil // the time limit
		}
		if i >= warmup {
			rtts = append(rtts, time.Since(t0))
		}
	}
	return rtts, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// cabiPeerFlag, first on the command line, makes the command one side of
// the -cabi comparison's Go API in two processes: the C program
// (cabi/cabi_bench.c) written with the Go API, with the same flags, the
// same messages between the two sides and the same result lines, so that
// the runner runs either the same way. It reads its SteamID, AppID and
// rendezvous from the library's environment variables. Reading waits on
// PacketReady (the Go API's way; a Go loop that polls with Gosched starves
// the runtime's network poller).
const cabiPeerFlag = "-cabi-peer"

func cabiPeerMain(args []string, stdout, stderr io.Writer) int {
	if err := cabiPeer(args, stdout); err != nil {
		fmt.Fprintln(stderr, "cabi peer:", err)
		return 1
	}
	return 0
}

func cabiPeer(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(cabiPeerFlag, flag.ContinueOnError)
	role := fs.String("role", "", "echo or time")
	peerID := fs.Uint64("peer", 0, "the other side's SteamID")
	rtt := fs.Int("rtt", 20000, "timed round trips")
	warmup := fs.Int("warmup", 1000, "round trips before timing")
	msgs := fs.Int("msgs", 150000, "1200-byte messages")
	capS := fs.Float64("cap", 30, "time cap of each phase, seconds")
	fs.String("idle", "", "ignored (the C program's polling)")
	fs.String("api", "", "ignored (the C program's calling convention)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := strconv.ParseUint(os.Getenv("P2PCOMPAT_STEAMID"), 10, 64)
	if err != nil || *peerID == 0 || *rtt < 1 || *warmup < 0 || *msgs < 1 || *capS <= 0 {
		return errors.New("needs P2PCOMPAT_STEAMID, -role, -peer and positive counts")
	}
	app, err := strconv.ParseUint(os.Getenv("SteamAppId"), 10, 32)
	if err != nil {
		return fmt.Errorf("SteamAppId: %w", err)
	}
	n, err := p2p.New(p2p.Config{SteamID: p2p.SteamID(id), AppID: uint32(app), RendezvousAddr: os.Getenv("P2PCOMPAT_RENDEZVOUS")})
	if err != nil {
		return err
	}
	var stop atomic.Bool
	defer func() { stop.Store(true); n.Close() }()
	limit := time.Duration(*capS * float64(time.Second))
	peer := p2p.SteamID(*peerID)
	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		if r.SteamIDRemote == peer {
			n.AcceptP2PSessionWithUser(r.SteamIDRemote)
		}
	})
	// Callbacks run every 16 ms, as the C program runs them, on a
	// goroutine of their own, since the readers below block; it also ends
	// a phase that overruns its deadline by closing n, which wakes them.
	var deadline atomic.Int64
	setDeadline := func() time.Time {
		d := time.Now().Add(limit)
		deadline.Store(d.UnixNano())
		return d
	}
	setDeadline()
	go func() {
		for !stop.Load() {
			n.RunCallbacks()
			if time.Now().UnixNano() > deadline.Load() {
				stop.Store(true)
				n.Close()
				return
			}
			time.Sleep(16 * time.Millisecond)
		}
	}()

	buf := make([]byte, 2048)
	read := func(ch int) (int, p2p.SteamID, error) {
		k, from, ok := readPacket(&stop, n, ch, buf)
		if !ok {
			return 0, 0, errors.New("timed out")
		}
		return k, from, nil
	}
	control := func(msg string) error { return n.Send(peer, []byte(msg), p2p.P2PSendReliable, 9) }
	readControl := func() (string, error) {
		setDeadline()
		k, _, err := read(9)
		return string(buf[:k]), err
	}

	switch *role {
	case "echo":
		fmt.Fprintln(stdout, "ready")
		if c, err := readControl(); err != nil || c != "open" {
			return fmt.Errorf("no open message from the timing side (%q, %v)", c, err)
		}
		if err := control("ready"); err != nil {
			return err
		}
		setDeadline()
		for i := 0; i < *warmup+*rtt; i++ {
			k, from, err := read(2)
			if err != nil {
				return fmt.Errorf("round trips: %w", err)
			}
			if err := n.Send(from, buf[:k], p2p.P2PSendReliable, 2); err != nil {
				return fmt.Errorf("round trips: echo: %w", err)
			}
		}
		setDeadline()
		var first, last int64
		for got := 0; got < *msgs; got++ {
			if _, _, err := read(0); err != nil {
				return fmt.Errorf("throughput: %w", err)
			}
			last = time.Now().UnixNano()
			if got == 0 {
				first = last
			}
		}
		if err := control(fmt.Sprintf("done %d %d", first, last)); err != nil {
			return err
		}
		if c, err := readControl(); err != nil || c != "bye" {
			return fmt.Errorf("no bye from the timing side (%q, %v)", c, err)
		}
		return nil

	case "time":
		if err := control("open"); err != nil {
			return err
		}
		if c, err := readControl(); err != nil || c != "ready" {
			return fmt.Errorf("no ready from the echo side (%q, %v)", c, err)
		}
		msg := make([]byte, 64)
		rtts := make([]time.Duration, 0, *rtt)
		setDeadline()
		for i := 0; i < *warmup+*rtt; i++ {
			t0 := time.Now()
			if err := n.Send(peer, msg, p2p.P2PSendReliable, 2); err != nil {
				return fmt.Errorf("round trips: %w", err)
			}
			if k, from, err := read(2); err != nil || k != len(msg) || from != peer {
				return fmt.Errorf("round trips: echo %d bytes from %d, %v", k, from, err)
			}
			if i >= *warmup {
				rtts = append(rtts, time.Since(t0))
			}
		}
		slices.Sort(rtts)
		fmt.Fprintf(stdout, "result rtt64 samples %d p50_us %.2f p99_us %.2f min_us %.2f max_us %.2f\n", len(rtts),
			percentile(rtts, 50), percentile(rtts, 99), percentile(rtts, 0), percentile(rtts, 100))

		big := make([]byte, 1200)
		var full int64
		t0 := time.Now()
		end := setDeadline()
		for i := 0; i < *msgs; i++ {
			for {
				err := n.Send(peer, big, p2p.P2PSendReliable, 0)
				if err == nil {
					break
				}
				if !errors.Is(err, p2p.ErrSendBufferFull) || time.Now().After(end) {
					return fmt.Errorf("throughput: %w", err)
				}
				full++
				time.Sleep(50 * time.Microsecond)
			}
		}
		c, err := readControl()
		var first, last int64
		if err == nil {
			_, err = fmt.Sscanf(c, "done %d %d", &first, &last)
		}
		if err != nil {
			return fmt.Errorf("throughput: no done from the echo side (%q, %v)", c, err)
		}
		secs := float64(last-t0.UnixNano()) / 1e9
		fmt.Fprintf(stdout, "result tput1200 msgs %d bytes %d seconds %.6f mbps %.1f send_false %d\n",
			*msgs, *msgs*1200, secs, float64(*msgs)*1200/secs/1e6, full)
		if err := control("bye"); err != nil {
			return err
		}
		// Let the bye be acknowledged before Close drops it.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if st, ok := n.GetP2PSessionState(peer); !ok || st.BytesQueuedForSend == 0 {
				break
			}
		}
		return nil
	}
	return fmt.Errorf("-role %q: want echo or time", strings.TrimSpace(*role))
}

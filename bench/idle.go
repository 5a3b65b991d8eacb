package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// Workload 5 keeps one Networking with many established, idle sessions and
// measures what they cost it. The peers, and the rendezvous server, live in
// a child process so that their memory and CPU are not counted.

// idleLifetime bounds the child's life even if nobody tells it to stop.
const idleLifetime = 5 * time.Minute

type idleResult struct {
	Sessions        int
	BytesPerSession float64 // HeapAlloc growth after GC / sessions
	InusePerSession float64 // HeapInuse growth / sessions
	CPUPercent      float64 // of one core, user+sys, whole process
	Goroutines      int
	GoroutinesIdle0 int // before the sessions were made
	Established     time.Duration
	Active          int // sessions still connected after the idle period
}

// idleChild hosts a rendezvous server and n peers that accept owner, prints
// "server ADDR" and then "ready", and runs until its stdin closes (the
// parent closing the pipe or exiting) or idleLifetime passes.
func idleChild(n int, first, owner uint64, stdin io.Reader, stdout io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stdout, "error", err)
		return 1
	}
	stopped := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(stopped)
	}()
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{
		ListenAddr: "127.0.0.1:0",
		// One owner looks up thousands of peers in a few seconds; the
		// default per-source limit is for the internet, not for this.
		RateLimit: -1,
	})
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	fmt.Fprintln(stdout, "server", srv.Addr())

	peers := make([]*p2p.Networking, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p, err := p2p.New(p2p.Config{
					SteamID:        p2p.SteamID(first + uint64(i)),
					AppID:          480,
					RendezvousAddr: srv.Addr().String(),
					ListenAddr:     "127.0.0.1:0",
				})
				if err != nil {
					errs <- err
					continue
				}
				p.AcceptP2PSessionWithUser(p2p.SteamID(owner))
				peers[i] = p
			}
		}()
	}
	go func() {
		defer close(next)
		for i := 0; i < n; i++ {
			select {
			case next <- i:
			case <-stopped:
				return
			}
		}
	}()
	wg.Wait()
	closeAll := func() {
		var cw sync.WaitGroup
		for i := 0; i < len(peers); i += 256 {
			cw.Add(1)
			go func(ps []*p2p.Networking) {
				defer cw.Done()
				for _, p := range ps {
					if p != nil {
						p.Close()
					}
				}
			}(peers[i:min(i+256, len(peers))])
		}
		cw.Wait()
	}
	defer closeAll()
	select {
	case err := <-errs:
		return fail(err)
	default:
	}
	fmt.Fprintln(stdout, "ready")
	select {
	case <-stopped:
	case <-time.After(idleLifetime):
	}
	return 0
}

// idleParent starts the child, makes A and opens n sessions from it, and
// measures heap growth per session and the idle CPU of this process.
func idleParent(n int, idleFor time.Duration, log io.Writer) (res idleResult, err error) {
	res.Sessions = n
	const owner, first = 1, 1_000_000
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	cmd := exec.Command(exe, "-idle-peers", strconv.Itoa(n), "-idle-first", strconv.Itoa(first), "-idle-owner", strconv.Itoa(owner))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		stdin.Close() // the child's signal to close its peers and exit
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	// The child's lines come through a channel so that waiting for them
	// can time out.
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var serverAddr string
	startTimeout := time.After(time.Minute)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				return res, fmt.Errorf("idle child exited before it was ready")
			case strings.HasPrefix(l, "server "):
				serverAddr = strings.TrimPrefix(l, "server ")
			case l == "ready":
				ready = true
			case strings.HasPrefix(l, "error "):
				return res, fmt.Errorf("idle child: %s", strings.TrimPrefix(l, "error "))
			}
		case <-startTimeout:
			return res, fmt.Errorf("idle child not ready after a minute")
		}
	}
	fmt.Fprintf(log, "  idle: %d peers ready in the child after %v\n", n, time.Since(started).Round(time.Millisecond))

	a, err := p2p.New(p2p.Config{SteamID: owner, AppID: 480, RendezvousAddr: serverAddr, ListenAddr: "127.0.0.1:0", MaxSessions: 20000})
	if err != nil {
		return res, err
	}
	defer a.Close()

	before := heapAfterGC()
	res.GoroutinesIdle0 = runtime.NumGoroutine()
	t0 := time.Now()
	if err := establish(a, n, first, log); err != nil {
		return res, err
	}
	res.Established = time.Since(t0)
	// Let the last acknowledgements and handshake leftovers settle, so
	// that what is measured is the standing cost of an idle session.
	time.Sleep(500 * time.Millisecond)
	after := heapAfterGC()
	res.BytesPerSession = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
	res.InusePerSession = (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n)
	res.Goroutines = runtime.NumGoroutine()

	fmt.Fprintf(log, "  idle: %d sessions established in %v; measuring idle CPU for %v\n", n, res.Established.Round(time.Millisecond), idleFor)
	c0, w0 := cpuTime(), time.Now()
	time.Sleep(idleFor)
	c1, w1 := cpuTime(), time.Now()
	res.CPUPercent = 100 * (c1 - c0).Seconds() / w1.Sub(w0).Seconds()
	if c0 < 0 {
		res.CPUPercent = math.NaN()
	}
	for i := 0; i < n; i++ {
		if st, ok := a.GetP2PSessionState(p2p.SteamID(first + i)); ok && st.ConnectionActive {
			res.Active++
		}
	}
	return res, nil
}

// establish opens a session from a to each of the n peers by sending each
// one reliable message, in waves so as not to flood the rendezvous, and
// waits until every session is connected and its message acknowledged.
func establish(a *p2p.Networking, n, first int, log io.Writer) error {
	const wave = 1000
	msg := []byte("hello")
	deadline := time.Now().Add(90 * time.Second)
	for lo := 0; lo < n; lo += wave {
		hi := min(lo+wave, n)
		pending := make(map[p2p.SteamID]bool, hi-lo)
		for i := lo; i < hi; i++ {
			id := p2p.SteamID(first + i)
			pending[id] = true
			a.Send(id, msg, p2p.P2PSendReliable, 0)
		}
		for len(pending) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d sessions not established", len(pending)+n-hi, n)
			}
			time.Sleep(20 * time.Millisecond)
			for id := range pending {
				st, ok := a.GetP2PSessionState(id)
				switch {
				case ok && st.ConnectionActive && st.PacketsQueuedForSend == 0:
					delete(pending, id)
				case !ok || st.SessionError != p2p.P2PSessionErrorNone && !st.Connecting && !st.ConnectionActive:
					// Failed (e.g. a timeout): a later send starts over.
					a.Send(id, msg, p2p.P2PSendReliable, 0)
				}
			}
		}
	}
	return nil
}

func heapAfterGC() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

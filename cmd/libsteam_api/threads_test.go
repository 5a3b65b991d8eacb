package main

import (
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// The threading and lifetime tests of the drop-in library, with
// testdata/peer.cpp (see its head comment): game threads call in at any time
// from any thread (CABI.md, Traps; COMPAT.md C70), and a game may shut Steam
// down and initialise it again.

// peerAccount is the first account ID of the players of these tests and of
// the Mono test (SteamID 76561197960265728 + account).
const peerAccount = 7000

func peerSteamID(n uint64) uint64 { return individualBase + peerAccount + n }

// peerProgram is testdata/peer.cpp, compiled once per test binary.
func peerProgram(t *testing.T) string {
	t.Helper()
	needTool(t, "g++")
	return program(t, "peer", "testdata/peer.cpp")
}

// childProc is a test program running in a process of its own: its stdout
// lines are collected for waitLine, stdout and stderr both for the test's
// failure message, and it is killed at the test's end if still running.
type childProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr lockedBuffer
	exited chan struct{}
	err    error // Wait's, once exited is closed

	mu      sync.Mutex
	lines   []string
	partial string
	changed chan struct{} // closed and replaced whenever lines grows
}

// Write collects stdout and splits it into lines.
func (p *childProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.partial + string(b)
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		p.lines = append(p.lines, strings.TrimRight(s[:i], "\r"))
		s = s[i+1:]
	}
	p.partial = s
	close(p.changed)
	p.changed = make(chan struct{})
	return len(b), nil
}

// startChild starts path with args and env as name.
func startChild(t *testing.T, name, path string, args, env []string) *childProc {
	t.Helper()
	p := &childProc{name: name, exited: make(chan struct{}), changed: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout = p
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("%s: still running 10 s after SIGKILL", name)
			}
		}
		if t.Failed() {
			t.Logf("%s (%s %s):\n--- stdout\n%s\n--- stderr\n%s", name, path, strings.Join(args, " "),
				p.output(), p.stderr.String())
		}
	})
	return p
}

func (p *childProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n") + p.partial
}

// waitLine waits up to limit for a line that starts with prefix and
// returns it.
func (p *childProc) waitLine(t *testing.T, prefix string, limit time.Duration) string {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.HasPrefix(l, prefix) {
				p.mu.Unlock()
				return l
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
			// Exited: the output is complete once Wait returned.
			p.mu.Lock()
			for _, l := range p.lines {
				if strings.HasPrefix(l, prefix) {
					p.mu.Unlock()
					return l
				}
			}
			p.mu.Unlock()
			t.Fatalf("%s exited (%v) without printing %q", p.name, p.cmd.ProcessState, prefix)
		case <-timer.C:
			t.Fatalf("%s printed no %q line within %v", p.name, prefix, limit)
		}
	}
}

// say writes a line to the program's stdin.
func (p *childProc) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: writing %q: %v", p.name, line, err)
	}
}

// wait waits up to limit for the program to exit and returns its exit
// status.
func (p *childProc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("%s did not exit within %v", p.name, limit)
	}
	var ee *exec.ExitError
	if err := p.err; err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", p.name, err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// lineField returns the number after "key=" in line.
func lineField(t *testing.T, line, key string) int64 {
	t.Helper()
	m := regexp.MustCompile(`\b` + regexp.QuoteMeta(key) + `=(-?\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no %s= in %q", key, line)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestThreadsStress: two game processes, each with 8 threads at once for
// 4 s: 3 send numbered reliable messages (Reliable and
// ReliableWithBuffering, some of 64 KiB) on channels 1-3, 2 read them
// (each the only reader of its channels) and check every sequence number,
// sender and byte, 2 poll IsP2PPacketAvailable and GetP2PSessionState, and
// one calls SteamAPI_RunCallbacks in a loop. Each process must receive
// every message exactly once and in order per channel, answer NULL
// pointers, 0xFFFFFFFF sizes and calls before init and after shutdown with
// false/0, and shut down cleanly while its pollers and dispatcher had been
// running.
func TestThreadsStress(t *testing.T) {
	t.Parallel()
	peer := peerProgram(t)
	server := startRendezvous(t, rendezvous.ServerConfig{})
	a, b := peerSteamID(1), peerSteamID(2)
	const seconds = 1
	start := time.Now()
	pa := startChild(t, "stress A", peer, []string{"--stress", "--peer", strconv.FormatUint(b, 10), "--seconds", strconv.Itoa(seconds)},
		gameEnv(t, server, a, 480))
	pb := startChild(t, "stress B", peer, []string{"--stress", "--peer", strconv.FormatUint(a, 10), "--seconds", strconv.Itoa(seconds)},
		gameEnv(t, server, b, 480))
	// Both must be registered before either sends: a send to a user the
	// rendezvous does not know fails at once (C37).
	pa.waitLine(t, "ready ", 15*time.Second)
	pb.waitLine(t, "ready ", 15*time.Second)
	t.Logf("both ready after %v", time.Since(start).Round(time.Millisecond))
	pa.say(t, "go")
	pb.say(t, "go")
	// Each prints "received" once it has read every message of the other;
	// only then may the other shut down.
	ra := pa.waitLine(t, "received ", (seconds+20)*time.Second)
	rb := pb.waitLine(t, "received ", (seconds+20)*time.Second)
	t.Logf("A: %s", ra)
	t.Logf("B: %s", rb)
	pa.stdin.Close()
	pb.stdin.Close()
	sa := pa.waitLine(t, "stress ", 15*time.Second)
	sb := pb.waitLine(t, "stress ", 15*time.Second)
	t.Logf("A: %s", sa)
	t.Logf("B: %s", sb)
	codeA, codeB := pa.wait(t, 10*time.Second), pb.wait(t, 10*time.Second)
	t.Logf("done after %v", time.Since(start).Round(time.Millisecond))
	for _, r := range []struct {
		name           string
		code           int
		received, last string
		sentByOther    string
	}{{"A", codeA, ra, sa, sb}, {"B", codeB, rb, sb, sa}} {
		if r.code != 0 || !strings.HasPrefix(r.received, "received ok") || !strings.HasPrefix(r.last, "stress ok") {
			t.Errorf("%s: exit status %d, %q, %q", r.name, r.code, r.received, r.last)
			continue
		}
		sent, got := lineField(t, r.sentByOther, "sent"), lineField(t, r.last, "received")
		if got != sent {
			t.Errorf("%s received %d messages, the other sent %d", r.name, got, sent)
		}
		// Not vacuous: a few hundred messages a channel at the least.
		if got < 3*200 {
			t.Errorf("%s: only %d messages in %d s", r.name, got, seconds)
		}
		for _, k := range []string{"polls", "runcallbacks"} {
			if lineField(t, r.last, k) == 0 {
				t.Errorf("%s: %s=0", r.name, k)
			}
		}
	}
}

// TestThreadsReinit: init, shutdown and init again in one process, three
// times (SteamAPI_Init, SteamInternal_SteamAPI_Init, SteamAPI_InitFlat):
// every cycle is logged on with its own SteamID, reaches itself by
// loopback and exchanges a packet with an echoing peer; the SDK >= 1.43
// accessor (SteamInternal_ContextInit) refreshes its interface once per
// cycle; handles are 0 and every call answers false/0 between the cycles,
// also through the interface pointer of the previous cycle; a callback
// unregistered before the shutdown and registered again while Steam is
// down runs in the next cycle.
func TestThreadsReinit(t *testing.T) {
	t.Parallel()
	peer := peerProgram(t)
	server := startRendezvous(t, rendezvous.ServerConfig{})
	echoID, gameID := peerSteamID(11), peerSteamID(12)
	start := time.Now()
	echo := startChild(t, "echo", peer, []string{"--echo"}, gameEnv(t, server, echoID, 480))
	echo.waitLine(t, "ready ", 15*time.Second)
	game := startChild(t, "reinit", peer, []string{"--reinit", "--peer", strconv.FormatUint(echoID, 10)},
		gameEnv(t, server, gameID, 480))
	res := game.waitLine(t, "reinit ", 25*time.Second)
	code := game.wait(t, 10*time.Second)
	t.Logf("reinit: %s (exit status %d) after %v", res, code, time.Since(start).Round(time.Millisecond))
	echo.stdin.Close()
	done := echo.waitLine(t, "echo done", 15*time.Second)
	echoCode := echo.wait(t, 10*time.Second)
	t.Logf("echo: %s (exit status %d)", done, echoCode)
	if code != 0 || !strings.HasPrefix(res, "reinit ok") {
		t.Errorf("reinit: exit status %d, %q", code, res)
	}
	if echoCode != 0 {
		t.Errorf("echo: exit status %d, %q", echoCode, done)
	}
	if n := lineField(t, done, "echoed"); n != 3 {
		t.Errorf("the echo echoed %d packets, want one a cycle (3)", n)
	}
}

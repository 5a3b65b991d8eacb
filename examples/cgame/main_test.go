// Package cgame_test builds the drop-in libsteam_api.so and the C++ example
// beside this file with the README's commands, and plays the README's two
// terminals: two copies of the example against a rendezvous server, a
// session request, its accept, and a line each way.
package cgame_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// waitLimit bounds every wait on the example's output; on loopback each
// step takes milliseconds once the programs run.
const waitLimit = 15 * time.Second

// The two players: valid individual SteamIDs (76561197960265728 + account).
const (
	idOne = "76561197960265729"
	idTwo = "76561197960265730"
)

// needTool skips the test with the reason when a tool is missing, or fails
// it when P2PCOMPAT_CABI_REQUIRE=1 says the tools must be there.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("P2PCOMPAT_CABI_REQUIRE") == "1" {
			t.Fatalf("%s is required (P2PCOMPAT_CABI_REQUIRE=1) but not found", name)
		}
		t.Skipf("%s not found: the C++ example needs it; install it to run this test", name)
	}
}

// buildExample runs the README's two build commands in a directory of the
// test's own: the library (from the module's root) and the example, which
// finds the library beside it through its RUNPATH ($ORIGIN). It returns
// the example's path.
func buildExample(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the drop-in library is built for linux/amd64 only, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	needTool(t, "g++")
	out, err := exec.Command("go", "env", "CC").Output()
	if err != nil {
		t.Fatalf("go env CC: %v", err)
	}
	needTool(t, strings.TrimSpace(string(out)))

	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("finding the module's root: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(root)), "examples", "cgame", "main.cpp")
	dir := t.TempDir()

	// go build -buildmode=c-shared -o libsteam_api.so ./cmd/libsteam_api
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libsteam_api.so"), "./cmd/libsteam_api")
	build.Dir = strings.TrimSpace(string(root))
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build.Args, err, b)
	}
	// g++ -O2 -Wall -o cgame examples/cgame/main.cpp -L. -lsteam_api -Wl,-rpath,'$ORIGIN'
	cxx := exec.Command("g++", "-O2", "-Wall", "-o", "cgame", src, "-L.", "-lsteam_api", "-Wl,-rpath,$ORIGIN")
	cxx.Dir = dir
	if b, err := cxx.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cxx.Args, err, b)
	}
	return filepath.Join(dir, "cgame")
}

func TestTwoCopies(t *testing.T) {
	exe := buildExample(t)
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	server := srv.Addr().String()

	one := start(t, exe, server, idOne, idTwo)
	two := start(t, exe, server, idTwo, idOne)
	one.out.waitFor(t, "* you are "+idOne+", playing with "+idTwo, 1)
	two.out.waitFor(t, "* you are "+idTwo+", playing with "+idOne, 1)

	// The first line opens the session. Should the second copy not be
	// registered yet, the first sees a connect failure and types again, as
	// a player would.
	const fail = "* could not reach " + idTwo
	arrived := func() bool { return strings.Contains(two.out.String(), "["+idOne+"] hello from one\n") }
	for attempt := 1; !arrived(); attempt++ {
		if attempt > 3 {
			t.Fatalf("three lines typed, none arrived\none:\n%s\ntwo:\n%s", one.dump(), two.dump())
		}
		one.typeLine(t, "hello from one")
		waitUntil(func() bool { return arrived() || strings.Count(one.out.String(), fail) >= attempt })
	}
	two.out.waitFor(t, "* "+idOne+" wants to play: accepted\n", 1)
	two.out.waitFor(t, "["+idOne+"] hello from one\n", 1)

	two.typeLine(t, "hello from two")
	one.out.waitFor(t, "["+idTwo+"] hello from two\n", 1)
	if s := one.out.String(); strings.Contains(s, "wants to play") {
		t.Errorf("the copy that opened the session saw a session request of its own:\n%s", s)
	}

	one.endInput()
	two.endInput()
	for _, c := range []*copyOf{one, two} {
		c.out.waitFor(t, "* bye\n", 1)
		if err := c.wait(); err != nil {
			t.Errorf("%s exited: %v\n%s", c.name, err, c.dump())
		}
	}
}

// copyOf is one running copy of the example.
type copyOf struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *output
	errOut *output
	done   chan struct{}
	err    error
}

func start(t *testing.T, exe, server, id, peer string) *copyOf {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, exe, "-peer", peer)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"XDG_DATA_HOME=" + t.TempDir(),
		"P2PCOMPAT_RENDEZVOUS=" + server,
		"P2PCOMPAT_STEAMID=" + id,
		"SteamAppId=480",
	}
	if os.Getenv("P2PCOMPAT_TEST_LOG") == "1" {
		cmd.Env = append(cmd.Env, "P2PCOMPAT_LOG=stderr", "P2PCOMPAT_LOG_LEVEL=debug")
	}
	cmd.Dir = t.TempDir()
	c := &copyOf{name: id, cmd: cmd, out: newOutput(), errOut: newOutput(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.errOut
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = in
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { c.err = cmd.Wait(); cancel(); close(c.done) }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-c.done:
		case <-time.After(waitLimit):
			cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("copy %s:\n%s", c.name, c.dump())
		}
	})
	return c
}

func (c *copyOf) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatalf("typing %q into %s: %v", line, c.name, err)
	}
}

func (c *copyOf) endInput() { c.stdin.Close() }

// wait waits for the copy to exit, at most waitLimit.
func (c *copyOf) wait() error {
	select {
	case <-c.done:
		return c.err
	case <-time.After(waitLimit):
		return context.DeadlineExceeded
	}
}

func (c *copyOf) dump() string {
	return "stdout:\n" + c.out.String() + "stderr:\n" + c.errOut.String()
}

// output is a copy's output so far, safe to read while it is written.
type output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func newOutput() *output { return &output{} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitUntil polls cond until it holds or waitLimit passes.
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitFor waits until s occurs n times in the output.
func (o *output) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	if !waitUntil(func() bool { return strings.Count(o.String(), s) >= n }) {
		t.Fatalf("waited %v for %q (%d times); output so far:\n%s", waitLimit, s, n, o.String())
	}
}

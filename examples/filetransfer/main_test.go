package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// testLimit bounds each test; the transfers here take well under a second
// each on loopback, the retry test a few.
const testLimit = 60 * time.Second

// TestDemoTransfer runs the no-setup demo on a file of 8 MiB and an odd
// remainder, so that the last chunk is partial, and compares the received
// file with the sent one byte for byte.
func TestDemoTransfer(t *testing.T) {
	const size = 8<<20 + 12345
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()
	out := newOutput()
	if err := run(ctx, []string{"-size", strconv.Itoa(size), "-dir", dir}, out); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	sent := readFile(t, filepath.Join(dir, "send", "demo.bin"))
	got := readFile(t, filepath.Join(dir, "recv", "demo.bin"))
	if len(sent) != size {
		t.Fatalf("the demo generated %d bytes, want %d", len(sent), size)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(sent))
	}
	if !strings.Contains(out.String(), "MB/s\n") {
		t.Errorf("no throughput in the output:\n%s", out)
	}
}

// TestSendRecvModes runs -recv and -send as two processes would, against
// one rendezvous server, for an empty file and one with a partial last
// chunk.
func TestSendRecvModes(t *testing.T) {
	for _, size := range []int{0, 3<<20 + 7} {
		t.Run("size="+strconv.Itoa(size), func(t *testing.T) {
			addr := startServer(t)
			dir := t.TempDir()
			src := writeRandom(t, filepath.Join(dir, "payload.dat"), size)
			dst := filepath.Join(dir, "incoming")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testLimit)
			defer cancel()

			recv := startRun(ctx, t, "-server", addr, "-id", "2", "-peer", "1", "-recv", dst)
			recv.out.waitFor(t, "2: waiting for a file")
			send := startRun(ctx, t, "-server", addr, "-id", "1", "-peer", "2", "-send", src)
			if err := send.wait(t); err != nil {
				t.Fatalf("sender: %v\n%s", err, send.out)
			}
			if err := recv.wait(t); err != nil {
				t.Fatalf("receiver: %v\n%s", err, recv.out)
			}
			if got, want := readFile(t, filepath.Join(dst, "payload.dat")), readFile(t, src); !bytes.Equal(got, want) {
				t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(want))
			}
			if names := dirNames(t, dst); len(names) != 1 {
				t.Errorf("receive directory holds %q, want only payload.dat", names)
			}
		})
	}
}

// TestSenderRetries starts the sender before the receiver exists: the
// first attempt fails with DestinationNotLoggedOn, and a later one, once
// the receiver is up, delivers the file.
func TestSenderRetries(t *testing.T) {
	addr := startServer(t)
	dir := t.TempDir()
	src := writeRandom(t, filepath.Join(dir, "late.bin"), 1<<20+1)
	dst := filepath.Join(dir, "incoming")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()

	send := startRun(ctx, t, "-server", addr, "-id", "1", "-peer", "2", "-send", src)
	send.out.waitFor(t, "session with 2 failed: DestinationNotLoggedOn")
	recv := startRun(ctx, t, "-server", addr, "-id", "2", "-recv", dst)
	if err := send.wait(t); err != nil {
		t.Fatalf("sender: %v\n%s", err, send.out)
	}
	if err := recv.wait(t); err != nil {
		t.Fatalf("receiver: %v\n%s", err, recv.out)
	}
	if got, want := readFile(t, filepath.Join(dst, "late.bin")), readFile(t, src); !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(want))
	}
}

// TestReceiverRefusesExistingFile has the receiver refuse a file it
// already holds: the sender learns why, both report an error, and the old
// file is untouched.
func TestReceiverRefusesExistingFile(t *testing.T) {
	addr := startServer(t)
	dir := t.TempDir()
	src := writeRandom(t, filepath.Join(dir, "dup.bin"), 2<<20+3)
	dst := filepath.Join(dir, "incoming")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	old := []byte("keep me")
	if err := os.WriteFile(filepath.Join(dst, "dup.bin"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()

	recv := startRun(ctx, t, "-server", addr, "-id", "2", "-recv", dst)
	recv.out.waitFor(t, "2: waiting for a file")
	send := startRun(ctx, t, "-server", addr, "-id", "1", "-peer", "2", "-send", src)
	if err := send.wait(t); err == nil || !strings.Contains(err.Error(), "dup.bin already exists") {
		t.Errorf("sender: %v, want the receiver's refusal\n%s", err, send.out)
	}
	if err := recv.wait(t); err == nil {
		t.Errorf("receiver: nil error after refusing\n%s", recv.out)
	}
	if got := readFile(t, filepath.Join(dst, "dup.bin")); !bytes.Equal(got, old) {
		t.Errorf("the existing file now holds %d bytes", len(got))
	}
	if names := dirNames(t, dst); len(names) != 1 {
		t.Errorf("receive directory holds %q, want only dup.bin", names)
	}
}

// TestHeaderRejectsUnsafeNames keeps a sender from naming a path outside
// the receive directory, or an existing file.
func TestHeaderRejectsUnsafeNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "taken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	header := func(name string) []byte {
		h := binary.BigEndian.AppendUint64([]byte{msgHeader}, 10)
		h = append(h, make([]byte, sha256.Size)...)
		return append(h, name...)
	}
	for _, name := range []string{"../escape", "a/b", `a\b`, "..", ".", "/etc/passwd", "taken", ""} {
		if in, err := openIncoming(1, header(name), dir); err == nil {
			in.tmp.Close()
			t.Errorf("header naming %q accepted", name)
		}
	}
	in, err := openIncoming(1, header("fine.txt"), dir)
	if err != nil {
		t.Fatalf("header naming fine.txt: %v", err)
	}
	in.tmp.Close()
	if filepath.Dir(in.tmp.Name()) != dir {
		t.Errorf("temporary file %s is outside %s", in.tmp.Name(), dir)
	}
}

// TestFlags refuses contradictory command lines.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-send", "x", "-recv", "y", "-id", "1", "-peer", "2"},
		{"-send", "x", "-id", "1"},
		{"-send", "x", "-peer", "2"},
		{"-recv", "y"},
		{"-size", "-1"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) = nil error, want one", args)
		}
	}
}

func startServer(t *testing.T) string {
	t.Helper()
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr().String()
}

// running is one run on its own goroutine, as one process.
type running struct {
	out  *output
	errc chan error
	once sync.Once
	err  error
}

func startRun(ctx context.Context, t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	r := &running{out: newOutput(), errc: make(chan error, 1)}
	go func() { r.errc <- run(ctx, args, r.out) }()
	t.Cleanup(func() {
		cancel()
		r.wait(t)
	})
	return r
}

// wait returns run's error; ctx bounds it, as run returns when ctx ends.
func (r *running) wait(t *testing.T) error {
	r.once.Do(func() { r.err = <-r.errc })
	return r.err
}

func writeRandom(t *testing.T, path string, size int) string {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*131 + i>>11) // not periodic in the chunk size
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// output is a run's standard output: safe to read while the run writes,
// and able to wait for a line to appear.
type output struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits, at most testLimit, until want appears in the output.
func (o *output) waitFor(t *testing.T, want string) {
	t.Helper()
	limit := time.NewTimer(testLimit)
	defer limit.Stop()
	for {
		o.mu.Lock()
		s, changed := o.b.String(), o.changed
		o.mu.Unlock()
		if strings.Contains(s, want) {
			return
		}
		select {
		case <-changed:
		case <-limit.C:
			t.Fatalf("%q did not appear within %v; output:\n%s", want, testLimit, s)
		}
	}
}

package channels

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzHandlePacket from the
// payloads two engines really exchange: stream fragments, unreliable
// messages, pings, and ACKs with gaps (one packet in four is lost on the
// way). It only runs when asked:
//
//	P2PCOMPAT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./channels
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("P2PCOMPAT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set P2PCOMPAT_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandlePacket")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	a := mustNew(Config{}, now, func(int, []byte) {})
	b := mustNew(Config{}, now, func(int, []byte) {})
	a.SetEstablished(now)
	b.SetEstablished(now)
	a.Send([]byte("hello"), Reliable, 3, now)
	a.Send(make([]byte, 6000), Reliable, 1, now)
	a.Send([]byte("nagle"), ReliableWithBuffering, 0, now)
	a.Send([]byte("u"), Unreliable, 7, now)
	a.Send([]byte("nodelay"), UnreliableNoDelay, 1<<20, now)
	a.Send([]byte{}, Reliable, 2147483647, now)

	kinds := map[byte]string{frameUnreliable: "unreliable", frameStream: "stream", frameAck: "ack", framePing: "ping"}
	seen := map[string]int{}
	write := func(from string, pn uint64, p []byte) {
		name := fmt.Sprintf("real_%s_%s", from, kinds[p[0]])
		seen[name]++
		if seen[name] > 3 {
			return // a few of each kind are enough
		}
		name = fmt.Sprintf("%s_%d", name, seen[name])
		body := fmt.Sprintf("go test fuzz v1\nuint64(%d)\n[]byte(%q)\n", pn, p)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	n := 0
	move := func(from string, src, dst *Engine) {
		for {
			pn, p, ok := src.NextPacket(buf, now)
			if !ok {
				return
			}
			write(from, pn, p)
			if n++; n%4 == 3 {
				continue // lost: the ACKs get gaps, and retransmissions follow
			}
			if err := dst.HandlePacket(pn, append([]byte(nil), p...), now); err != nil {
				t.Fatalf("%s packet %d: %v", from, pn, err)
			}
		}
	}
	for i := 0; i < 40; i++ {
		now = now.Add(20 * time.Millisecond)
		a.OnTimer(now)
		b.OnTimer(now)
		if i == 10 {
			a.Ping()
			b.Send([]byte("reply"), Reliable, 0, now)
		}
		move("a", a, b)
		move("b", b, a)
	}
	t.Logf("seed files: %v", seen)
}

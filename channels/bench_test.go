package channels

import (
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/bufpool"
)

// benchPair is two established engines wired back to back: every packet
// one emits goes straight into the other, as over a perfect link.
type benchPair struct {
	a, b *Engine
	now  time.Time
	buf  []byte
	got  int
}

func newBenchPair() *benchPair {
	p := &benchPair{now: time.Unix(1_700_000_000, 0), buf: make([]byte, 2048)}
	p.a = mustNew(Config{SendBufferSize: 64 << 20}, p.now, func(int, []byte) {})
	p.b = mustNew(Config{}, p.now, func(_ int, d []byte) { p.got++; p.b.Consumed(Cost(len(d))); bufpool.Put(d) })
	p.a.SetEstablished(p.now)
	p.b.SetEstablished(p.now)
	return p
}

// exchange moves every due packet both ways until both engines are quiet.
func (p *benchPair) exchange() {
	for moved := true; moved; {
		moved = false
		for _, e := range [2]struct{ from, to *Engine }{{p.a, p.b}, {p.b, p.a}} {
			for {
				pn, payload, ok := e.from.NextPacket(p.buf, p.now)
				if !ok {
					break
				}
				moved = true
				if err := e.to.HandlePacket(pn, payload, p.now); err != nil {
					panic(err)
				}
			}
		}
		p.now = p.now.Add(time.Millisecond)
		p.a.OnTimer(p.now)
		p.b.OnTimer(p.now)
	}
}

// benchMessages sends b.N messages of size bytes, exchanging every 32,
// and checks that all were delivered.
func benchMessages(b *testing.B, size int, st SendType) {
	p := newBenchPair()
	msg := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := p.a.Send(msg, st, 0, p.now); err != nil {
			b.Fatal(err)
		}
		if i%32 == 31 {
			p.exchange()
		}
	}
	p.exchange()
	if p.got != b.N {
		b.Fatalf("delivered %d of %d", p.got, b.N)
	}
}

// BenchmarkReliable1200 is the engine's own cost per reliable 1200-byte
// message, send to delivery and ack, without sockets or encryption.
func BenchmarkReliable1200(b *testing.B) { benchMessages(b, 1200, Reliable) }

// BenchmarkUnreliable100 is the cost per small unreliable message.
func BenchmarkUnreliable100(b *testing.B) { benchMessages(b, 100, Unreliable) }

// BenchmarkReliable1MiB is the cost of one maximal message, fragmented
// and reassembled.
func BenchmarkReliable1MiB(b *testing.B) {
	p := newBenchPair()
	msg := make([]byte, MaxReliableSize)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := p.a.Send(msg, Reliable, 0, p.now); err != nil {
			b.Fatal(err)
		}
		p.exchange()
	}
	if p.got != b.N {
		b.Fatalf("delivered %d of %d", p.got, b.N)
	}
}

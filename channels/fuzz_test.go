package channels

import (
	"testing"
	"time"
)

// FuzzHandlePacket feeds arbitrary plaintext to an established engine, as a
// broken or hostile peer could: it must never panic, never deliver more
// unread data than its window, and stay usable afterwards.
func FuzzHandlePacket(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	// Seeds: real packets of a few kinds, from an engine talking to itself.
	src := mustNew(Config{}, now, func(int, []byte) {})
	src.SetEstablished(now)
	src.Send([]byte("hello"), Reliable, 3, now)
	src.Send(make([]byte, 3000), Reliable, 1, now)
	src.Send([]byte("u"), Unreliable, 7, now)
	buf := make([]byte, 2048)
	for {
		_, p, ok := src.NextPacket(buf, now)
		if !ok {
			break
		}
		f.Add(uint64(1), append([]byte(nil), p...))
	}
	var recv rangeSet
	recv.add(1, 5)
	recv.add(7, 9)
	f.Add(uint64(2), appendAck(nil, &recv, 100, 1<<21))
	f.Add(uint64(3), []byte{framePing})
	f.Add(uint64(4), []byte{frameStream, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add(uint64(5), []byte{frameAck, 5, 0, 0, 0, 9})

	f.Fuzz(func(t *testing.T, pn uint64, payload []byte) {
		unread := 0
		e := mustNew(Config{}, now, func(_ int, d []byte) { unread += len(d) })
		e.SetEstablished(now)
		e.Send([]byte("queued"), Reliable, 0, now)
		for {
			if _, _, ok := e.NextPacket(buf, now); !ok {
				break
			}
		}
		_ = e.HandlePacket(pn, payload, now)
		if unread > e.cfg.RecvWindow {
			t.Fatalf("delivered %d bytes, window %d", unread, e.cfg.RecvWindow)
		}
		e.OnTimer(now.Add(time.Second))
		for i := 0; i < 100; i++ {
			if _, _, ok := e.NextPacket(buf, now.Add(time.Second)); !ok {
				break
			}
		}
		if b, _ := e.Queued(); b < 0 {
			t.Fatalf("negative queue %d", b)
		}
	})
}

package session

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzHandshakeBody and
// testdata/fuzz/FuzzHandlePacket from what a world really puts on its
// wire: A and B connect, exchange reliable and unreliable messages, and
// close. Handshake bodies are opened with B's pair key. It only runs when
// asked:
//
//	P2PCOMPAT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./session
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("P2PCOMPAT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set P2PCOMPAT_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	var captured []datagram
	rec := func(d datagram) { captured = append(captured, d) }
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	a.send(2, "hello")
	w.pumpRecording(rec) // B has not accepted: hellos without the accept flag
	b.m.Accept(1)
	w.pumpRecording(rec)
	for i := 0; i < 20; i++ {
		w.now = w.now.Add(10 * time.Millisecond)
		a.m.OnTimer()
		b.m.OnTimer()
		w.pumpRecording(rec)
	}
	if got := b.read(); got != "hello" {
		t.Fatalf("B read %q", got)
	}
	if err := a.m.Send(2, make([]byte, 3000), channels.Reliable, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.m.Send(2, []byte("u"), channels.Unreliable, 4); err != nil {
		t.Fatal(err)
	}
	b.send(1, "reply")
	w.pumpRecording(rec)
	w.now = w.now.Add(time.Second)
	a.m.OnTimer()
	b.m.OnTimer()
	w.pumpRecording(rec)
	b.m.mu.Lock()
	sa, _ := b.m.tab.lru.Peek(1)
	pair, keys := sa.pair, sa.keys
	b.m.mu.Unlock()
	a.m.mu.Lock()
	sb, _ := a.m.tab.lru.Peek(2)
	pairAtA := sb.pair
	a.m.mu.Unlock()
	a.m.Close(2)
	w.pumpRecording(rec)

	write := func(target, name string, vals ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n"
		for _, v := range vals {
			switch v := v.(type) {
			case byte:
				body += fmt.Sprintf("byte(%q)\n", v)
			case []byte:
				body += fmt.Sprintf("[]byte(%q)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	bodies := map[string]bool{}
	var hello, data, fromB []byte
	for _, d := range captured {
		fromA := d.from == a.addr && d.to == b.addr
		if !fromA && d.b[0] == byte(wire.KindData) {
			if fromB == nil {
				fromB = d.b
			}
			continue
		}
		switch d.b[0] {
		case byte(wire.KindHandshake):
			pk := pair
			if !fromA {
				pk = pairAtA
			}
			pt, err := pk.OpenHandshake(nil, d.b[:hsHeaderLen], d.b[hsHeaderLen:])
			if err != nil {
				t.Fatalf("a captured hello does not open: %v", err)
			}
			m, err := parseHSBody(pt)
			if err != nil {
				t.Fatalf("a captured hello does not parse: %v", err)
			}
			name := fmt.Sprintf("real_type%d_flags%d", m.typ, m.flags)
			if !bodies[name] {
				bodies[name] = true
				write("FuzzHandshakeBody", name, pt)
			}
			if fromA && hello == nil && m.typ == hsHello {
				hello = d.b
			}
		case byte(wire.KindData):
			pn := binary.BigEndian.Uint64(d.b[9:17])
			if _, err := keys.Open(nil, d.b[:dataHeaderLen], pn, d.b[dataHeaderLen:]); err != nil {
				continue // sealed for an earlier session
			}
			if data == nil || len(d.b) > len(data) {
				data = d.b
			}
		}
	}
	if hello == nil || data == nil || fromB == nil {
		t.Fatalf("captured no hello (%v), data from A (%v) or data from B (%v)", hello != nil, data != nil, fromB != nil)
	}
	// Whole packets of another world: they reach the AEADs and fail there.
	write("FuzzHandlePacket", "real_hello_raw", byte(shapeRaw), hello)
	write("FuzzHandlePacket", "real_data_raw", byte(shapeRaw), data)
	write("FuzzHandlePacket", "real_data_from_b_as_kind_hs", byte(shapeKind), fromB)
	// Their tails on this world's live headers.
	write("FuzzHandlePacket", "real_data_tail_with_pn", byte(shapeData), data[9:])
	write("FuzzHandlePacket", "real_data_tail_via_relay", byte(shapeData|modeLongPrefix|modeViaRelay), data[dataHeaderLen:])
	write("FuzzHandlePacket", "real_data_tail_held_back", byte(shapeData|modeLongPrefix|modeHoldBack|modeAFirst), data[dataHeaderLen:])
	write("FuzzHandlePacket", "real_hello_tail", byte(shapeHandshake), hello[hsHeaderLen:])
	write("FuzzHandlePacket", "real_hello_ciphertext", byte(shapeHandshake|modeLongPrefix|modeAFirst), hello[hsHeaderLen+24:])
	// This world's own packets, unchanged or nearly: replays, a copy from
	// a stranger that races the original, an overwritten byte.
	write("FuzzHandlePacket", "replay_data", byte(shapeData|modeLongPrefix|modeOverlay), []byte{})
	write("FuzzHandlePacket", "race_data_from_stranger", byte(shapeData|modeLongPrefix|modeOverlay|modeHoldBack), []byte{})
	write("FuzzHandlePacket", "race_data_via_relay", byte(shapeData|modeLongPrefix|modeOverlay|modeHoldBack|modeViaRelay|modeAFirst), []byte{})
	write("FuzzHandlePacket", "data_next_pn", byte(shapeData|modeOverlay|modeHoldBack), []byte{0, 0, 0, 0, 0, 0, 0, 9})
	write("FuzzHandlePacket", "replay_hello", byte(shapeHandshake|modeLongPrefix|modeOverlay|modeAFirst), []byte{})
	write("FuzzHandlePacket", "hello_ciphertext_overwritten", byte(shapeHandshake|modeLongPrefix|modeOverlay), []byte{0xff})
	t.Logf("handshake bodies: %v", bodies)
}

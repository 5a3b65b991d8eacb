package session

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/seal"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// The shapes FuzzHandlePacket gives its bytes, chosen by the low two bits
// of mode. Raw bytes almost never carry a live session ID or the pair's
// SteamIDs, so two shapes graft them onto a header captured from the
// world's own wire, which takes them past the lookups to the AEADs, the
// replay window and the handshake checks.
const (
	shapeRaw       = 0 // the bytes as they are
	shapeKind      = 1 // first byte forced to 0xE0 (mode&4 == 0) or 0xE1
	shapeData      = 2 // a captured data packet, tail replaced (see graft)
	shapeHandshake = 3 // a captured handshake packet, tail replaced
)

// Other bits of mode.
const (
	modeLongPrefix = 0x04 // graft after the whole header (and nonce), not just the IDs
	modeOverlay    = 0x08 // graft: overwrite in place, keeping the length
	modeAFirst     = 0x20 // deliver from A's address before the stranger's
	modeViaRelay   = 0x40 // as if it came through our TURN allocation
	modeHoldBack   = 0x80 // the captured data packet reaches B only after the fuzz bytes
)

var fuzzStranger = netip.MustParseAddrPort("198.18.200.7:40000")

// fuzzCapture is what setup took off the wire: A's packets to B.
type fuzzCapture struct {
	data      []byte // a data packet carrying "captured" on channel 0
	handshake []byte // a hello
}

// fuzzPair makes a world where A (1) and B (2) have an established
// session and B has read A's first message. A's data packet carrying
// "captured" is taken off the wire undelivered: the caller decides when B
// gets it.
func fuzzPair(t *testing.T) (w *world, a, b *node, c fuzzCapture) {
	t.Helper()
	w = newWorld(t)
	a, b = w.add(1, Config{}), w.add(2, Config{})
	rec := func(d datagram) {
		if c.handshake == nil && d.from == a.addr && d.to == b.addr && len(d.b) > 0 && d.b[0] == byte(wire.KindHandshake) {
			c.handshake = d.b
		}
	}
	b.m.Accept(1)
	a.send(2, "hello")
	w.pumpRecording(rec)
	for i := 0; i < 50 && b.read() != "hello"; i++ {
		w.now = w.now.Add(10 * time.Millisecond)
		a.m.OnTimer()
		b.m.OnTimer()
		w.pumpRecording(rec)
	}
	if st, ok := b.m.State(1); !ok || !st.ConnectionActive {
		t.Fatalf("setup: B's session with A is not established: %+v", st)
	}
	if c.handshake == nil {
		t.Fatal("setup: no handshake packet from A to B seen")
	}
	a.send(2, "captured")
	for i, d := range w.wire {
		if d.from == a.addr && d.to == b.addr && len(d.b) > 0 && d.b[0] == byte(wire.KindData) {
			c.data = d.b
			w.wire = append(w.wire[:i:i], w.wire[i+1:]...)
			break
		}
	}
	if c.data == nil {
		t.Fatal("setup: A's data packet not on the wire")
	}
	return w, a, b, c
}

// graft returns base with its bytes from prefix on replaced by tail:
// truncated and appended to, or (overlay) overwritten in place.
func graft(base []byte, prefix int, tail []byte, overlay bool) []byte {
	out := append([]byte(nil), base[:prefix]...)
	if !overlay {
		return append(out, tail...)
	}
	out = append(out, base[prefix:]...)
	n := copy(out[prefix:], tail)
	return append(out, tail[n:]...)
}

// shapePacket builds the datagram for one input.
func shapePacket(mode byte, data []byte, c fuzzCapture) []byte {
	switch mode & 3 {
	case shapeKind:
		k := byte(wire.KindHandshake)
		if mode&modeLongPrefix != 0 {
			k = byte(wire.KindData)
		}
		if len(data) == 0 {
			return []byte{k}
		}
		out := append([]byte(nil), data...)
		out[0] = k
		return out
	case shapeData:
		prefix := 9 // kind, session ID: the packet number is fuzzed too
		if mode&modeLongPrefix != 0 {
			prefix = dataHeaderLen
		}
		return graft(c.data, prefix, data, mode&modeOverlay != 0)
	case shapeHandshake:
		prefix := hsHeaderLen // kind, sender, receiver
		if mode&modeLongPrefix != 0 {
			prefix = hsHeaderLen + 24 // and the nonce
		}
		return graft(c.handshake, prefix, data, mode&modeOverlay != 0)
	}
	return append([]byte(nil), data...)
}

// FuzzHandlePacket feeds arbitrary datagrams to B's Manager, from a
// stranger's address and from A's, while B has an established session
// with A. Whatever the bytes: no panic, no new table entry, nothing
// delivered to the game but what A really sent, and the session with A
// stays established and still carries A's next message.
// Seeds: f.Add below and testdata/fuzz/FuzzHandlePacket (real packets of a
// world; see TestWriteFuzzSeeds).
func FuzzHandlePacket(f *testing.F) {
	// Packets in the real formats, sealed under keys of their own: they
	// reach the AEADs but do not open.
	ka, _ := seal.GenerateKeyPair()
	kb, _ := seal.GenerateKeyPair()
	pk, err := seal.NewPairKey(ka, kb.Public, 1, 2)
	if err != nil {
		f.Fatal(err)
	}
	hello := pk.SealHandshake(appendHSHeader(nil, 1, 2), appendHSHeader(nil, 1, 2),
		appendHSBody(nil, hsBody{typ: hsHello, src: 3, flags: flagAccepted | flagWantReply, token: 4}))
	sk, err := pk.SessionKeys(3, 5)
	if err != nil {
		f.Fatal(err)
	}
	hdr := appendDataHeader(nil, 5, 0)
	data := sk.Seal(hdr, hdr, 0, []byte{0x02, 0x00, 0x07, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add(byte(shapeRaw), hello)
	f.Add(byte(shapeRaw), data)
	f.Add(byte(shapeRaw), []byte{})
	f.Add(byte(shapeRaw), []byte{0xE0})
	f.Add(byte(shapeRaw), []byte{0xE1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(byte(shapeKind), make([]byte, hsHeaderLen+seal.HandshakeOverhead+hsBodyLen))
	f.Add(byte(shapeKind|modeLongPrefix), make([]byte, dataHeaderLen+seal.Overhead+1))
	f.Add(byte(shapeData), data[9:])                                         // another session's pn and ciphertext
	f.Add(byte(shapeData|modeLongPrefix|modeOverlay), []byte{})              // a replay
	f.Add(byte(shapeData|modeLongPrefix|modeOverlay|modeHoldBack), []byte{}) // the real packet, from a stranger first
	f.Add(byte(shapeData|modeOverlay|modeHoldBack), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(byte(shapeData|modeLongPrefix|modeOverlay|modeViaRelay), []byte{0xff})
	f.Add(byte(shapeHandshake), hello[hsHeaderLen:])
	f.Add(byte(shapeHandshake|modeLongPrefix|modeOverlay), []byte{})             // a replayed hello
	f.Add(byte(shapeHandshake|modeLongPrefix|modeOverlay|modeAFirst), []byte{1}) // a flipped byte
	f.Add(byte(shapeHandshake|modeOverlay|modeAFirst|modeViaRelay), []byte{})

	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		w, a, b, c := fuzzPair(t)
		hold := mode&modeHoldBack != 0
		var got []string
		if !hold {
			b.m.HandlePacket(c.data, a.addr, false)
			w.pump()
			got = append(got, b.read())
		}
		pkt := shapePacket(mode, data, c)
		relay := mode&modeViaRelay != 0
		froms := []netip.AddrPort{fuzzStranger, a.addr}
		if mode&modeAFirst != 0 {
			froms[0], froms[1] = froms[1], froms[0]
		}
		for _, from := range froms {
			b.m.HandlePacket(append([]byte(nil), pkt...), from, relay)
			if n := b.m.Len(); n != 1 {
				t.Fatalf("B's table holds %d sessions after a datagram from %v", n, from)
			}
			if p := b.m.tab.pending; p != 0 {
				t.Fatalf("B counts %d pending users after a datagram from %v", p, from)
			}
		}
		w.pump()
		if hold {
			b.m.HandlePacket(c.data, a.addr, false)
			w.pump()
		}
		for s := b.read(); s != ""; s = b.read() {
			got = append(got, s)
		}
		if st, ok := b.m.State(1); !ok || !st.ConnectionActive {
			t.Fatalf("B's session with A is no longer established: %+v, %v", st, ok)
		}
		a.send(2, "after")
		w.pump()
		for i := 0; i < 300; i++ {
			s := b.read()
			if s == "after" {
				got = append(got, s)
				break
			}
			if s != "" {
				got = append(got, s)
				continue
			}
			w.advance(10*time.Millisecond, 10*time.Millisecond)
		}
		if want := []string{"captured", "after"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("B read %q, want %q", got, want)
		}
		if len(b.m.in.queues) != 0 {
			t.Fatalf("B holds unread packets on %d channels that nobody sent", len(b.m.in.queues))
		}
		if n := b.m.Len(); n != 1 {
			t.Fatalf("B's table holds %d sessions", n)
		}
		if st, ok := b.m.State(1); !ok || !st.ConnectionActive {
			t.Fatalf("B's session with A is no longer established: %+v, %v", st, ok)
		}
	})
}

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// The COMPAT.md suite again, through the C ABI: every row that a C caller
// can observe, played by game processes of testdata/legacygame.cpp against
// the built libsteam_api.so. One binding calls ISteamNetworking through its
// vtable and takes callbacks by classic dispatch (CCallbackBase objects,
// SteamAPI_RunCallbacks); the other calls the flat API and dispatches by
// hand (SteamAPI_ManualDispatch_*). Rows between two players run both ways
// round, each with a fresh pair of processes, unless they only need a
// session that is already open. Time-based rows run with shortened
// settings.

const otherApp = 730 // an AppID the rendezvous admits besides app

// The two bindings of the issue.
var (
	vtableClassic = gameSpec{api: "vtable", dispatch: "classic"}
	flatManual    = gameSpec{api: "flat", dispatch: "manual"}
)

// cabi is what every row's games share: the program and the rendezvous.
type cabi struct {
	prog, server string
}

func (c *cabi) start(t *testing.T, name string, spec gameSpec, env ...string) *game {
	t.Helper()
	spec.name = name
	spec.env = append(spec.env[:len(spec.env):len(spec.env)], env...)
	return startGame(t, c.prog, c.server, spec)
}

// bothWays runs f in two parallel subtests, each with a fresh pair of
// games: the vtable/classic game sending to the flat/manual one, and the
// other way round. envS and envR are settings of the sender and receiver.
func (c *cabi) bothWays(t *testing.T, envS, envR []string, f func(t *testing.T, s, r *game)) {
	t.Helper()
	c.bothWaysWith(t, func(s, r *gameSpec) {
		s.env = append(s.env[:len(s.env):len(s.env)], envS...)
		r.env = append(r.env[:len(r.env):len(r.env)], envR...)
	}, f)
}

// bothWaysWith is bothWays with the sender's and receiver's specs edited
// by edit.
func (c *cabi) bothWaysWith(t *testing.T, edit func(s, r *gameSpec), f func(t *testing.T, s, r *game)) {
	t.Helper()
	for _, d := range []struct {
		name string
		s, r gameSpec
	}{
		{"vtable-classic_to_flat-manual", vtableClassic, flatManual},
		{"flat-manual_to_vtable-classic", flatManual, vtableClassic},
	} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			edit(&d.s, &d.r)
			f(t, c.start(t, "S", d.s), c.start(t, "R", d.r))
		})
	}
}

// both runs f for one fresh game of each binding, in parallel subtests.
func (c *cabi) both(t *testing.T, env []string, f func(t *testing.T, g *game)) {
	t.Helper()
	for _, spec := range []gameSpec{vtableClassic, flatManual} {
		t.Run(spec.api+"-"+spec.dispatch, func(t *testing.T) {
			t.Parallel()
			f(t, c.start(t, "G", spec, env...))
		})
	}
}

// loopback is 127.0.0.1 in host byte order, as P2PSessionState_t has it.
const loopback = 0x7f000001

func env(kv ...string) []string { return kv }

func TestCABI(t *testing.T) {
	t.Parallel()
	prog := legacyGame(t)
	c := &cabi{prog: prog, server: startRendezvous(t, rendezvous.ServerConfig{AllowedApps: []uint32{app, otherApp}})}
	// The first rows share one pair with an open session: A plays the
	// vtable with classic dispatch, B the flat API with manual dispatch.
	// Their Nagle delay is an hour, so buffered data leaves only when an
	// MTU accumulates or a Reliable send flushes it.
	shared := env("P2PCOMPAT_NAGLE_DELAY=1h", fmt.Sprintf("P2PCOMPAT_SEND_BUFFER=%d", 8<<20))
	A := c.start(t, "A", vtableClassic, shared...)
	B := c.start(t, "B", flatManual, shared...)
	ways := []struct {
		name string
		s, r *game
	}{{"A_to_B", A, B}, {"B_to_A", B, A}}

	// Init: before init no user, no pipe and no interface; callbacks
	// registered during static initialisation are marked; after init a
	// non-zero user and pipe, an empty error message, and ISteamUser and
	// ISteamUtils say who the player is.
	t.Run("Init", func(t *testing.T) {
		for _, g := range []*game{A, B} {
			checkReady(t, g)
		}
		if A.ready["prereg"] != "1" {
			t.Errorf("A: callbacks registered before init not marked registered (flags bit 0, id at +12): %v", A.ready)
		}
		if B.ready["errlen"] != "0" {
			t.Errorf("B: SteamInternal_SteamAPI_Init's error buffer is not an empty NUL-terminated string (length %s)", B.ready["errlen"])
		}
	})

	established := false
	open := func(t *testing.T) {
		t.Helper()
		if !established {
			connect(t, A, B)
			B.accept(t, A.id)
			established = true
		}
	}

	// C05: Sending to your own SteamID loops back into your own receive queue.
	t.Run("C05_SendToSelfLoopsBack", func(t *testing.T) {
		for _, g := range []*game{A, B} {
			for st := 0; st < 4; st++ {
				if !g.sendText(t, g.id, st, 5, fmt.Sprintf("self%d", st)) {
					t.Fatalf("%s: send to self, type %d, refused", g.spec.name, st)
				}
			}
			for st := 0; st < 4; st++ {
				recvText(t, g, 5, fmt.Sprintf("self%d", st), g, g)
			}
			if _, ok := g.avail(t, 5); ok {
				t.Fatalf("%s: a packet to self was delivered twice", g.spec.name)
			}
		}
	})

	// C12: P2PSendReliable (2): delivered exactly once, in order, intact,
	// fragmented and reassembled underneath, with a sliding window. A
	// Reliable send also flushes any buffered ReliableWithBuffering data to
	// that user.
	t.Run("C12_ReliableExactlyOnceInOrderAndFlushes", func(t *testing.T) {
		open(t)
		const ch = 1200
		for _, w := range ways {
			s, r := w.s, w.r
			sizes := []int{1, 100, 1199, 1200, 1201, 5000, 64 << 10}
			const n = 300
			for i := 0; i < n; i++ {
				if !s.send(t, r.id, reliable, ch, sizes[i%7], i) {
					t.Fatalf("%s: send %d refused", w.name, i)
				}
			}
			for i := 0; i < n; i++ {
				size := sizes[i%7]
				p := recv(t, r, ch, 64<<10+1, s, r)
				if p.size != uint32(size) || p.hash != fnvOf(pattern(size, i)) || p.remote != s.id {
					t.Fatalf("%s: message %d: %d bytes from %d, hash %x; want %d intact bytes from %d", w.name, i, p.size, p.remote, p.hash, size, s.id)
				}
			}
			if _, ok := r.avail(t, ch); ok {
				t.Fatalf("%s: a message was delivered twice", w.name)
			}
			// Buffered data is held (the Nagle delay is an hour) until a
			// Reliable send flushes it.
			s.sendText(t, r.id, reliableBuffered, ch+1, "buffered")
			s.sendText(t, r.id, reliable, ch+2, "flush")
			recvText(t, r, ch+2, "flush", s, s, r)
			if size, ok := r.avail(t, ch+1); !ok || size != 8 {
				t.Fatalf("%s: the Reliable send did not flush the buffered message (available %v, size %d)", w.name, ok, size)
			}
			recvText(t, r, ch+1, "buffered", s)
		}
	})

	// C13: P2PSendReliableWithBuffering (3): reliable, but coalesced
	// (Nagle): sent when about one MTU (1200 bytes) has accumulated, or
	// about 200 ms after the oldest buffered byte (configurable), or when a
	// Reliable send to the same user flushes it.
	t.Run("C13_BufferedHeldUntilMTUOrDelay", func(t *testing.T) {
		open(t)
		const ch = 1300
		t.Run("held until an MTU accumulates", func(t *testing.T) {
			for _, w := range ways {
				s, r := w.s, w.r
				eventually(t, "earlier messages acknowledged", func() bool {
					st, _ := s.state(t, r.id)
					return st.packets == 0
				}, s, r)
				s.sendText(t, r.id, reliableBuffered, ch, "small")
				// An unreliable packet sent after it does not flush it, and overtakes it.
				s.sendText(t, r.id, unreliable, ch+1, "probe")
				recvText(t, r, ch+1, "probe", s, s, r)
				if _, ok := r.avail(t, ch); ok {
					t.Fatalf("%s: a small buffered message left before the delay or an MTU", w.name)
				}
				if st, _ := s.state(t, r.id); st.packets != 1 {
					t.Fatalf("%s: buffered message not queued: %+v", w.name, st)
				}
				// About one MTU of buffered data goes at once.
				for i := 0; i < 3; i++ {
					s.send(t, r.id, reliableBuffered, ch, 400, i)
				}
				recvText(t, r, ch, "small", s, s, r)
				for i := 0; i < 3; i++ {
					if p := recv(t, r, ch, 4096, s, r); p.size != 400 || p.hash != fnvOf(pattern(400, i)) {
						t.Fatalf("%s: buffered message %d: %d bytes, hash %x", w.name, i, p.size, p.hash)
					}
				}
			}
		})
		t.Run("sent after the configured delay", func(t *testing.T) {
			c.bothWays(t, env("P2PCOMPAT_NAGLE_DELAY=20ms"), nil, func(t *testing.T, s, r *game) {
				connect(t, s, r)
				s.sendText(t, r.id, reliableBuffered, 0, "small")
				recvText(t, r, 0, "small", s, s, r)
			})
		})
	})

	// C14: Ordering: all reliable data to one user is one ordered stream,
	// across channels ("the reliable stream is all ordered"). Unreliable
	// packets carry no ordering promise.
	t.Run("C14_ReliableOrderedAcrossChannels", func(t *testing.T) {
		open(t)
		const ch = 1400
		for _, w := range ways {
			s, r := w.s, w.r
			const n = 200
			size := func(i int) int { return 8 + (i%5)*700 }
			for i := 0; i < n; i++ {
				s.send(t, r.id, reliable, ch+i%4, size(i), i)
			}
			s.sendText(t, r.id, reliable, ch+9, "last")
			// Once the last message (on a channel of its own) is readable,
			// every earlier one, on any channel, must already be readable.
			eventually(t, "the last message", func() bool { _, ok := r.avail(t, ch+9); return ok }, s, r)
			next := []int{0, 1, 2, 3}
			for got := 0; got < n; got++ {
				k := got % 4
				p := r.read(t, ch+k, 4096)
				if !p.ok {
					t.Fatalf("%s: message %d (channel %d) not readable though a later one was", w.name, got, ch+k)
				}
				if p.size != uint32(size(next[k])) || p.hash != fnvOf(pattern(size(next[k]), next[k])) {
					t.Fatalf("%s: channel %d: got %d bytes (hash %x), want message %d", w.name, ch+k, p.size, p.hash, next[k])
				}
				next[k] += 4
			}
			recvText(t, r, ch+9, "last", s)
		}
	})

	// C20: IsP2PPacketAvailable(channel) (size, ok): true if a packet is
	// waiting on that channel; size is the size of the packet that the next
	// ReadP2PPacket on that channel returns. On false, size is 0. Other
	// channels are not examined.
	t.Run("C20_IsP2PPacketAvailableReportsNextSize", func(t *testing.T) {
		open(t)
		const ch = 1500
		for _, w := range ways {
			s, r := w.s, w.r
			if n, ok := r.avail(t, ch+2); ok || n != 0 {
				t.Fatalf("%s: empty channel: %d, %v; want 0, false", w.name, n, ok)
			}
			s.send(t, r.id, reliable, ch+2, 10, 1)
			s.send(t, r.id, reliable, ch+2, 20, 2)
			s.sendText(t, r.id, reliable, ch+4, "end")
			eventually(t, "all three", func() bool { _, ok := r.avail(t, ch+4); return ok }, s, r)
			if n, ok := r.avail(t, ch+2); !ok || n != 10 {
				t.Fatalf("%s: first: %d, %v; want 10, true", w.name, n, ok)
			}
			if n, ok := r.avail(t, ch+3); ok || n != 0 {
				t.Fatalf("%s: channel with nothing sent: %d, %v; want 0, false", w.name, n, ok)
			}
			if p := r.read(t, ch+2, 64); !p.ok || p.size != 10 {
				t.Fatalf("%s: read %+v", w.name, p)
			}
			if n, ok := r.avail(t, ch+2); !ok || n != 20 {
				t.Fatalf("%s: second: %d, %v; want 20, true", w.name, n, ok)
			}
			if n, ok := r.avail(t, -1); ok || n != 0 {
				t.Fatalf("%s: negative channel: %d, %v; want 0, false", w.name, n, ok)
			}
			r.read(t, ch+2, 64)
			r.read(t, ch+4, 64)
		}
	})

	// C22: A destination buffer smaller than the packet truncates: the
	// first len(dest) bytes are copied, the packet is consumed, and size
	// reports the bytes copied (decision, the convention of the open
	// re-implementations that legacy games were tested against; the
	// Go-style Receive returns whole packets).
	t.Run("C22_ReadTruncatesAndConsumes", func(t *testing.T) {
		open(t)
		const ch = 1600
		for _, w := range ways {
			s, r := w.s, w.r
			s.sendText(t, r.id, reliable, ch, "0123456789")
			s.sendText(t, r.id, reliable, ch, "next")
			s.sendText(t, r.id, reliable, ch+1, "whole_packet")
			eventually(t, "the packets", func() bool { _, ok := r.avail(t, ch+1); return ok }, s, r)
			// The game checks that nothing past the 4 bytes was written.
			if p := r.read(t, ch, 4); !p.ok || p.size != 4 || p.text() != "0123" || p.remote != s.id {
				t.Fatalf("%s: truncated read: %+v (%q); want 4 bytes \"0123\" from %d", w.name, p, p.text(), s.id)
			}
			if p := r.read(t, ch, 4); !p.ok || p.text() != "next" {
				t.Fatalf("%s: the truncated packet was not consumed: next read %q", w.name, p.text())
			}
			recvText(t, r, ch+1, "whole_packet", s)
		}
	})

	// From here on every row has games of its own, and rows run in parallel.

	// C01: Session-less: the first send to a user starts a session by
	// itself (lookup, NAT traversal, relay if needed). No connect call
	// exists. The first packet may be delayed while that runs.
	t.Run("C01_FirstSendStartsSession", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			r.do(t, "autoaccept on")
			if _, ok := s.state(t, r.id); ok {
				t.Fatal("a session exists before any send")
			}
			if !s.sendText(t, r.id, reliable, 0, "first") {
				t.Fatal("first send refused")
			}
			if st, ok := s.state(t, r.id); !ok || !(st.connecting || st.active) {
				t.Fatalf("after the first send: state %+v, ok %v; want a session connecting", st, ok)
			}
			recvText(t, r, 0, "first", s, s, r)
		})
	})

	// C02: Returns true when the packet was queued. That does not mean it arrived.
	t.Run("C02_TrueMeansQueuedNotDelivered", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, env("P2PCOMPAT_CONNECT_TIMEOUT=500ms"), nil, func(t *testing.T, s, r *game) {
			// r never accepts: the send is queued (true) and never delivered.
			if !s.sendText(t, r.id, reliable, 0, "lost") {
				t.Fatal("send refused")
			}
			waitEvent(t, s, failEv(r.id, errTimeout), r)
			if _, ok := r.avail(t, 0); ok {
				t.Fatal("a packet to a user who never accepted was delivered")
			}
		})
	})

	// C03: Returns false only when: the SteamID is invalid (0); the packet
	// is too large for its send type; the send type is unknown; the channel
	// is negative; or too many bytes are already queued for that user
	// (backpressure). Each case also has a typed error in the Go-style API
	// (ErrInvalidSteamID, ErrPacketTooLarge, ErrInvalidSendType,
	// ErrInvalidChannel, ErrSendBufferFull).
	t.Run("C03_FalseOnlyForInvalidArguments", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, env("P2PCOMPAT_SEND_BUFFER=4096"), nil, func(t *testing.T, s, r *game) {
			cases := []struct {
				name    string
				remote  uint64
				size    int
				st, chn int
			}{
				{"invalid SteamID", 0, 10, reliable, 0},
				{"unreliable too large", r.id, 1201, unreliable, 0},
				{"no-delay too large", r.id, 1201, unreliableNoDelay, 0},
				{"reliable too large", r.id, 1<<20 + 1, reliable, 0},
				{"unknown send type", r.id, 10, 4, 0},
				{"negative send type", r.id, 10, -1, 0},
				{"negative channel", r.id, 10, reliable, -1},
			}
			for _, k := range cases {
				if s.send(t, k.remote, k.st, k.chn, k.size, 0) {
					t.Errorf("%s: SendP2PPacket = true", k.name)
				}
			}
			// Backpressure: r never accepts, so what we send stays queued.
			if !s.send(t, r.id, reliable, 0, 3000, 0) {
				t.Fatal("first send refused")
			}
			if s.send(t, r.id, reliable, 0, 3000, 1) {
				t.Error("send over the queue cap accepted")
			}
			// Anything else is accepted.
			if !s.send(t, unknownSteamID(), unreliable, 1<<30, 1, 0) {
				t.Error("a valid send to another user, channel 2^30, refused")
			}
		})
	})

	// C04: Size limits: Unreliable and UnreliableNoDelay at most 1200
	// bytes; Reliable and ReliableWithBuffering at most 1,048,576 bytes.
	// Both bounds are inclusive. Zero-length packets are legal and are
	// delivered as zero-length packets.
	t.Run("C04_SizeLimitsInclusiveAndZeroLength", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, env("P2PCOMPAT_NAGLE_DELAY=1ms"), nil, func(t *testing.T, s, r *game) {
			connect(t, s, r)
			for _, st := range []int{unreliable, unreliableNoDelay} {
				if s.send(t, r.id, st, 0, 1201, 0) {
					t.Errorf("type %d: 1201 bytes accepted", st)
				}
			}
			for _, st := range []int{reliable, reliableBuffered} {
				if s.send(t, r.id, st, 0, 1<<20+1, 0) {
					t.Errorf("type %d: 1 MiB + 1 accepted", st)
				}
			}
			sends := []struct{ st, size int }{
				{unreliable, 1200}, {unreliableNoDelay, 1200}, {reliable, 1 << 20}, {reliableBuffered, 1 << 20},
				{unreliable, 0}, {unreliableNoDelay, 0}, {reliable, 0}, {reliableBuffered, 0},
			}
			for i, k := range sends {
				// A maximal message needs an empty queue (C07): let the last one be acked.
				eventually(t, "the send queue drained", func() bool { st, _ := s.state(t, r.id); return st.bytes == 0 }, s, r)
				if !s.send(t, r.id, k.st, 10+i, k.size, i) {
					t.Fatalf("type %d, %d bytes: refused", k.st, k.size)
				}
				p := recv(t, r, 10+i, 1<<20, s, r)
				if p.size != uint32(k.size) || p.hash != fnvOf(pattern(k.size, i)) || p.remote != s.id {
					t.Fatalf("type %d: got %d bytes (hash %x) from %d, want %d intact from %d", k.st, p.size, p.hash, p.remote, k.size, s.id)
				}
			}
			// A zero-length packet reads as size 0, ok true.
			s.send(t, r.id, reliable, 30, 0, 0)
			eventually(t, "the zero-length packet", func() bool { _, ok := r.avail(t, 30); return ok }, s, r)
			if n, ok := r.avail(t, 30); !ok || n != 0 {
				t.Fatalf("IsP2PPacketAvailable = %d, %v; want 0, true", n, ok)
			}
			if p := r.read(t, 30, 8); !p.ok || p.size != 0 || p.remote != s.id {
				t.Fatalf("ReadP2PPacket = %+v; want ok, size 0, from %d", p, s.id)
			}
		})
	})

	// C06: Channels are any non-negative int. Different channels to one
	// user share one session and one underlying path.
	t.Run("C06_ChannelsShareOneSession", func(t *testing.T) {
		t.Parallel()
		c.bothWaysWith(t, func(s, _ *gameSpec) { s.listen = true }, func(t *testing.T, s, r *game) {
			r.do(t, "autoaccept on")
			chans := []int{0, 1, 7, 1000, 1 << 20, 1<<31 - 1}
			for _, ch := range chans {
				if !s.sendText(t, r.id, reliable, ch, fmt.Sprintf("ch%d", ch)) {
					t.Fatalf("channel %d refused", ch)
				}
			}
			for _, ch := range chans {
				recvText(t, r, ch, fmt.Sprintf("ch%d", ch), s, s, r)
			}
			// One session, one path: the state names a single remote address.
			st, ok := r.state(t, s.id)
			if !ok || !st.active || st.ip != loopback || st.port != uint16(s.port) {
				t.Fatalf("state %+v, ok %v; want one active session to 127.0.0.1:%d", st, ok, s.port)
			}
		})
	})

	// C07: Backpressure: a per-user send queue cap (default 1 MiB,
	// configurable). A message always fits into an empty queue, so one
	// maximal reliable message is always accepted.
	t.Run("C07_SendQueueCap", func(t *testing.T) {
		t.Parallel()
		s := c.start(t, "S", vtableClassic)
		r := c.start(t, "R", flatManual) // never accepts: what s sends stays queued
		// Default cap: one maximal message fits the empty queue; then the queue is full.
		if !s.send(t, r.id, reliable, 0, 1<<20, 0) {
			t.Fatal("maximal message into the empty queue refused")
		}
		if s.send(t, r.id, reliable, 0, 100, 0) {
			t.Fatal("send over the default cap accepted")
		}
		// Another user has a queue of its own.
		if !s.send(t, unknownSteamID(), reliable, 0, 100, 0) {
			t.Fatal("send to another user refused")
		}
		// Configurable: 10 KiB.
		s2 := c.start(t, "S2", flatManual, "P2PCOMPAT_SEND_BUFFER=10240")
		for i := 0; i < 10; i++ {
			if !s2.send(t, r.id, reliable, 0, 1000, i) {
				t.Fatalf("send %d under a 10 KiB cap refused", i)
			}
		}
		if s2.send(t, r.id, reliable, 0, 1000, 10) {
			t.Fatal("send over a 10 KiB cap accepted")
		}
		if !s2.send(t, unknownSteamID(), reliable, 0, 1<<20, 0) {
			t.Fatal("maximal message into an empty 10 KiB queue refused")
		}
	})

	// C10: P2PSendUnreliable (0): may be lost or arrive out of order. Sent
	// before the session is established, it is queued and sent once the
	// session opens.
	t.Run("C10_UnreliableQueuedUntilSessionOpens", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			if !s.sendText(t, r.id, unreliable, 0, "early") {
				t.Fatal("send refused")
			}
			// Not accepted yet: it waits on s's side.
			waitEvent(t, r, requestEv(s.id))
			if st, _ := s.state(t, r.id); st.packets != 1 {
				t.Fatalf("queued packets before open = %d, want 1", st.packets)
			}
			r.accept(t, s.id)
			recvText(t, r, 0, "early", s, s, r)
			// After the session is open, unreliable packets go straight out.
			s.sendText(t, r.id, unreliable, 0, "later")
			recvText(t, r, 0, "later", s, s, r)
		})
	})

	// C11: P2PSendUnreliableNoDelay (1): if the session is not established
	// at the moment of the call, the packet is thrown away (the call still
	// returns true). Otherwise like Unreliable.
	t.Run("C11_NoDelayDroppedUnlessEstablished", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			r.do(t, "autoaccept on")
			if !s.sendText(t, r.id, unreliableNoDelay, 0, "dropped") {
				t.Fatal("NoDelay before establishment returned false")
			}
			if st, _ := s.state(t, r.id); st.packets != 0 {
				t.Fatalf("NoDelay packet queued: %+v", st)
			}
			s.sendText(t, r.id, reliable, 0, "marker")
			// The first packet on channel 0 is the marker: the NoDelay one was thrown away.
			recvText(t, r, 0, "marker", s, s, r)
			eventually(t, "established", func() bool { st, _ := s.state(t, r.id); return st.active }, s, r)
			s.sendText(t, r.id, unreliableNoDelay, 0, "now")
			recvText(t, r, 0, "now", s, s, r)
		})
	})

	// C15: decision: packets queued before the session was established are
	// delivered reliably and in send order once it opens, whatever their
	// unreliable type (Valve's successor keeps exactly this for old games:
	// "Old P2P always sent messages that had to be queued reliably").
	t.Run("C15_QueuedBeforeOpenDeliveredReliablyInOrder", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, env("P2PCOMPAT_NAGLE_DELAY=1ms"), nil, func(t *testing.T, s, r *game) {
			types := []int{unreliable, reliable, reliableBuffered}
			const n = 300
			for i := 0; i < n; i++ {
				if !s.sendText(t, r.id, types[i%3], 0, fmt.Sprintf("q%d", i)) {
					t.Fatalf("send %d refused", i)
				}
			}
			waitEvent(t, r, requestEv(s.id))
			r.accept(t, s.id)
			for i := 0; i < n; i++ {
				recvText(t, r, 0, fmt.Sprintf("q%d", i), s, s, r)
			}
		})
	})

	// C21: ReadP2PPacket(dest, channel) (size, remote, ok): non-blocking;
	// false when nothing waits (size 0, remote 0). Packets on one channel
	// come out in arrival order across all accepted users.
	t.Run("C21_ReadNonBlockingArrivalOrderAcrossUsers", func(t *testing.T) {
		t.Parallel()
		r := c.start(t, "R", flatManual)
		s1 := c.start(t, "S1", vtableClassic)
		s2 := c.start(t, "S2", gameSpec{api: "client", dispatch: "classic"})
		// The game fills size and remote with junk first: the library writes both.
		if p := r.read(t, 0, 8); p.ok || p.size != 0 || p.remote != 0 {
			t.Fatalf("empty read: %+v; want false, size 0, remote 0", p)
		}
		connect(t, s1, r)
		connect(t, s2, r)
		// Alternate senders, waiting for each arrival, so the arrival order
		// is known: each data packet is followed by a marker on a channel of
		// its own, and one user's reliable data is one ordered stream (C14).
		var order []*game
		for i := 0; i < 6; i++ {
			s := []*game{s1, s2}[i%2]
			s.sendText(t, r.id, reliable, 0, fmt.Sprintf("d%d", i))
			s.send(t, r.id, reliable, 100+i, 0, 0)
			order = append(order, s)
			eventually(t, "the arrival", func() bool { _, ok := r.avail(t, 100+i); return ok }, s, r)
		}
		for i, s := range order {
			if p := r.read(t, 0, 16); !p.ok || p.text() != fmt.Sprintf("d%d", i) || p.remote != s.id {
				t.Fatalf("read %d: %+v (%q); want \"d%d\" from %d", i, p, p.text(), i, s.id)
			}
		}
	})

	// C23: Only packets from accepted sessions are ever visible to reads.
	t.Run("C23_OnlyAcceptedSessionsAreVisible", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			for _, st := range []int{unreliable, reliable, reliableBuffered} {
				s.sendText(t, r.id, st, 0, fmt.Sprintf("u%d", st))
			}
			waitEvent(t, r, requestEv(s.id))
			// Keep s trying for a while: the hellos flow, the data must not.
			eventually(t, "hellos exchanged", func() bool { st, _ := r.state(t, s.id); return st.connecting }, s, r)
			if _, ok := r.avail(t, 0); ok {
				t.Fatal("a packet from an unaccepted user is visible")
			}
			if p := r.read(t, 0, 8); p.ok {
				t.Fatal("a packet from an unaccepted user was read")
			}
			r.accept(t, s.id)
			for _, st := range []int{unreliable, reliable, reliableBuffered} {
				recvText(t, r, 0, fmt.Sprintf("u%d", st), s, s, r)
			}
		})
	})

	// C30: When a user we have no session with (or have not talked to
	// recently) sends to us, a P2PSessionRequest callback is posted with
	// their SteamID.
	t.Run("C30_RequestPostedForNewUser", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			if r.spec.dispatch == "classic" {
				// The handler calls SteamAPI_RunCallbacks: it must return at once.
				r.do(t, "reenter on")
			}
			s.sendText(t, r.id, reliable, 0, "hi")
			waitEvent(t, r, requestEv(s.id))
			for _, e := range r.events {
				if strings.HasPrefix(e, "1202:") && e != requestEv(s.id) {
					t.Fatalf("request %s; want only requests from %d", e, s.id)
				}
			}
		})
	})

	// C31: While that user keeps trying and we have not accepted, the
	// request is posted again periodically (default every 10 s, decision,
	// after the successor's initial timeout).
	t.Run("C31_RequestRepeatedWhileUnaccepted", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, env("P2PCOMPAT_REQUEST_REPEAT=100ms"), func(t *testing.T, s, r *game) {
			s.sendText(t, r.id, reliable, 0, "hi")
			eventually(t, "three requests", func() bool { return r.seen(requestEv(s.id)) >= 3 }, r)
			// Once accepted, no more requests.
			r.accept(t, s.id)
			recvText(t, r, 0, "hi", s, s, r)
			n := r.seen(requestEv(s.id))
			eventually(t, "established", func() bool { st, _ := s.state(t, r.id); return st.active }, s, r)
			s.sendText(t, r.id, reliable, 0, "more")
			recvText(t, r, 0, "more", s, s, r)
			if r.seen(requestEv(s.id)) != n {
				t.Fatalf("request posted after accept: %d, then %d", n, r.seen(requestEv(s.id)))
			}
		})
	})

	// C32: AcceptP2PSessionWithUser(remote): accepts; idempotent; returns
	// false only for an invalid SteamID; also valid before any request
	// (pre-accepts that user).
	t.Run("C32_AcceptIdempotentAndPreAccepts", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			if r.accept(t, 0) {
				t.Fatal("accept of SteamID 0 returned true")
			}
			for i := 0; i < 3; i++ {
				if !r.accept(t, s.id) {
					t.Fatal("pre-accept returned false")
				}
			}
			if !r.accept(t, unknownSteamID()) {
				t.Fatal("accept of a user never seen returned false")
			}
			s.sendText(t, r.id, reliable, 0, "pre")
			recvText(t, r, 0, "pre", s, s, r)
			r.pump(t)
			if n := r.seen(requestEv(s.id)); n != 0 {
				t.Fatalf("a pre-accepted user posted %d requests", n)
			}
			if !r.accept(t, s.id) {
				t.Fatal("accept of an established session returned false")
			}
		})
	})

	// C33: Sending to a user implicitly accepts their session. If the
	// request callback is still undispatched when the local app sends to
	// that user, it is dropped (games exist that break on a request for a
	// peer they already talk to).
	t.Run("C33_SendingAcceptsAndDropsPendingRequest", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			s.sendText(t, r.id, reliable, 0, "from_s")
			// r's session for s exists once the request is posted; r runs no callbacks.
			eventually(t, "r sees s", func() bool { _, ok := r.state(t, s.id); return ok })
			r.sendText(t, s.id, reliable, 0, "from_r")
			recvText(t, r, 0, "from_s", s, s)
			recvText(t, s, 0, "from_r", r, s)
			r.pump(t)
			if n := r.seen(requestEv(s.id)); n != 0 {
				t.Fatalf("%d requests dispatched for a user r already talks to", n)
			}
		})
	})

	// C34: Ignoring the request is how a game refuses. Data from an
	// unaccepted user stays on the sender's side (bounded by the sender's
	// send queue), so a refusing receiver holds no memory for it.
	t.Run("C34_UnacceptedDataStaysWithSender", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			const total = 20 * 1000
			for i := 0; i < 20; i++ {
				if !s.send(t, r.id, reliable, 0, 1000, i) {
					t.Fatal("send refused")
				}
			}
			waitEvent(t, r, requestEv(s.id))
			eventually(t, "hellos exchanged", func() bool { st, _ := r.state(t, s.id); return st.connecting }, r)
			st, _ := s.state(t, r.id)
			if st.bytes < total || st.packets != 20 {
				t.Fatalf("sender's queue = %d bytes, %d packets; want all %d bytes waiting", st.bytes, st.packets, total)
			}
			if rs, _ := r.state(t, s.id); rs.active || rs.bytes != 0 {
				t.Fatalf("refusing receiver's session: %+v", rs)
			}
			if _, ok := r.avail(t, 0); ok {
				t.Fatal("refusing receiver holds a packet")
			}
		})
	})

	// C35: The sender's session is Connecting until the receiver accepts.
	// If it is not accepted and established within the connect timeout
	// (default 20 s, configurable), the sender gets
	// P2PSessionConnectFail{remote, Timeout} and every packet still queued
	// for that user is dropped. A later send retries from scratch.
	t.Run("C35_ConnectTimeoutFailsAndDropsQueue", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, env("P2PCOMPAT_CONNECT_TIMEOUT=800ms"), nil, func(t *testing.T, s, r *game) {
			for i := 0; i < 3; i++ {
				s.sendText(t, r.id, reliable, 0, "waiting")
			}
			if st, _ := s.state(t, r.id); !st.connecting || st.packets != 3 {
				t.Fatalf("before the timeout: %+v", st)
			}
			waitEvent(t, s, failEv(r.id, errTimeout), r)
			if n := s.seen(failEv(r.id, errTimeout)); n != 1 {
				t.Fatalf("%d failures posted, want 1", n)
			}
			st, _ := s.state(t, r.id)
			if st.connecting || st.active || st.packets != 0 || st.bytes != 0 {
				t.Fatalf("after the timeout: %+v; want the queue dropped", st)
			}
			// A later send starts over; this time r accepts.
			r.do(t, "autoaccept on")
			s.sendText(t, r.id, reliable, 0, "retry")
			if st, _ := s.state(t, r.id); !st.connecting && !st.active {
				t.Fatalf("retry is not connecting: %+v", st)
			}
			// The dropped packets must not arrive.
			recvText(t, r, 0, "retry", s, s, r)
		})
	})

	// C36: P2PSessionConnectFail is posted once per failed session: after a
	// failure, a retry that fails again posts nothing until the game calls
	// CloseP2PSessionWithUser (observed Steam behaviour that wrappers rely
	// on).
	t.Run("C36_ConnectFailPostedOnceUntilClose", func(t *testing.T) {
		t.Parallel()
		c.both(t, nil, func(t *testing.T, g *game) {
			u := unknownSteamID()
			fail := failEv(u, errDestinationNotLoggedOn)
			g.send(t, u, reliable, 0, 1, 0)
			waitEvent(t, g, fail)
			g.send(t, u, reliable, 0, 1, 0)
			// A failure for another user, looked up after the retry, is
			// delivered: the retry has been answered by then.
			u2 := unknownSteamID()
			g.send(t, u2, reliable, 0, 1, 0)
			waitEvent(t, g, failEv(u2, errDestinationNotLoggedOn))
			eventually(t, "the retry failed", func() bool {
				st, ok := g.state(t, u)
				return ok && !st.connecting && st.err == errDestinationNotLoggedOn
			}, g)
			if n := g.seen(fail); n != 1 {
				t.Fatalf("a retry that failed again posted: %d callbacks", n)
			}
			if !g.close(t, u) {
				t.Fatal("close of the failed session returned false")
			}
			g.send(t, u, reliable, 0, 1, 0)
			eventually(t, "a failure after close", func() bool { return g.seen(fail) == 2 }, g)
		})
	})

	// C37: Error codes: Timeout (4) when the user cannot be reached or does
	// not accept; DestinationNotLoggedOn (3) at once when the rendezvous
	// knows no such user, and NotRunningApp (1) when the user is online
	// under another AppID (decision: the old SDK's codes, which give fast,
	// precise feedback; a server in privacy mode answers neither, and the
	// sender then sees Timeout); NoRightsToApp (2) when the rendezvous
	// refuses our own registration for that AppID.
	t.Run("C37_ErrorCodes", func(t *testing.T) {
		t.Parallel()
		const timeout = 1500 * time.Millisecond
		for _, spec := range []gameSpec{vtableClassic, flatManual} {
			t.Run(spec.api+"-"+spec.dispatch, func(t *testing.T) {
				t.Parallel()
				s := c.start(t, "S", spec, "P2PCOMPAT_CONNECT_TIMEOUT="+timeout.String())
				same := c.start(t, "Same", vtableClassic) // same app, never accepts
				other := c.start(t, "Other", gameSpec{api: "flat", dispatch: "manual", appID: otherApp})
				unknown := unknownSteamID()
				start := time.Now()
				s.send(t, unknown, reliable, 0, 1, 0)
				s.send(t, other.id, reliable, 0, 1, 0)
				eventually(t, "two fast failures", func() bool {
					return s.seen(failEv(unknown, errDestinationNotLoggedOn))+s.seen(failEv(other.id, errNotRunningApp)) == 2
				}, s)
				if took := time.Since(start); took >= timeout {
					t.Fatalf("the rendezvous' answers took %v: not 'at once' (before the %v timeout)", took, timeout)
				}
				s.send(t, same.id, reliable, 0, 1, 0)
				waitEvent(t, s, failEv(same.id, errTimeout))
				for _, e := range s.events {
					if strings.HasPrefix(e, "1203:") && e != failEv(unknown, errDestinationNotLoggedOn) &&
						e != failEv(other.id, errNotRunningApp) && e != failEv(same.id, errTimeout) {
						t.Errorf("unexpected failure %s", e)
					}
				}
			})
		}
		t.Run("NoRightsToApp", func(t *testing.T) {
			t.Parallel()
			testNoRightsToApp(t, c)
		})
	})

	// C38: CloseP2PSessionWithUser(remote): returns false if there was no
	// session; otherwise drops unsent outgoing and unread incoming data for
	// that user, tells the remote side (best effort), and frees the
	// session. Later traffic from that user posts a new request.
	t.Run("C38_CloseDropsDataTellsPeerAndFrees", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			if s.close(t, r.id) {
				t.Fatal("close without a session returned true")
			}
			connect(t, s, r)
			s.sendText(t, r.id, reliable, 0, "unread")
			eventually(t, "the unread packet", func() bool { _, ok := r.avail(t, 0); return ok }, s, r)
			if !r.close(t, s.id) {
				t.Fatal("close returned false")
			}
			if _, ok := r.avail(t, 0); ok {
				t.Fatal("unread incoming data survived the close")
			}
			if _, ok := r.state(t, s.id); ok {
				t.Fatal("session not freed")
			}
			eventually(t, "the remote side told", func() bool { _, ok := s.state(t, r.id); return !ok }, s, r)
			// Later traffic from that user posts a new request.
			s.sendText(t, r.id, reliable, 0, "again")
			waitEvent(t, r, requestEv(s.id), s)

			// Unsent outgoing data is dropped: q never accepts, s closes.
			q := c.start(t, "Q", flatManual)
			s.send(t, q.id, reliable, 0, 5000, 0)
			if st, _ := s.state(t, q.id); st.bytes < 5000 {
				t.Fatalf("queued %d bytes, want at least 5000", st.bytes)
			}
			if !s.close(t, q.id) {
				t.Fatal("close returned false")
			}
			if _, ok := s.state(t, q.id); ok {
				t.Fatal("session with queued data not freed")
			}
		})
	})

	// C39: CloseP2PChannelWithUser(remote, channel): false if there is no
	// session or that channel is not open; drops unread packets on that
	// channel from that user; a channel is open once something was sent or
	// received on it; closing the last open channel closes the session as
	// C38.
	t.Run("C39_CloseChannel", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, nil, nil, func(t *testing.T, s, r *game) {
			if r.closeChannel(t, s.id, 0) {
				t.Fatal("close channel without a session returned true")
			}
			connect(t, s, r) // opens channel 99 on both sides
			s.sendText(t, r.id, reliable, 0, "zero")
			s.sendText(t, r.id, reliable, 1, "one")
			eventually(t, "both packets", func() bool {
				_, ok0 := r.avail(t, 0)
				_, ok1 := r.avail(t, 1)
				return ok0 && ok1
			}, s, r)
			if r.closeChannel(t, s.id, 5) {
				t.Fatal("closing a channel never used returned true")
			}
			if !r.closeChannel(t, s.id, 0) {
				t.Fatal("closing an open channel returned false")
			}
			if _, ok := r.avail(t, 0); ok {
				t.Fatal("unread packet on the closed channel survived")
			}
			if _, ok := r.avail(t, 1); !ok {
				t.Fatal("a packet on another channel was dropped")
			}
			if !r.closeChannel(t, s.id, 99) {
				t.Fatal("closing channel 99 returned false")
			}
			if _, ok := r.state(t, s.id); !ok {
				t.Fatal("session closed while channel 1 is still open")
			}
			if !r.closeChannel(t, s.id, 1) {
				t.Fatal("closing the last channel returned false")
			}
			if _, ok := r.state(t, s.id); ok {
				t.Fatal("closing the last open channel did not close the session")
			}
			if _, ok := r.avail(t, 1); ok {
				t.Fatal("unread data survived the session close")
			}
			eventually(t, "the remote side told", func() bool { _, ok := s.state(t, r.id); return !ok }, s, r)
		})
	})

	// C40: An established session with no traffic either way for the idle
	// timeout (default 3 min, decision, the successor's value) is closed
	// silently. Keepalives run on the library's own goroutines, so a game
	// loop that stalls (loading a map, a debugger) does not cause a false
	// timeout.
	t.Run("C40_IdleClosedSilentlyAndStallIsNotTimeout", func(t *testing.T) {
		t.Parallel()
		t.Run("idle", func(t *testing.T) {
			t.Parallel()
			idle := "P2PCOMPAT_IDLE_TIMEOUT=300ms"
			s, r := c.start(t, "S", vtableClassic, idle), c.start(t, "R", flatManual, idle)
			connect(t, s, r)
			eventually(t, "the idle close", func() bool {
				_, okS := s.state(t, r.id)
				_, okR := r.state(t, s.id)
				return !okS && !okR
			})
			s.pump(t)
			r.pump(t)
			for _, g := range []*game{s, r} {
				for _, e := range g.events {
					if strings.HasPrefix(e, "1203:") {
						t.Fatalf("%s: the idle close posted a connect failure: %s", g.spec.name, e)
					}
				}
			}
		})
		t.Run("stalled game loop", func(t *testing.T) {
			t.Parallel()
			const timeout = 400 * time.Millisecond
			ct := "P2PCOMPAT_CONNECT_TIMEOUT=" + timeout.String()
			s, r := c.start(t, "S", vtableClassic, ct), c.start(t, "R", flatManual, ct)
			connect(t, s, r)
			// Both games stall: no calls at all for five connect timeouts. The
			// stall is the behaviour under test, so it is a real wait.
			stall := (5 * timeout).Milliseconds()
			s.start(t, "sleep %d", stall)
			r.start(t, "sleep %d", stall)
			s.check(t, "sleep", s.reply(t))
			r.check(t, "sleep", r.reply(t))
			s.pump(t)
			r.pump(t)
			for _, w := range []struct{ g, peer *game }{{s, r}, {r, s}} {
				if st, _ := w.g.state(t, w.peer.id); !st.active {
					t.Fatalf("%s: a stalled game loop broke the session: %+v", w.g.spec.name, st)
				}
				if n := w.g.seen(failEv(w.peer.id, errTimeout)); n != 0 {
					t.Fatalf("%s: a stalled game loop posted %d connect failures", w.g.spec.name, n)
				}
			}
		})
	})

	// C41: An established session whose peer stops answering for the
	// connect timeout fails like C35.
	t.Run("C41_DeadPeerFailsLikeTimeout", func(t *testing.T) {
		t.Parallel()
		c.bothWays(t, env("P2PCOMPAT_CONNECT_TIMEOUT=500ms"), nil, func(t *testing.T, s, r *game) {
			connect(t, s, r)
			r.kill(t) // r vanishes without a goodbye
			s.sendText(t, r.id, reliable, 0, "into_the_void")
			waitEvent(t, s, failEv(r.id, errTimeout))
			if st, _ := s.state(t, r.id); st.active || st.bytes != 0 {
				t.Fatalf("after the failure: %+v", st)
			}
		})
	})

	// C42: The session table is an LRU of bounded size (default 4096,
	// configurable). When it is full, the least recently used session is
	// closed as C38 to make room.
	t.Run("C42_LRUEvictsLeastRecentlyUsed", func(t *testing.T) {
		t.Parallel()
		s := c.start(t, "S", vtableClassic, "P2PCOMPAT_MAX_SESSIONS=2")
		p1, p2, p3 := c.start(t, "P1", flatManual), c.start(t, "P2", flatManual), c.start(t, "P3", vtableClassic)
		connect(t, s, p1)
		connect(t, s, p2)
		s.sendText(t, p1.id, reliable, 0, "touch") // p1 is now the most recent
		connect(t, s, p3)
		if _, ok := s.state(t, p2.id); ok {
			t.Fatal("the least recently used session (P2) was not evicted")
		}
		for _, p := range []*game{p1, p3} {
			if _, ok := s.state(t, p.id); !ok {
				t.Fatalf("session with %s evicted", p.spec.name)
			}
		}
		// Closed as C38: the evicted peer is told.
		eventually(t, "the evicted peer told", func() bool { _, ok := p2.state(t, s.id); return !ok }, p2)
	})

	// C50: GetP2PSessionState(remote) (state, ok): false if no session
	// exists. Connecting while looking up, traversing or waiting for
	// accept; ConnectionActive once established and accepted; SessionError
	// the last error; UsingRelay when traffic goes through a TURN relay;
	// BytesQueuedForSend / PacketsQueuedForSend what waits in our send
	// queue for that user; RemoteIP (IPv4, host byte order) and RemotePort:
	// the peer's address, or the relay's when relayed.
	t.Run("C50_SessionState", func(t *testing.T) {
		t.Parallel()
		c.bothWaysWith(t, func(s, r *gameSpec) { s.listen, r.listen = true, true }, func(t *testing.T, s, r *game) {
			if _, ok := s.state(t, r.id); ok {
				t.Fatal("a session before any send")
			}
			s.send(t, r.id, reliable, 0, 700, 0)
			s.send(t, r.id, unreliable, 1, 300, 1)
			waitEvent(t, r, requestEv(s.id))
			st, ok := s.state(t, r.id)
			if !ok || !st.connecting || st.active || st.relay || st.err != errNone {
				t.Fatalf("waiting for accept: %+v, %v", st, ok)
			}
			if st.packets != 2 || st.bytes < 1000 {
				t.Fatalf("queued while waiting: %d packets, %d bytes; want 2 and at least 1000", st.packets, st.bytes)
			}
			r.accept(t, s.id)
			recv(t, r, 0, 1024, s, r)
			recv(t, r, 1, 1024, s, r)
			eventually(t, "active, queue drained", func() bool {
				st, _ := s.state(t, r.id)
				return st.active && st.bytes == 0 && st.packets == 0
			}, s, r)
			for _, w := range []struct{ g, peer *game }{{s, r}, {r, s}} {
				st, _ := w.g.state(t, w.peer.id)
				if !st.active || st.connecting || st.relay || st.ip != loopback || st.port != uint16(w.peer.port) {
					t.Fatalf("%s: established state toward %s: %+v; want active, direct, 127.0.0.1:%d", w.g.spec.name, w.peer.spec.name, st, w.peer.port)
				}
			}
			// A failed session reports its error.
			u := unknownSteamID()
			s.send(t, u, reliable, 0, 0, 0)
			eventually(t, "the failure", func() bool {
				st, ok := s.state(t, u)
				return ok && !st.connecting && st.err == errDestinationNotLoggedOn
			}, s)
		})
	})

	// C60: Callbacks are queued and run only inside RunCallbacks(), on the
	// goroutine that called it, in the order they were posted. No library
	// goroutine ever calls game code.
	t.Run("C60_CallbacksOnlyInsideRunCallbacksInOrder", func(t *testing.T) {
		t.Parallel()
		c.both(t, nil, func(t *testing.T, g *game) {
			// Three failures, posted in a known order; nobody pumps yet. The
			// game's handlers report any call outside a pump or on a thread
			// other than the pumping one.
			ids := []uint64{unknownSteamID(), unknownSteamID(), unknownSteamID()}
			for _, id := range ids {
				g.send(t, id, reliable, 0, 0, 0)
				eventually(t, "the failure", func() bool {
					st, ok := g.state(t, id)
					return ok && st.err != errNone
				})
			}
			if len(g.events) != 0 {
				t.Fatalf("events delivered before any pump: %v", g.events)
			}
			var fails []string
			for _, e := range g.pump(t) {
				if strings.HasPrefix(e, "1203:") {
					fails = append(fails, e)
				}
			}
			want := []string{failEv(ids[0], errDestinationNotLoggedOn), failEv(ids[1], errDestinationNotLoggedOn), failEv(ids[2], errDestinationNotLoggedOn)}
			if strings.Join(fails, " ") != strings.Join(want, " ") {
				t.Fatalf("dispatch order %v, want %v", fails, want)
			}
			// On the calling thread: pumped from a new thread, the handler
			// runs on that thread.
			id := unknownSteamID()
			g.send(t, id, reliable, 0, 0, 0)
			deadline := time.Now().Add(waitLimit)
			for g.seen(failEv(id, errDestinationNotLoggedOn)) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no failure delivered by a pump on another thread: %v", g.events)
				}
				ev := g.do(t, "pumpthread")
				g.events = append(g.events, ev...)
				time.Sleep(2 * time.Millisecond)
			}
			if v := g.do(t, "violations"); v[0] != "0" {
				t.Fatalf("game code called outside the pump or off its thread: %v", v)
			}
		})
	})

	// C61: Any number of handlers can be registered per callback type; each
	// runs once per event, in registration order.
	t.Run("C61_HandlersRunOnceInRegistrationOrder", func(t *testing.T) {
		t.Parallel()
		r := c.start(t, "R", vtableClassic) // classic dispatch: the library calls the handlers
		s1, s2 := c.start(t, "S1", flatManual), c.start(t, "S2", flatManual)
		// Handler 1 was registered before init; add 2 and 3.
		for _, want := range []string{"2", "3"} {
			if f := r.do(t, "handler add"); f[0] != want {
				t.Fatalf("handler add: %v", f)
			}
		}
		// requestsIn keeps the request events of one pump.
		requestsIn := func(ev []string) []string {
			var r []string
			for _, e := range ev {
				if strings.Contains(e, "1202:") {
					r = append(r, e)
				}
			}
			return r
		}
		pumpUntil := func(s *game) []string {
			t.Helper()
			var got []string
			eventually(t, "the request", func() bool {
				got = requestsIn(r.pump(t))
				return len(got) > 0
			}, s)
			return got
		}
		s1.sendText(t, r.id, reliable, 0, "hi")
		got := pumpUntil(s1)
		want := []string{requestEv(s1.id), handlerEv(2, s1.id), handlerEv(3, s1.id)}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("handler calls %v, want %v", got, want)
		}
		if again := requestsIn(r.pump(t)); len(again) != 0 {
			t.Fatalf("handlers ran again without a new event: %v", again)
		}
		// Unregistered, handler 2 runs no more (and its registered bit is clear).
		if f := r.do(t, "handler remove 2"); num(t, f[0])&1 != 0 {
			t.Fatalf("flags after SteamAPI_UnregisterCallback = %v; want bit 0 clear", f)
		}
		s2.sendText(t, r.id, reliable, 0, "hi")
		got = pumpUntil(s2)
		want = []string{requestEv(s2.id), handlerEv(3, s2.id)}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("handler calls %v, want %v", got, want)
		}
	})

	// The SDK <= 1.36 exported accessors (SteamNetworking() is
	// SteamNetworking005, SteamUser(), SteamUtils()), and ISteamClient's
	// GetISteamNetworking (slot 16), which SDK 1.37-1.46 games use: the
	// same networking through other doors.
	t.Run("SDK136_Accessors", func(t *testing.T) {
		t.Parallel()
		for _, api := range []string{"accessors", "client"} {
			t.Run(api, func(t *testing.T) {
				t.Parallel()
				x := c.start(t, "X", gameSpec{api: api, dispatch: "classic"})
				y := c.start(t, "Y", flatManual)
				checkReady(t, x)
				y.do(t, "autoaccept on")
				x.do(t, "autoaccept on")
				if !x.sendText(t, y.id, reliable, 3, "old_sdk") {
					t.Fatal("send refused")
				}
				recvText(t, y, 3, "old_sdk", x, x, y)
				y.send(t, x.id, reliable, 4, 3000, 7)
				if p := recv(t, x, 4, 4096, x, y); p.size != 3000 || p.hash != fnvOf(pattern(3000, 7)) || p.remote != y.id {
					t.Fatalf("read through %s: %+v", api, p)
				}
				if st, ok := x.state(t, y.id); !ok || !st.active || st.ip != loopback {
					t.Fatalf("state through %s: %+v, %v", api, st, ok)
				}
				// The deprecated socket calls fail cleanly.
				if f := x.do(t, "deprecated"); strings.Join(f, " ") != "0 0 0" {
					t.Fatalf("CreateListenSocket, CreateP2PConnectionSocket, GetMaxPacketSize = %v; want 0 0 0", f)
				}
				for _, allow := range []string{"0", "1"} {
					if f := x.do(t, "relay %s", allow); f[0] != "1" {
						t.Fatalf("AllowP2PPacketRelay(%s) = %s; want true", allow, f[0])
					}
				}
				if !x.close(t, y.id) {
					t.Fatal("close returned false")
				}
				if _, ok := x.state(t, y.id); ok {
					t.Fatal("session survived the close")
				}
			})
		}
	})
}

// checkReady checks what a game reported at start: no user, pipe or
// interface before init, a non-zero user and pipe after, and ISteamUser /
// ISteamUtils naming the player and the AppID.
func checkReady(t *testing.T, g *game) {
	t.Helper()
	r := g.ready
	if r["user0"] != "0" || r["pipe0"] != "0" {
		t.Errorf("%s: before init GetHSteamUser/GetHSteamPipe = %s/%s; want 0/0", g, r["user0"], r["pipe0"])
	}
	if r["iface0"] != "0" {
		t.Errorf("%s: SteamInternal_FindOrCreateUserInterface answered before init", g)
	}
	if r["user"] == "0" || r["pipe"] == "0" || r["user"] == "" || r["pipe"] == "" {
		t.Errorf("%s: after init user/pipe = %s/%s; want non-zero", g, r["user"], r["pipe"])
	}
	if want := fmt.Sprintf("ok,%d,1,%d", g.id, g.spec.appID); r["who"] != want {
		t.Errorf("%s: GetSteamID, BLoggedOn, GetAppID = %s; want %s", g, r["who"], want)
	}
}

// testNoRightsToApp: NoRightsToApp (2) when the rendezvous refuses our own
// registration for that AppID. Through the C ABI that refusal is the
// game's init failing: SteamAPI_Init returns false, and
// SteamInternal_SteamAPI_Init returns FailedGeneric (1) with a message in
// the error buffer, as p2p.New returns ErrNoRightsToApp.
func testNoRightsToApp(t *testing.T, c *cabi) {
	const refusedApp = 999 // the rendezvous admits only app and otherApp
	for _, k := range []struct {
		spec gameSpec
		want string
	}{
		{vtableClassic, "fail SteamAPI_Init=false"},
		{flatManual, "fail SteamInternal_SteamAPI_Init=1 err="},
	} {
		spec := k.spec
		spec.name, spec.appID = "Refused", refusedApp
		g, first := launchGame(t, c.prog, c.server, spec)
		g.gone = true
		if !strings.HasPrefix(first, k.want) {
			t.Errorf("%s: init under a refused AppID: %q; want %q...", g, first, k.want)
		} else if k.spec.dispatch == "manual" && strings.TrimPrefix(first, k.want) == "" {
			t.Errorf("%s: init failed with an empty error message", g)
		}
		select {
		case <-g.exited:
		case <-time.After(waitLimit):
			t.Fatalf("%s: still running after its init failed", g)
		}
	}
}

package main

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The driver of testdata/legacygame.cpp: a legacy game process that the
// tests command line by line, one reply a command (see the program's head
// comment for the commands and their replies).

// waitLimit bounds every wait of these tests: a reply, an event, a
// condition. Conditions are polled; a wait that runs out fails the test.
const waitLimit = 10 * time.Second

// steamIDBase is SteamID 76561197960265728: account type individual,
// universe public, instance 1. Every SteamID of these tests is base+N.
const steamIDBase uint64 = individualBase

var (
	nextAccount atomic.Uint64 // users that exist: game processes
	nextUnknown atomic.Uint64 // users nobody plays
)

// newSteamID is the valid individual SteamID of a new player.
func newSteamID() uint64 { return steamIDBase + 1000 + nextAccount.Add(1) }

// unknownSteamID is a valid individual SteamID that no process plays.
func unknownSteamID() uint64 { return steamIDBase + 50_000_000 + nextUnknown.Add(1) }

// legacyGame is testdata/legacygame.cpp, compiled once per test binary.
func legacyGame(t *testing.T) string {
	t.Helper()
	needTool(t, "g++")
	return program(t, "legacygame", "testdata/legacygame.cpp")
}

// gameSpec says how a game process binds and whom it plays.
type gameSpec struct {
	name     string // for messages: "A", "B", ...
	api      string // vtable, client, flat, accessors
	dispatch string // classic, manual
	id       uint64 // 0: a new SteamID
	appID    uint32 // 0: app
	env      []string
	listen   bool // bind a known loopback port (game.port)
}

// game is one running legacy game process.
type game struct {
	spec   gameSpec
	id     uint64
	port   int // the UDP port it listens on, when spec.listen
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	exited chan struct{}
	stderr *lockedBuffer
	ready  map[string]string // the fields of its "ready" line
	events []string          // every event token its pumps delivered
	gone   bool              // killed, or expected to exit by itself
}

const app = 480

// startGame starts a game process, waits for its ready line and stops it
// at the test's end.
func startGame(t *testing.T, prog, server string, spec gameSpec) *game {
	t.Helper()
	g, first := launchGame(t, prog, server, spec)
	if !strings.HasPrefix(first, "ready ") {
		t.Fatalf("%s: the game did not start: %q\nstderr:\n%s", g, first, g.stderr)
	}
	g.ready = map[string]string{}
	for _, f := range strings.Fields(first)[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			g.ready[k] = v
		}
	}
	return g
}

// launchGame starts a game process and returns it with its first line.
func launchGame(t *testing.T, prog, server string, spec gameSpec) (*game, string) {
	t.Helper()
	if spec.id == 0 {
		spec.id = newSteamID()
	}
	if spec.appID == 0 {
		spec.appID = app
	}
	g := &game{spec: spec, id: spec.id, lines: make(chan string, 256), exited: make(chan struct{}), stderr: &lockedBuffer{}}
	env := spec.env
	if spec.listen {
		g.port = freeUDPPort(t)
		env = append(env[:len(env):len(env)], "P2PCOMPAT_LISTEN=127.0.0.1:"+strconv.Itoa(g.port))
	}
	g.cmd = exec.Command(prog, "--api", spec.api, "--dispatch", spec.dispatch)
	g.cmd.Env = gameEnv(t, server, spec.id, spec.appID, env...)
	g.cmd.Stderr = g.stderr
	var err error
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r := bufio.NewReaderSize(stdout, 1<<16)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				g.lines <- strings.TrimRight(line, "\r\n")
			}
			if err != nil {
				close(g.lines)
				return
			}
		}
	}()
	go func() {
		g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() { g.stop(t) })
	return g, g.reply(t)
}

// freeUDPPort picks a loopback UDP port nobody uses right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func (g *game) String() string {
	return fmt.Sprintf("game %s (%s/%s, %d)", g.spec.name, g.spec.api, g.spec.dispatch, g.id)
}

// stop asks the game to shut down (SteamAPI_Shutdown, exit 0), after
// checking that it saw no contract violation, and kills it if it does not
// exit in time.
func (g *game) stop(t *testing.T) {
	defer func() {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Kill()
			<-g.exited
		}
	}()
	if g.gone {
		return
	}
	select {
	case <-g.exited:
		t.Errorf("%s exited on its own: %v\nstderr:\n%s", g, g.cmd.ProcessState, g.stderr)
		return
	default:
	}
	if !t.Failed() {
		// No library thread ever called game code, over the whole run (C60).
		if v := g.try(t, "violations"); v != "ok 0" {
			t.Errorf("%s: contract violations: %s", g, v)
		}
	}
	fmt.Fprintln(g.stdin, "quit")
	select {
	case <-g.exited:
		if !g.cmd.ProcessState.Success() {
			t.Errorf("%s: after quit (SteamAPI_Shutdown): %v\nstderr:\n%s", g, g.cmd.ProcessState, g.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s did not exit within 5s of quit (SteamAPI_Shutdown hangs?)\nstderr:\n%s", g, g.stderr)
	}
}

// kill ends the process at once, without a goodbye (C41).
func (g *game) kill(t *testing.T) {
	t.Helper()
	g.gone = true
	g.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-g.exited:
	case <-time.After(waitLimit):
		t.Fatalf("%s: not dead after SIGKILL", g)
	}
}

// reply waits for the game's next line.
func (g *game) reply(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-g.lines:
		if !ok {
			<-g.exited
			t.Fatalf("%s died: %v\nstderr:\n%s", g, g.cmd.ProcessState, g.tail())
		}
		return l
	case <-time.After(waitLimit):
		t.Fatalf("%s: no reply within %v\nstderr:\n%s", g, waitLimit, g.tail())
	}
	return ""
}

func (g *game) tail() string {
	s := g.stderr.String()
	if len(s) > 8000 {
		s = "...\n" + s[len(s)-8000:]
	}
	return s
}

// start sends a command without waiting for its reply (see reply).
func (g *game) start(t *testing.T, format string, args ...any) {
	t.Helper()
	if _, err := fmt.Fprintf(g.stdin, format+"\n", args...); err != nil {
		t.Fatalf("%s: writing a command: %v\nstderr:\n%s", g, err, g.tail())
	}
}

// try runs a command and returns its raw reply.
func (g *game) try(t *testing.T, format string, args ...any) string {
	t.Helper()
	g.start(t, format, args...)
	return g.reply(t)
}

// do runs a command and returns the fields of its "ok" reply; an "err"
// reply, or a violation of the contract the game detected, fails the test.
func (g *game) do(t *testing.T, format string, args ...any) []string {
	t.Helper()
	cmd := fmt.Sprintf(format, args...)
	return g.check(t, cmd, g.try(t, "%s", cmd))
}

func (g *game) check(t *testing.T, cmd, r string) []string {
	t.Helper()
	if strings.Contains(r, "VIOLATION:") {
		t.Fatalf("%s: %q: the library broke the C ABI contract: %s", g, cmd, r)
	}
	if r != "ok" && !strings.HasPrefix(r, "ok ") {
		t.Fatalf("%s: %q: %s\nstderr:\n%s", g, cmd, r, g.tail())
	}
	return strings.Fields(r)[1:]
}

func flag(s string) bool { return s == "1" }

func num(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return v
}

// The eight methods.

func (g *game) send(t *testing.T, to uint64, sendType, channel, size, seed int) bool {
	t.Helper()
	return flag(g.do(t, "send %d %d %d %d %d", to, sendType, channel, size, seed)[0])
}

func (g *game) sendText(t *testing.T, to uint64, sendType, channel int, text string) bool {
	t.Helper()
	return flag(g.do(t, "sendt %d %d %d %s", to, sendType, channel, text)[0])
}

func (g *game) avail(t *testing.T, channel int) (uint32, bool) {
	t.Helper()
	f := g.do(t, "avail %d", channel)
	return uint32(num(t, f[1])), flag(f[0])
}

// packet is what one ReadP2PPacket returned.
type packet struct {
	ok     bool
	size   uint32
	remote uint64
	hash   uint64
	hex    string // the bytes, when at most 64; "-" otherwise or when none
}

func (p packet) text() string {
	if p.hex == "-" {
		return ""
	}
	var b []byte
	fmt.Sscanf(p.hex, "%x", &b)
	return string(b)
}

func (g *game) read(t *testing.T, channel, capacity int) packet {
	t.Helper()
	f := g.do(t, "read %d %d", channel, capacity)
	h, err := strconv.ParseUint(f[3], 16, 64)
	if err != nil {
		t.Fatalf("bad hash %q", f[3])
	}
	return packet{ok: flag(f[0]), size: uint32(num(t, f[1])), remote: num(t, f[2]), hash: h, hex: f[4]}
}

func (g *game) accept(t *testing.T, id uint64) bool {
	t.Helper()
	return flag(g.do(t, "accept %d", id)[0])
}

func (g *game) close(t *testing.T, id uint64) bool {
	t.Helper()
	return flag(g.do(t, "close %d", id)[0])
}

func (g *game) closeChannel(t *testing.T, id uint64, channel int) bool {
	t.Helper()
	return flag(g.do(t, "closechan %d %d", id, channel)[0])
}

// sessionState is P2PSessionState_t as the game read it.
type sessionState struct {
	active, connecting bool
	err                int
	relay              bool
	bytes, packets     int32
	ip                 uint32
	port               uint16
}

func (g *game) state(t *testing.T, id uint64) (sessionState, bool) {
	t.Helper()
	f := g.do(t, "state %d", id)
	i := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("bad state field %q", s)
		}
		return v
	}
	return sessionState{
		active: flag(f[1]), connecting: flag(f[2]), err: int(i(f[3])), relay: flag(f[4]),
		bytes: int32(i(f[5])), packets: int32(i(f[6])), ip: uint32(i(f[7])), port: uint16(i(f[8])),
	}, flag(f[0])
}

// pump runs one dispatch round (RunCallbacks, or RunFrame and the
// GetNextCallback loop) and returns the events delivered.
func (g *game) pump(t *testing.T) []string {
	t.Helper()
	ev := g.do(t, "pump")
	g.events = append(g.events, ev...)
	return ev
}

// seen counts the delivered events equal to tok.
func (g *game) seen(tok string) int {
	n := 0
	for _, e := range g.events {
		if e == tok {
			n++
		}
	}
	return n
}

// Event tokens.
func requestEv(from uint64) string            { return fmt.Sprintf("1202:%d", from) }
func failEv(remote uint64, err int) string    { return fmt.Sprintf("1203:%d:%d", remote, err) }
func handlerEv(index int, from uint64) string { return fmt.Sprintf("h%d:1202:%d", index, from) }

// Steam's session error codes.
const (
	errNone                   = 0
	errNotRunningApp          = 1
	errNoRightsToApp          = 2
	errDestinationNotLoggedOn = 3
	errTimeout                = 4
)

// Send types.
const (
	unreliable        = 0
	unreliableNoDelay = 1
	reliable          = 2
	reliableBuffered  = 3
)

// eventually polls cond, pumping the given games' callbacks the way a game
// loop does, until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool, pump ...*game) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		for _, g := range pump {
			g.pump(t)
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, g := range pump {
				fmt.Fprintf(&logs, "\n%s events %v\nstderr:\n%s", g, g.events, g.tail())
			}
			t.Fatalf("timed out after %v waiting for %s%s", waitLimit, what, logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitEvent pumps g (and others) until g has delivered tok.
func waitEvent(t *testing.T, g *game, tok string, others ...*game) {
	t.Helper()
	eventually(t, g.spec.name+" delivering "+tok, func() bool { return g.seen(tok) > 0 }, append([]*game{g}, others...)...)
}

// recv waits for the next packet on channel of g, pumping the given games.
func recv(t *testing.T, g *game, channel, capacity int, pump ...*game) packet {
	t.Helper()
	var p packet
	eventually(t, fmt.Sprintf("a packet on channel %d of %s", channel, g.spec.name), func() bool {
		p = g.read(t, channel, capacity)
		return p.ok
	}, pump...)
	return p
}

// recvText waits for a packet and checks its text and sender.
func recvText(t *testing.T, g *game, channel int, want string, from *game, pump ...*game) {
	t.Helper()
	p := recv(t, g, channel, 4096, pump...)
	if p.text() != want || p.remote != from.id || p.size != uint32(len(want)) {
		t.Fatalf("%s, channel %d: got %q (size %d) from %d; want %q from %d", g.spec.name, channel, p.text(), p.size, p.remote, want, from.id)
	}
}

// pattern is the payload the game sends for (size, seed).
func pattern(size, seed int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(uint64(i)*31 + uint64(seed)*7 + uint64(i)>>9)
	}
	return b
}

func fnvOf(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// connect opens an established, accepted session from s to r: r accepts s,
// s sends one reliable message on channel 99, r reads it off, and both
// sides report the session active.
func connect(t *testing.T, s, r *game) {
	t.Helper()
	r.accept(t, s.id)
	if !s.sendText(t, r.id, reliable, 99, "open") {
		t.Fatal("send refused")
	}
	recvText(t, r, 99, "open", s, s, r)
	eventually(t, "both sides active", func() bool {
		ss, _ := s.state(t, r.id)
		rs, _ := r.state(t, s.id)
		return ss.active && rs.active
	})
}

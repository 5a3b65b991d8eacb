// Command gameloop is the frame loop of a legacy Steam P2P game, at 60
// frames a second: each frame it runs the callbacks, drains every channel
// it uses with IsP2PPacketAvailable and ReadP2PPacket, moves its player,
// sends the position unreliably on channel 0 and, now and then, a game
// event ("fire", "score") reliably on channel 1.
//
// With no flags it needs no setup: it starts a rendezvous server and two
// players in one process, plays for five seconds and prints a summary per
// player (frames, positions and events sent and received, and the
// P2PSessionState of the session, relay flag included):
//
//	go run ./examples/gameloop
//	go run ./examples/gameloop -duration 30s
//
// With -server it is one player, to be run once per player against a real
// rendezvous server, for example on one machine:
//
//	go run ./cmd/p2pcompat-server -listen 127.0.0.1:27015
//	go run ./examples/gameloop -server 127.0.0.1:27015 -id 1 -peer 2
//	go run ./examples/gameloop -server 127.0.0.1:27015 -id 2 -peer 1
//
// Positions go unreliably because a lost one is replaced by the next frame's
// and a late one is worse than none; events go reliably because a lost
// "score" is a desync. Reliable data is one ordered stream per user across
// channels, so an event is never overtaken by a later event. The match ends
// with a reliable "bye" that carries how many events this player sent, so
// that each side can check it got every one; the example exits non-zero if
// it did not.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

const (
	frameRate = 60
	dt        = 1.0 / frameRate // seconds of game time per frame

	chPosition = 0 // unreliable: where a player is now
	chEvents   = 1 // reliable: hello, fire, score, bye

	// retryEvery is how long a player waits after a connect failure (the
	// peer has not logged on yet, say) before it says hello again.
	retryEvery = time.Second
)

// Message kinds, the first byte of every packet.
const (
	msgPosition = 'P' // frame uint32, x, y float32
	msgHello    = 'H' // opens the session before the match starts
	msgEvent    = 'E' // seq uint32, kind byte
	msgBye      = 'B' // events sent uint32: the last message of a match
)

// Event kinds.
const (
	eventFire  = 'f'
	eventScore = 's'
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gameloop:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	server      string        // "": an embedded server and two players
	id, peer    p2p.SteamID   // with server: who we are and who we play
	app         uint32        // AppID
	listen      string        // local UDP address
	duration    time.Duration // how long a match lasts
	frames      int           // if > 0, how many frames a match lasts instead
	connectWait time.Duration // how long to wait for the peer before the match
	linger      time.Duration // how long to wait for the peer's bye after it
}

// run plays one match and prints the summary: of both players with no
// -server, of one with it. Ctrl-C (ctx) ends the match early.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}
	var results []stats
	if o.server == "" {
		results, err = playLocal(ctx, o, out)
	} else {
		var s stats
		s, err = playOne(ctx, o, out)
		results = []stats{s}
	}
	for _, s := range results {
		fmt.Fprint(out, s.summary())
	}
	if err != nil || ctx.Err() != nil {
		return err // an early end (Ctrl-C) has nothing to check
	}
	for _, s := range results {
		if err := s.check(); err != nil {
			return err
		}
	}
	return nil
}

func parseFlags(args []string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gameloop", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.server, "server", "", "`host:port` of a rendezvous server; empty: run an embedded one and both players in this process")
	id := fs.Uint64("id", 0, "our SteamID (with -server)")
	peer := fs.Uint64("peer", 0, "the SteamID we play against (with -server)")
	app := fs.Uint("app", 480, "AppID")
	fs.StringVar(&o.listen, "listen", "", "local UDP `address`; default 127.0.0.1:0 for a loopback or embedded server, else :0")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long the match lasts")
	fs.IntVar(&o.frames, "frames", 0, "if positive, how many frames the match lasts (instead of -duration)")
	fs.DurationVar(&o.connectWait, "connect-wait", 60*time.Second, "how long to wait for the peer to show up")
	fs.DurationVar(&o.linger, "linger", 10*time.Second, "how long to wait, after the match, for the peer to finish")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.id, o.peer, o.app = p2p.SteamID(*id), p2p.SteamID(*peer), uint32(*app)
	if o.server != "" && (o.id == 0 || o.peer == 0 || o.id == o.peer) {
		fs.Usage()
		return o, errors.New("-server needs -id and -peer, two different non-zero SteamIDs")
	}
	if o.server == "" && (o.id != 0 || o.peer != 0) {
		return o, errors.New("-id and -peer go with -server")
	}
	if o.duration <= 0 && o.frames <= 0 {
		return o, errors.New("-duration or -frames must be positive")
	}
	return o, nil
}

// playLocal runs an embedded rendezvous server and two players, each on
// its own goroutine as if it were its own process.
func playLocal(ctx context.Context, o options, out io.Writer) ([]stats, error) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	o.server = srv.Addr().String()
	fmt.Fprintf(out, "rendezvous server on %s\n", o.server)

	ids := [2]p2p.SteamID{1, 2}
	var results [2]stats
	var errs [2]error
	var wg sync.WaitGroup
	for i := range ids {
		po := o
		po.id, po.peer = ids[i], ids[1-i]
		wg.Go(func() { results[i], errs[i] = playOne(ctx, po, out) })
	}
	wg.Wait()
	return results[:], errors.Join(errs[0], errs[1])
}

// playOne is one player's process: New, the match, Close.
func playOne(ctx context.Context, o options, out io.Writer) (stats, error) {
	n, err := p2p.New(p2p.Config{
		SteamID:        o.id,
		AppID:          o.app,
		RendezvousAddr: o.server,
		ListenAddr:     o.listen,
	})
	if err != nil {
		return stats{ID: o.id, Peer: o.peer}, err
	}
	defer n.Close()
	p := newPlayer(n, o, out)
	err = p.play(ctx)
	return p.stats, err
}

type vec struct{ X, Y float32 }

// stats is what one player saw of the match.
type stats struct {
	ID, Peer p2p.SteamID
	Frames   int

	PositionsSent     int
	PositionsReceived int
	PositionsStale    int // arrived after a newer one, and were dropped
	PeerPosition      vec // the last one received

	FiresSent, ScoresSent int
	FiresRecv, ScoresRecv int
	EventsOutOfOrder      int // reliable data is in order: always 0

	PeerBye        bool // the peer's last message arrived
	PeerEventsSent int  // how many events the peer says it sent

	State     p2p.P2PSessionState // at the end of the match
	HaveState bool                // false: there was no session then
}

func (s stats) EventsSent() int     { return s.FiresSent + s.ScoresSent }
func (s stats) EventsReceived() int { return s.FiresRecv + s.ScoresRecv }

// check says whether every reliable event the peer sent arrived, in order.
func (s stats) check() error {
	switch {
	case !s.PeerBye:
		return fmt.Errorf("player %d: the match ended without %d's bye", s.ID, s.Peer)
	case s.EventsReceived() != s.PeerEventsSent:
		return fmt.Errorf("player %d: received %d of the %d events %d sent", s.ID, s.EventsReceived(), s.PeerEventsSent, s.Peer)
	case s.EventsOutOfOrder != 0:
		return fmt.Errorf("player %d: %d events out of order", s.ID, s.EventsOutOfOrder)
	}
	return nil
}

func (s stats) summary() string {
	peerSent := "?"
	if s.PeerBye {
		peerSent = fmt.Sprint(s.PeerEventsSent)
	}
	state := "no session"
	if s.HaveState {
		st := s.State
		state = fmt.Sprintf("active=%v connecting=%v relay=%v error=%s queued=%d bytes/%d packets remote=%s",
			st.ConnectionActive, st.Connecting, st.UsingRelay, st.SessionError,
			st.BytesQueuedForSend, st.PacketsQueuedForSend, ipv4(st.RemoteIP, st.RemotePort))
	}
	return fmt.Sprintf("player %d (vs %d): %d frames\n"+
		"  positions: sent %d, received %d (%d stale), last (%.1f, %.1f)\n"+
		"  events:    sent %d (%d fire, %d score), received %d of %s (%d fire, %d score)\n"+
		"  session:   %s\n",
		s.ID, s.Peer, s.Frames,
		s.PositionsSent, s.PositionsReceived, s.PositionsStale, s.PeerPosition.X, s.PeerPosition.Y,
		s.EventsSent(), s.FiresSent, s.ScoresSent, s.EventsReceived(), peerSent, s.FiresRecv, s.ScoresRecv,
		state)
}

func ipv4(ip uint32, port uint16) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], ip) // RemoteIP is in host byte order
	return netip.AddrPortFrom(netip.AddrFrom4(b), port).String()
}

type phase int

const (
	waiting phase = iota // for the session with the peer to open
	playing              // the match
	ending               // bye sent; waiting for the peer's bye
)

// player is one game instance. Only its own goroutine touches it: the
// callbacks run inside its RunCallbacks.
type player struct {
	n        *p2p.Networking
	o        options
	out      io.Writer
	stats    stats
	phase    phase
	helloAt  time.Time // when to say hello (again); zero: not now
	pos, vel vec
	peerSeen uint32 // the newest frame of the peer's positions so far, plus one
	nextSeq  uint32 // of our next event
	wantSeq  uint32 // of the peer's next event
	buf      []byte
	msg      []byte
}

func newPlayer(n *p2p.Networking, o options, out io.Writer) *player {
	p := &player{
		n:   n,
		o:   o,
		out: out,
		// Nothing we send is over the unreliable limit, so a bigger packet
		// is not ours: reading it into this buffer consumes it (COMPAT C22).
		buf:   make([]byte, p2p.MaxUnreliablePacketSize),
		stats: stats{ID: o.id, Peer: o.peer},
		pos:   vec{float32(100 * o.id), 100},
		vel:   vec{120, 90},
	}
	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		// A game accepts the players of its lobby and no one else: not
		// accepting is how the session is refused.
		if r.SteamIDRemote == p.o.peer {
			n.AcceptP2PSessionWithUser(r.SteamIDRemote)
		} else {
			fmt.Fprintf(p.out, "player %d: ignoring a session request from %d\n", p.o.id, r.SteamIDRemote)
		}
	})
	n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		fmt.Fprintf(p.out, "player %d: session with %d failed: %s\n", p.o.id, f.SteamIDRemote, f.SessionError)
		// Closing the failed session is what lets a new attempt report
		// its own failure (COMPAT C36).
		n.CloseP2PSessionWithUser(f.SteamIDRemote)
		if p.phase == waiting {
			p.helloAt = time.Now().Add(retryEvery)
		}
	})
	return p
}

// play runs the frame loop until the match is over, or ctx ends it early.
func (p *player) play(ctx context.Context) error {
	tick := time.NewTicker(time.Second / frameRate)
	defer tick.Stop()
	p.helloAt = time.Now()
	waitUntil := time.Now().Add(p.o.connectWait)
	var matchEnd, lingerUntil time.Time
	for {
		select {
		case <-ctx.Done():
			p.endMatch()
			return nil // Ctrl-C: the summary is still worth printing
		case <-tick.C:
		}
		now := time.Now()
		p.n.RunCallbacks()
		p.drain(chPosition)
		p.drain(chEvents)

		switch p.phase {
		case waiting:
			if !p.helloAt.IsZero() && !now.Before(p.helloAt) {
				p.helloAt = time.Time{}
				p.send([]byte{msgHello}, p2p.P2PSendReliable, chEvents)
			}
			if st, ok := p.n.GetP2PSessionState(p.o.peer); ok && st.ConnectionActive {
				p.phase = playing
				matchEnd = now.Add(p.o.duration)
			} else if now.After(waitUntil) {
				return fmt.Errorf("player %d: no session with %d after %v", p.o.id, p.o.peer, p.o.connectWait)
			}
		case playing:
			p.frame()
			if (p.o.frames > 0 && p.stats.Frames >= p.o.frames) || (p.o.frames <= 0 && !now.Before(matchEnd)) {
				p.endMatch()
				lingerUntil = now.Add(p.o.linger)
			}
		case ending:
			if p.stats.PeerBye && p.delivered() {
				return nil
			}
			if now.After(lingerUntil) {
				fmt.Fprintf(p.out, "player %d: gave up waiting for %d after %v\n", p.o.id, p.o.peer, p.o.linger)
				return nil
			}
		}
	}
}

// frame is one frame of the match: move, tell the peer where we are, and
// now and then do something the peer must not miss.
func (p *player) frame() {
	f := p.stats.Frames
	p.stats.Frames++

	// Bounce around a 640x480 field.
	p.pos.X += p.vel.X * dt
	p.pos.Y += p.vel.Y * dt
	if p.pos.X < 0 || p.pos.X > 640 {
		p.vel.X = -p.vel.X
	}
	if p.pos.Y < 0 || p.pos.Y > 480 {
		p.vel.Y = -p.vel.Y
	}

	// UnreliableNoDelay: a position that cannot go out now is worthless
	// later, so it is dropped rather than queued (COMPAT C11).
	m := p.message(msgPosition)
	m = binary.BigEndian.AppendUint32(m, uint32(f))
	m = binary.BigEndian.AppendUint32(m, math.Float32bits(p.pos.X))
	m = binary.BigEndian.AppendUint32(m, math.Float32bits(p.pos.Y))
	if p.send(m, p2p.P2PSendUnreliableNoDelay, chPosition) {
		p.stats.PositionsSent++
	}

	// The events are on a fixed schedule, so that a run of N frames sends
	// a known number of them.
	switch {
	case f%20 == 10:
		if p.sendEvent(eventFire) {
			p.stats.FiresSent++
		}
	case f%45 == 44:
		if p.sendEvent(eventScore) {
			p.stats.ScoresSent++
		}
	}
}

func (p *player) sendEvent(kind byte) bool {
	m := p.message(msgEvent)
	m = binary.BigEndian.AppendUint32(m, p.nextSeq)
	m = append(m, kind)
	if !p.send(m, p2p.P2PSendReliable, chEvents) {
		return false
	}
	p.nextSeq++
	return true
}

// endMatch records the session's state as the match ends and sends the
// bye: reliable, after every event, so it arrives after all of them.
func (p *player) endMatch() {
	if p.phase != playing {
		return
	}
	p.phase = ending
	p.stats.State, p.stats.HaveState = p.n.GetP2PSessionState(p.o.peer)
	m := binary.BigEndian.AppendUint32(p.message(msgBye), uint32(p.stats.EventsSent()))
	p.send(m, p2p.P2PSendReliable, chEvents)
}

// delivered reports whether the peer has acknowledged everything we sent,
// so that closing now loses nothing. No session, or a failed one, means
// nothing to wait for.
func (p *player) delivered() bool {
	st, ok := p.n.GetP2PSessionState(p.o.peer)
	return !ok || st.BytesQueuedForSend == 0 || (!st.ConnectionActive && !st.Connecting)
}

func (p *player) message(kind byte) []byte {
	p.msg = append(p.msg[:0], kind)
	return p.msg
}

func (p *player) send(m []byte, st p2p.P2PSend, channel int) bool {
	err := p.n.Send(p.o.peer, m, st, channel)
	if err != nil {
		// Our messages are small and our channels valid, so this is
		// ErrSendBufferFull: the peer is not keeping up.
		fmt.Fprintf(p.out, "player %d: not sent: %v\n", p.o.id, err)
	}
	return err == nil
}

// drain reads every packet waiting on channel. A game that reads one
// packet a frame falls further behind every frame its peer sends two.
func (p *player) drain(channel int) {
	for {
		if _, ok := p.n.IsP2PPacketAvailable(channel); !ok {
			return
		}
		size, from, ok := p.n.ReadP2PPacket(p.buf, channel)
		if !ok {
			return
		}
		if from != p.o.peer {
			continue // not someone we play with
		}
		p.handle(channel, p.buf[:size])
	}
}

func (p *player) handle(channel int, m []byte) {
	if len(m) == 0 {
		return
	}
	switch {
	case channel == chPosition && m[0] == msgPosition && len(m) == 13:
		f := binary.BigEndian.Uint32(m[1:])
		if f+1 <= p.peerSeen {
			p.stats.PositionsStale++ // unreliable: overtaken by a newer one
			return
		}
		p.peerSeen = f + 1
		p.stats.PositionsReceived++
		p.stats.PeerPosition = vec{
			math.Float32frombits(binary.BigEndian.Uint32(m[5:])),
			math.Float32frombits(binary.BigEndian.Uint32(m[9:])),
		}
	case channel == chEvents && m[0] == msgEvent && len(m) == 6:
		if seq := binary.BigEndian.Uint32(m[1:]); seq != p.wantSeq {
			p.stats.EventsOutOfOrder++
			p.wantSeq = seq
		}
		p.wantSeq++
		switch m[5] {
		case eventFire:
			p.stats.FiresRecv++
		case eventScore:
			p.stats.ScoresRecv++
		}
	case channel == chEvents && m[0] == msgBye && len(m) == 5:
		p.stats.PeerBye = true
		p.stats.PeerEventsSent = int(binary.BigEndian.Uint32(m[1:]))
	case channel == chEvents && m[0] == msgHello:
		// The peer is here; the session is open now, which is all it is for.
	}
}

// lockedWriter lets two players in one process print without their lines
// tearing each other.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

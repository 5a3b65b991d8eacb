// Command chat is a two-terminal chat over the session-less P2P API: every
// line typed is one reliable packet to the peer, and every packet received
// is printed with the sender's SteamID.
//
// On one machine, in three terminals:
//
//	go run ./cmd/p2pcompat-server -listen 127.0.0.1:27015
//	go run ./examples/chat -server 127.0.0.1:27015 -id 1 -peer 2
//	go run ./examples/chat -server 127.0.0.1:27015 -id 2 -peer 1
//
// Type in either chat and the line appears in the other. End a chat with
// Ctrl-D (end of input) or Ctrl-C.
//
// It is written the way a legacy game drives ISteamNetworking: one loop on
// one goroutine that, every 16 ms frame, runs the callbacks
// (SteamAPI_RunCallbacks) and reads packets until IsP2PPacketAvailable says
// there are none left. Standard input is read on a goroutine of its own,
// because a game's frame loop never blocks on input; it hands lines to the
// loop over a channel.
//
// It shows the three things every port has to get right: accepting a
// session in the P2PSessionRequest callback (there is no connect call: the
// first line typed opens the session), reading until no packet is left, and
// handling P2PSessionConnectFail by closing the session so that the next
// attempt starts afresh. A line typed while the peer's chat is not running
// yet fails at once with DestinationNotLoggedOn; once it runs, typing again
// gets through.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// frame is the length of one iteration of the loop: 60 frames a second, as
// in a game.
const frame = 16 * time.Millisecond

// flushTimeout bounds how long a chat that is quitting waits for its last
// lines to be acknowledged by the peer.
const flushTimeout = 5 * time.Second

func main() {
	// Ctrl-C and SIGTERM end the chat the same way end of input does.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage was the output asked for
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run is the whole chat: it returns nil once stdin ends or ctx is done, and
// an error when it cannot start.
func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stdout)
	server := fs.String("server", "127.0.0.1:27015", "`host:port` of the rendezvous server (UDP)")
	id := fs.Uint64("id", 0, "our SteamID (required, non-zero)")
	peer := fs.Uint64("peer", 0, "the SteamID to chat with (required, non-zero)")
	app := fs.Uint("app", 480, "AppID; sessions only open between users of the same one")
	listen := fs.String("listen", "", "local UDP `address`; default 127.0.0.1:0 for a loopback server, else :0")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == 0 || *peer == 0 {
		fs.Usage()
		return errors.New("-id and -peer are required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	n, err := p2p.New(p2p.Config{
		SteamID:        p2p.SteamID(*id),
		AppID:          uint32(*app),
		RendezvousAddr: *server,
		ListenAddr:     *listen,
	})
	if err != nil {
		return err
	}
	defer n.Close()
	c := &chat{n: n, peer: p2p.SteamID(*peer), out: stdout}

	// Handlers only ever run inside RunCallbacks below, on this goroutine,
	// so they may touch the chat's state without locks.
	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		// Accepting is what lets the sender's packets through; a game that
		// ignores the request refuses the session.
		n.AcceptP2PSessionWithUser(r.SteamIDRemote)
		fmt.Fprintf(c.out, "* %d wants to chat: accepted\n", r.SteamIDRemote)
	})
	n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		fmt.Fprintf(c.out, "* could not reach %d: %s (%d); what you typed was dropped, type again to retry\n",
			f.SteamIDRemote, f.SessionError, f.SessionError)
		// A failed session posts no second failure until it is closed
		// (COMPAT C36); closing it makes the next line a fresh attempt
		// that reports its own outcome.
		n.CloseP2PSessionWithUser(f.SteamIDRemote)
	})

	fmt.Fprintf(stdout, "* you are %d, chatting with %d through %s; type a line and press Enter, Ctrl-D to quit\n",
		*id, *peer, *server)

	lines := make(chan string)
	done := make(chan struct{})
	defer close(done) // lets the reader goroutine go if it is waiting to hand over a line
	go readLines(stdin, lines, done)

	tick := time.NewTicker(frame)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "* bye")
			return nil
		case line, ok := <-lines:
			if !ok {
				c.flush(ctx, tick)
				fmt.Fprintln(stdout, "* bye")
				return nil
			}
			c.send(line)
		case <-tick.C:
			c.frame()
		}
	}
}

type chat struct {
	n    *p2p.Networking
	peer p2p.SteamID
	out  io.Writer
	buf  []byte
}

// frame is one frame of the loop: callbacks first, then every packet that
// waits. Stopping after one packet a frame would let a backlog grow.
func (c *chat) frame() {
	c.n.RunCallbacks()
	for {
		size, ok := c.n.IsP2PPacketAvailable(0)
		if !ok {
			return
		}
		if int(size) > len(c.buf) {
			c.buf = make([]byte, size)
		}
		size, from, ok := c.n.ReadP2PPacket(c.buf, 0)
		if !ok {
			return
		}
		fmt.Fprintf(c.out, "[%d] %s\n", from, c.buf[:size])
	}
}

// send sends one typed line reliably on channel 0. The first one opens the
// session by itself.
func (c *chat) send(line string) {
	if line == "" {
		return
	}
	if err := c.n.Send(c.peer, []byte(line), p2p.P2PSendReliable, 0); err != nil {
		// ErrSendBufferFull: the peer is not taking what we already sent
		// (it has not accepted yet, or is gone); ErrPacketTooLarge: a line
		// over 1 MiB.
		fmt.Fprintf(c.out, "* not sent: %v\n", err)
	}
}

// flush keeps the frames going until the peer has acknowledged everything
// we sent, so that a line piped in just before end of input is not lost
// when Close drops what is still queued. A session still connecting counts:
// the peer may be about to accept. It gives up after flushTimeout, or when
// ctx ends.
func (c *chat) flush(ctx context.Context, tick *time.Ticker) {
	deadline := time.NewTimer(flushTimeout)
	defer deadline.Stop()
	for {
		st, ok := c.n.GetP2PSessionState(c.peer)
		if !ok || st.BytesQueuedForSend == 0 || (!st.ConnectionActive && !st.Connecting) {
			return // nothing left, or a failed session that will deliver nothing
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			fmt.Fprintf(c.out, "* %d bytes still unacknowledged, quitting anyway\n", st.BytesQueuedForSend)
			return
		case <-tick.C:
			c.frame()
		}
	}
}

// readLines hands each line of r to lines and closes lines at end of input.
// It blocks in Read, so it runs on its own goroutine; done lets it go when
// the loop has stopped listening.
func readLines(r io.Reader, lines chan<- string, done <-chan struct{}) {
	defer close(lines)
	br := bufio.NewReader(r)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			select {
			case lines <- strings.TrimRight(s, "\r\n"):
			case <-done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

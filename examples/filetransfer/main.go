// Command filetransfer sends a file over the session-less P2P API in
// reliable chunks of 1 MiB, the largest reliable packet, and shows how to
// live with backpressure: when SendP2PPacket refuses a chunk because too
// much is already queued for the peer (p2p.ErrSendBufferFull), the sender
// keeps the chunk and tries again a moment later instead of dropping it.
//
// With no flags it needs no setup: it starts a rendezvous server and two
// peers in one process, generates a 16 MiB file of random bytes, sends it
// from one peer to the other and prints the throughput:
//
//	go run ./examples/filetransfer
//	go run ./examples/filetransfer -size 100000000
//
// Between two processes, with a rendezvous server running
// (go run ./cmd/p2pcompat-server -listen 127.0.0.1:27015), start the
// receiver first, then the sender:
//
//	go run ./examples/filetransfer -server 127.0.0.1:27015 -id 2 -recv /tmp/incoming
//	go run ./examples/filetransfer -server 127.0.0.1:27015 -id 1 -send ./some.file -peer 2
//
// Everything travels on channel 0 as P2PSendReliable. The sender first sends
// a header with the file's name, size and SHA-256, then the content in
// chunks; the receiver writes the chunks to a temporary file as they come,
// checks the SHA-256 at the end, gives the file its name only if it
// matches, and answers with one message that says whether it did. Reliable
// messages arrive once, in order, so the content needs no framing of its
// own: after the header, the next size bytes are the file.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

const (
	channel   = 0
	chunkSize = p2p.MaxReliablePacketSize // 1 MiB

	// sendBuffer is Config.SendBufferSize: how much may wait unacknowledged
	// for the peer. The default (1 MiB) holds one chunk, so the sender
	// would wait for each chunk's last acknowledgement before queueing
	// the next; a few chunks keep the path busy in the meantime.
	sendBuffer = 4 * chunkSize

	// poll is how often the loops run callbacks, read, and retry a chunk
	// that did not fit. A game would do this once per frame; a tool that
	// does nothing else can afford a shorter period.
	poll = 2 * time.Millisecond

	retryEvery  = time.Second // after a connect failure, before starting over
	maxAttempts = 10          // connect failures before the sender gives up
	linger      = 10 * time.Second
)

// Message kinds, the first byte of the header and of the answer.
const (
	msgHeader   = 'H' // size uint64, SHA-256 [32]byte, name
	msgOK       = 'K' // the file arrived and its SHA-256 matched
	msgRejected = 'X' // followed by the reason
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "filetransfer:", err)
		os.Exit(1)
	}
}

type options struct {
	server   string
	id, peer p2p.SteamID
	app      uint32
	listen   string
	send     string // path of the file to send
	recv     string // directory to receive into
	size     int64  // of the demo's file
	dir      string // where the demo keeps its files; "" a temporary directory
}

// run sends a file, receives one, or runs the demo, by the flags in args.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	switch {
	case o.send != "":
		n, err := newPeer(o.id, o)
		if err != nil {
			return err
		}
		defer n.Close()
		_, err = sendFile(ctx, n, o.peer, o.send, stdout)
		return err
	case o.recv != "":
		n, err := newPeer(o.id, o)
		if err != nil {
			return err
		}
		defer n.Close()
		fmt.Fprintf(stdout, "%d: waiting for a file, to save in %s\n", o.id, o.recv)
		_, err = receiveFile(ctx, n, o.peer, o.recv, stdout)
		return err
	default:
		return demo(ctx, o, stdout)
	}
}

func parseFlags(args []string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("filetransfer", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.server, "server", "127.0.0.1:27015", "`host:port` of the rendezvous server, with -send or -recv")
	id := fs.Uint64("id", 0, "our SteamID, with -send or -recv")
	peer := fs.Uint64("peer", 0, "with -send, who to send to; with -recv, the only user to accept a file from (0: anyone)")
	app := fs.Uint("app", 480, "AppID")
	fs.StringVar(&o.listen, "listen", "", "local UDP `address`; default 127.0.0.1:0 for a loopback server, else :0")
	fs.StringVar(&o.send, "send", "", "send the file at `path`")
	fs.StringVar(&o.recv, "recv", "", "receive one file into `directory`")
	fs.Int64Var(&o.size, "size", 16<<20, "without -send or -recv: the size of the demo's file in bytes")
	fs.StringVar(&o.dir, "dir", "", "without -send or -recv: keep the demo's files in this `directory` (default: a temporary one, removed)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.id, o.peer, o.app = p2p.SteamID(*id), p2p.SteamID(*peer), uint32(*app)
	switch {
	case o.send != "" && o.recv != "":
		return o, errors.New("-send and -recv exclude each other")
	case o.send != "" && (o.id == 0 || o.peer == 0):
		return o, errors.New("-send needs -id and -peer")
	case o.recv != "" && o.id == 0:
		return o, errors.New("-recv needs -id")
	case o.size < 0:
		return o, errors.New("-size is negative")
	}
	return o, nil
}

func newPeer(id p2p.SteamID, o options) (*p2p.Networking, error) {
	return p2p.New(p2p.Config{
		SteamID:        id,
		AppID:          o.app,
		RendezvousAddr: o.server,
		ListenAddr:     o.listen,
		SendBufferSize: sendBuffer,
	})
}

// demo sends a generated file between two peers of this process.
func demo(ctx context.Context, o options, out io.Writer) error {
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "p2p-filetransfer-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	src, err := generate(filepath.Join(dir, "send"), "demo.bin", o.size)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, "recv")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}

	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer srv.Close()
	o.server = srv.Addr().String()
	const senderID, receiverID = 1, 2
	sender, err := newPeer(senderID, o)
	if err != nil {
		return err
	}
	defer sender.Close()
	receiver, err := newPeer(receiverID, o)
	if err != nil {
		return err
	}
	defer receiver.Close()

	// Each peer is driven by one goroutine, as each would be by its own
	// process; they share the output.
	out = &lockedWriter{w: out}
	type result struct {
		path string
		err  error
	}
	received := make(chan result, 1)
	go func() {
		p, err := receiveFile(ctx, receiver, senderID, dst, out)
		received <- result{p, err}
	}()
	st, sendErr := sendFile(ctx, sender, receiverID, src, out)
	r := <-received
	if err := errors.Join(sendErr, r.err); err != nil {
		return err
	}
	fmt.Fprintf(out, "%.1f MB in %v: %.1f MB/s\n", float64(st.size)/1e6, st.elapsed.Round(time.Millisecond),
		float64(st.size)/1e6/st.elapsed.Seconds())
	return nil
}

// generate writes size random bytes to dir/name and returns the path.
func generate(dir, name string, size int64) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// sendStats is how a transfer went, from the sender's side.
type sendStats struct {
	size    int64
	elapsed time.Duration // from the header to the receiver's answer
	waits   int           // times a chunk did not fit and waited
}

// sendFile sends the file at path to peer and returns once the receiver
// has answered, or with the error that stopped it.
func sendFile(ctx context.Context, n *p2p.Networking, peer p2p.SteamID, path string, out io.Writer) (sendStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return sendStats{}, err
	}
	defer f.Close()
	// The SHA-256 goes in the header, so it takes a pass over the file
	// before anything is sent.
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return sendStats{}, err
	}
	name := filepath.Base(path)
	header := binary.BigEndian.AppendUint64([]byte{msgHeader}, uint64(size))
	header = h.Sum(header)
	header = append(header, name...)
	fmt.Fprintf(out, "sending %s (%d bytes, SHA-256 %s) to %d\n", name, size, hex.EncodeToString(header[9:41]), peer)

	failed := false
	n.OnP2PSessionConnectFail(func(cf p2p.P2PSessionConnectFail) {
		if cf.SteamIDRemote != peer {
			return
		}
		fmt.Fprintf(out, "session with %d failed: %s\n", peer, cf.SessionError)
		// Close the failed session, so that the next attempt is a new one
		// that reports its own outcome (COMPAT C36).
		n.CloseP2PSessionWithUser(peer)
		failed = true
	})

	st := sendStats{size: size}
	chunk := make([]byte, chunkSize)
	reply := make([]byte, 256)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for attempt := 1; ; attempt++ {
		// A failed session drops everything still queued, so each attempt
		// starts from the header.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return st, err
		}
		start := time.Now()
		var sent int64
		pending := header // what did not fit last time
		headerSent := false
		failed = false
		for !failed {
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-tick.C:
			}
			n.RunCallbacks()
			if failed {
				break // sending now would open a new session behind the old header
			}

			for {
				k, from, ok := n.ReadP2PPacket(reply, channel)
				if !ok {
					break
				}
				if from != peer || k == 0 {
					continue
				}
				st.elapsed = time.Since(start)
				if reply[0] == msgOK {
					fmt.Fprintf(out, "sent %s: %d bytes, verified by %d; waited for buffer space %d times\n", name, sent, peer, st.waits)
					return st, nil
				}
				return st, fmt.Errorf("%d rejected %s: %s", peer, name, bytes.TrimPrefix(reply[:k], []byte{msgRejected}))
			}

			// Queue as much as fits; the rest waits for the next tick.
			for pending != nil {
				err := n.Send(peer, pending, p2p.P2PSendReliable, channel)
				if errors.Is(err, p2p.ErrSendBufferFull) {
					st.waits++ // keep it, and try again once acknowledgements made room
					break
				}
				if err != nil {
					return st, err
				}
				if headerSent {
					sent += int64(len(pending))
				}
				headerSent = true
				pending = nil
				if sent < size {
					k, err := io.ReadFull(f, chunk[:min(int64(chunkSize), size-sent)])
					if err != nil {
						return st, fmt.Errorf("reading %s: %w", path, err)
					}
					pending = chunk[:k]
				}
			}
		}
		if attempt == maxAttempts {
			return st, fmt.Errorf("no session with %d after %d attempts", peer, attempt)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(retryEvery):
		}
	}
}

// incoming is a file being received.
type incoming struct {
	from    p2p.SteamID
	name    string
	size    int64
	sum     []byte
	got     int64
	tmp     *os.File
	h       hash.Hash
	started time.Time
}

// receiveFile accepts one file from from (0: from anyone), saves it in dir
// under the name it came with and returns its path, once the sender has
// been told.
func receiveFile(ctx context.Context, n *p2p.Networking, from p2p.SteamID, dir string, out io.Writer) (string, error) {
	var cur *incoming
	// discard forgets a partial file, when its sender starts over.
	discard := func() {
		if cur != nil {
			cur.tmp.Close()
			os.Remove(cur.tmp.Name())
			cur = nil
		}
	}
	defer discard()

	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		if from != 0 && r.SteamIDRemote != from {
			fmt.Fprintf(out, "ignoring a session request from %d\n", r.SteamIDRemote)
			return // not accepting is refusing
		}
		if cur != nil && cur.from == r.SteamIDRemote {
			// A new session from our sender: the old one died, and the
			// sender starts over with a new header.
			discard()
		}
		n.AcceptP2PSessionWithUser(r.SteamIDRemote)
	})
	n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		fmt.Fprintf(out, "session with %d failed: %s\n", f.SteamIDRemote, f.SessionError)
		n.CloseP2PSessionWithUser(f.SteamIDRemote)
		if cur != nil && cur.from == f.SteamIDRemote {
			discard()
		}
	})

	buf := make([]byte, chunkSize)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
		n.RunCallbacks()
		for {
			size, remote, ok := n.ReadP2PPacket(buf, channel)
			if !ok {
				break
			}
			m := buf[:size]
			if cur == nil {
				if from != 0 && remote != from {
					continue
				}
				var err error
				if cur, err = openIncoming(remote, m, dir); err != nil {
					err = fmt.Errorf("refused a file from %d: %w", remote, err)
					return "", errors.Join(err, answer(ctx, n, remote, tick, msgRejected, err.Error()))
				}
				fmt.Fprintf(out, "receiving %s (%d bytes) from %d\n", cur.name, cur.size, remote)
			} else if remote == cur.from {
				if int64(len(m)) > cur.size-cur.got {
					err := fmt.Errorf("more than the %d bytes announced", cur.size)
					return "", errors.Join(err, answer(ctx, n, remote, tick, msgRejected, err.Error()))
				}
				if _, err := cur.tmp.Write(m); err != nil {
					return "", errors.Join(err, answer(ctx, n, remote, tick, msgRejected, "cannot write the file"))
				}
				cur.h.Write(m)
				cur.got += int64(len(m))
			} else {
				continue // someone else, while we are busy
			}
			if cur.got == cur.size {
				done := cur
				cur = nil // finish closes or removes the file from here on
				return finish(ctx, n, done, dir, tick, out)
			}
		}
	}
}

// openIncoming takes a header and opens the temporary file the content goes to.
func openIncoming(from p2p.SteamID, m []byte, dir string) (*incoming, error) {
	if len(m) < 1+8+sha256.Size+1 || m[0] != msgHeader {
		return nil, errors.New("not a file header")
	}
	in := &incoming{
		from:    from,
		size:    int64(binary.BigEndian.Uint64(m[1:])),
		sum:     bytes.Clone(m[9:41]),
		name:    string(m[41:]),
		h:       sha256.New(),
		started: time.Now(),
	}
	// The name comes from the network: it must be a plain file name, never
	// a path that escapes dir.
	if in.name != filepath.Base(in.name) || in.name == "." || in.name == ".." ||
		strings.ContainsAny(in.name, `/\`) || !filepath.IsLocal(in.name) {
		return nil, fmt.Errorf("bad file name %q", in.name)
	}
	if in.size < 0 {
		return nil, errors.New("bad size")
	}
	if _, err := os.Lstat(filepath.Join(dir, in.name)); err == nil {
		return nil, fmt.Errorf("%s already exists", in.name)
	}
	tmp, err := os.CreateTemp(dir, "."+in.name+".*.part")
	if err != nil {
		return nil, err
	}
	in.tmp = tmp
	return in, nil
}

// finish checks the SHA-256, names the file, and tells the sender.
func finish(ctx context.Context, n *p2p.Networking, in *incoming, dir string, tick *time.Ticker, out io.Writer) (string, error) {
	tmp := in.tmp.Name()
	err := in.tmp.Close()
	if err == nil && !bytes.Equal(in.h.Sum(nil), in.sum) {
		err = errors.New("SHA-256 mismatch")
	}
	path := filepath.Join(dir, in.name)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		err = fmt.Errorf("receiving %s: %w", in.name, err)
		return "", errors.Join(err, answer(ctx, n, in.from, tick, msgRejected, err.Error()))
	}
	el := time.Since(in.started)
	fmt.Fprintf(out, "received %s from %d: %d bytes in %v, SHA-256 verified, saved as %s\n",
		in.name, in.from, in.size, el.Round(time.Millisecond), path)
	return path, answer(ctx, n, in.from, tick, msgOK, "")
}

// answer sends the sender our verdict and waits until it is acknowledged:
// closing the Networking drops whatever is still queued.
func answer(ctx context.Context, n *p2p.Networking, to p2p.SteamID, tick *time.Ticker, kind byte, reason string) error {
	if err := n.Send(to, append([]byte{kind}, reason...), p2p.P2PSendReliable, channel); err != nil {
		return err
	}
	deadline := time.Now().Add(linger)
	for {
		st, ok := n.GetP2PSessionState(to)
		if !ok || st.BytesQueuedForSend == 0 || (!st.ConnectionActive && !st.Connecting) {
			return nil // delivered, or no session left to deliver it
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d did not acknowledge our answer within %v", to, linger)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			n.RunCallbacks()
		}
	}
}

// lockedWriter lets the demo's two peers print without tearing each
// other's lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

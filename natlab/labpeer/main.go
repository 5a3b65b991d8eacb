// Command labpeer is one player of the NAT lab: a p2pcompat peer that uses
// the public API only, the way a ported game would.
//
// The initiator sends one reliable message to -peer and waits for it to come
// back; after -settle (time for a better path to take over) it sends a second
// one and waits for that too. With -echo it is the other side: it accepts
// session requests from -peer and sends back whatever it receives, until
// -timeout or SIGTERM.
//
// Either way it prints ONE JSON line on stdout when it ends (the report type
// below) and exits 0 if ok. Progress goes to stderr; "labpeer: ready" there
// means the registration with the rendezvous is confirmed.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

type pathEntry struct {
	Ms           float64 `json:"t_ms"` // since the first send (initiator) or start (echo)
	Active       bool    `json:"active"`
	Connecting   bool    `json:"connecting"`
	UsingRelay   bool    `json:"using_relay"`
	Remote       string  `json:"remote,omitempty"`
	SessionError int     `json:"session_error"`
	Exists       bool    `json:"exists"`
}

type report struct {
	Role         string      `json:"role"`
	ID           uint64      `json:"id"`
	Peer         uint64      `json:"peer"`
	OK           bool        `json:"ok"`
	Error        string      `json:"error,omitempty"`
	SessionError int         `json:"session_error"`
	UsingRelay   bool        `json:"using_relay"`
	Remote       string      `json:"remote,omitempty"`
	Local        string      `json:"local,omitempty"`
	FirstEchoMs  float64     `json:"first_echo_ms,omitempty"`
	SecondEchoMs float64     `json:"second_echo_ms,omitempty"`
	ElapsedMs    float64     `json:"elapsed_ms"` // first send to the end (echo, failure or timeout)
	Echoed       int         `json:"echoed,omitempty"`
	PathLog      []pathEntry `json:"path_log"`
}

func main() {
	id := flag.Uint64("id", 0, "our SteamID")
	peer := flag.Uint64("peer", 0, "the SteamID to talk to")
	app := flag.Uint("app", 480, "AppID")
	rendezvous := flag.String("rendezvous", "", "rendezvous server `host:port`")
	relay := flag.Bool("relay", true, "AllowP2PPacketRelay")
	timeout := flag.Duration("timeout", 30*time.Second, "overall time limit")
	connectTimeout := flag.Duration("connect-timeout", 0, "Config.ConnectTimeout (0: the library default)")
	echo := flag.Bool("echo", false, "be the echoing side")
	settle := flag.Duration("settle", 2*time.Second, "after the first echo, how long to wait for a better path before the second message")
	listen := flag.String("listen", "", "Config.ListenAddr")
	openerTTL := flag.Int("opener-ttl", 0, "Config.OpenerTTL (0: the library default)")
	verbose := flag.Bool("v", false, "library debug logs on stderr")
	flag.Parse()

	rep := report{Role: "initiator", ID: *id, Peer: *peer, PathLog: []pathEntry{}}
	if *echo {
		rep.Role = "echo"
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	deadline := time.Now().Add(*timeout)
	n, err := p2p.New(p2p.Config{
		SteamID:        p2p.SteamID(*id),
		AppID:          uint32(*app),
		RendezvousAddr: *rendezvous,
		ListenAddr:     *listen,
		ConnectTimeout: *connectTimeout,
		OpenerTTL:      *openerTTL,
		Logger:         logger,
	})
	if err != nil {
		rep.Error = "new: " + err.Error()
		finish(&rep)
	}
	rep.Local = n.LocalAddr().String()
	n.AllowP2PPacketRelay(*relay)

	l := &loop{n: n, peer: p2p.SteamID(*peer), rep: &rep, deadline: deadline}
	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		if r.SteamIDRemote == l.peer {
			n.AcceptP2PSessionWithUser(r.SteamIDRemote)
		}
	})
	n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		if f.SteamIDRemote == l.peer {
			l.failed = f.SessionError
		}
	})
	fmt.Fprintf(os.Stderr, "labpeer: ready id=%d local=%s relay=%v\n", *id, rep.Local, *relay)
	if *echo {
		l.echo()
	} else {
		l.initiate(*settle)
	}
	l.snapshot()
	n.Close()
	finish(&rep)
}

type loop struct {
	n        *p2p.Networking
	peer     p2p.SteamID
	rep      *report
	deadline time.Time
	start    time.Time
	failed   p2p.P2PSessionError
	last     pathEntry
	buf      [p2p.MaxReliablePacketSize]byte
}

// tick is one frame of the game loop: callbacks, then the path record.
func (l *loop) tick() {
	l.n.RunCallbacks()
	l.snapshot()
	time.Sleep(time.Millisecond)
}

// snapshot records the session's state, and appends it to the path log when
// it changed.
func (l *loop) snapshot() {
	st, ok := l.n.GetP2PSessionState(l.peer)
	e := pathEntry{
		Exists:       ok,
		Active:       st.ConnectionActive,
		Connecting:   st.Connecting,
		UsingRelay:   st.UsingRelay,
		SessionError: int(st.SessionError),
	}
	if st.RemoteIP != 0 || st.RemotePort != 0 {
		var ip [4]byte
		binary.BigEndian.PutUint32(ip[:], st.RemoteIP)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom4(ip), st.RemotePort).String()
	}
	if ok {
		l.rep.UsingRelay, l.rep.Remote = e.UsingRelay, e.Remote
		if e.SessionError != 0 {
			l.rep.SessionError = e.SessionError
		}
	}
	cmp := e
	cmp.Ms = 0
	if cmp != l.last || len(l.rep.PathLog) == 0 {
		l.last = cmp
		e.Ms = ms(time.Since(l.start))
		l.rep.PathLog = append(l.rep.PathLog, e)
	}
}

// await pumps the loop until a message from the peer equal to want arrives
// (or, with want nil, any message), a connect failure, or the deadline.
func (l *loop) await(want []byte) ([]byte, error) {
	for time.Now().Before(l.deadline) {
		l.tick()
		if l.failed != 0 {
			l.rep.SessionError = int(l.failed)
			return nil, fmt.Errorf("P2PSessionConnectFail: session error %d", l.failed)
		}
		for {
			sz, from, ok := l.n.ReadP2PPacket(l.buf[:], 0)
			if !ok {
				break
			}
			if from != l.peer {
				continue
			}
			got := l.buf[:sz]
			if want == nil || bytes.Equal(got, want) {
				return append([]byte(nil), got...), nil
			}
		}
	}
	return nil, errors.New("timed out")
}

func (l *loop) send(msg []byte) error {
	return l.n.Send(l.peer, msg, p2p.P2PSendReliable, 0)
}

func (l *loop) initiate(settle time.Duration) {
	l.start = time.Now()
	defer func() { l.rep.ElapsedMs = ms(time.Since(l.start)) }()
	first := []byte(fmt.Sprintf("natlab ping 1 from %d at %d", l.rep.ID, l.start.UnixNano()))
	if err := l.send(first); err != nil {
		l.rep.Error = "send: " + err.Error()
		return
	}
	if _, err := l.await(first); err != nil {
		l.rep.Error = "first echo: " + err.Error()
		return
	}
	l.rep.FirstEchoMs = ms(time.Since(l.start))
	fmt.Fprintf(os.Stderr, "labpeer: first echo after %.1f ms\n", l.rep.FirstEchoMs)

	// Let a better path take over, then prove the path we ended on carries
	// data.
	for end := time.Now().Add(settle); time.Now().Before(end) && time.Now().Before(l.deadline); {
		l.tick()
	}
	second := []byte(fmt.Sprintf("natlab ping 2 from %d", l.rep.ID))
	t := time.Now()
	if err := l.send(second); err != nil {
		l.rep.Error = "send: " + err.Error()
		return
	}
	if _, err := l.await(second); err != nil {
		l.rep.Error = "second echo: " + err.Error()
		return
	}
	l.rep.SecondEchoMs = ms(time.Since(t))
	l.rep.OK = true
}

func (l *loop) echo() {
	l.start = time.Now()
	defer func() { l.rep.ElapsedMs = ms(time.Since(l.start)) }()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	for time.Now().Before(l.deadline) {
		select {
		case <-stop:
			l.rep.OK = l.rep.Echoed > 0
			if !l.rep.OK {
				l.rep.Error = "stopped with nothing echoed"
			}
			return
		default:
		}
		l.tick()
		if l.failed != 0 {
			l.rep.SessionError = int(l.failed)
		}
		for {
			sz, from, ok := l.n.ReadP2PPacket(l.buf[:], 0)
			if !ok {
				break
			}
			if from != l.peer {
				continue
			}
			if err := l.send(append([]byte(nil), l.buf[:sz]...)); err != nil {
				l.rep.Error = "echo send: " + err.Error()
				continue
			}
			l.rep.Echoed++
		}
	}
	l.rep.OK = l.rep.Echoed > 0
	if !l.rep.OK {
		l.rep.Error = "timed out with nothing to echo"
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func finish(rep *report) {
	b, _ := json.Marshal(rep)
	os.Stdout.Write(append(b, '\n'))
	if rep.OK {
		os.Exit(0)
	}
	os.Exit(1)
}

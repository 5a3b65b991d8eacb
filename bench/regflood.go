package main

// -regflood: the rendezvous server under a flood of registrations it must
// not take, from thousands of sources, while players register and look each
// other up. All of it on 127.0.0.0/8, bounded in count and time.
//
// Two kinds of flooding source, half each:
//
//   - cookie holders: sources that receive. Each asks for a cookie once, as
//     a client does, then sends REGISTERs under its key with that cookie
//     and a MAC that does not verify: every one would cost the server an
//     X25519 but for the per-source bound on key agreements.
//   - blind: sources that never read, as a forged source cannot. They send
//     REGISTERs without a cookie, each under a fresh SteamID and key, which
//     a server without cookies would give a table slot.
//
// The attacker's messages are built here from the wire layout that
// rendezvous/wire.go documents, as an attacker would build them; their
// length is checked against a real client's REGISTER.
//
// The players are rendezvous clients with keys: each registers while the
// flood runs (the time to an authenticated registration is measured, and
// a registration not confirmed within registerWithin counts as failed),
// then looks up another player every lookupEvery, timing each answer. The
// same is run without the flood first, for the control.

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

const (
	floodPlayers   = 40
	registerWithin = 5 * time.Second
	lookupEvery    = 50 * time.Millisecond
	// Wire facts, from rendezvous/wire.go's layout.
	wireKind          = 0xD0
	wireVersion       = 7
	msgRegister       = 1
	msgChallenge      = 10
	flagMAC           = 1
	headerLen         = 12
	cookieAt          = headerLen + 8 + 4 + 32 // in a REGISTER
	challengeCookieAt = headerLen + 32         // in a CHALLENGE
	cookieLen         = 16
	macLen            = 16
)

// floodParams are the -regflood flags.
type floodParams struct {
	pps, sources, readers int
	duration              time.Duration
}

// floodResult is what one run measured.
type floodResult struct {
	name                      string
	sent                      uint64
	regOK, regFailed          int
	regP50, regMax            time.Duration
	lookups, unanswered       int
	lookP50, lookP99, lookMax time.Duration
	stats                     rendezvous.ServerStats
	cpu                       time.Duration
	wall                      time.Duration
}

func runRegFloodMode(o options, w io.Writer) error {
	p := floodParams{pps: o.floodPPS, sources: o.floodSources, readers: o.floodReaders, duration: o.floodDuration}
	if p.readers == 0 {
		p.readers = runtime.NumCPU()
	}
	regLen, err := registerLen()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "regflood: %d pps from %d sources for %v, %d readers, %d players (REGISTER is %d bytes)\n",
		p.pps, p.sources, p.duration, p.readers, floodPlayers, regLen)
	control, flooded, err := regFlood(p, regLen)
	if err != nil {
		return err
	}
	h := machineHeader(os.Args[1:])
	fmt.Fprintf(w, "# %s\n# %s, %d cores, %s, %s, load %s\n", h.Command, h.CPU, h.Cores, h.Kernel, h.Date, h.Load)
	fmt.Fprintf(w, "# %d pps from %d sources (half cookie holders with bad MACs, half blind) for %v; %d readers; %d players\n",
		p.pps, p.sources, p.duration, p.readers, floodPlayers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tflood sent\tflood pps\tregistrations ok\tfailed\treg p50\treg max\tlookups\tunanswered\tlookup p50\tp99\tmax\tchallenges\trate limited\tbad MAC\tCPU/wall\t")
	for _, r := range []floodResult{control, flooded} {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%v\t%v\t%d\t%d\t%v\t%v\t%v\t%d\t%d\t%d\t%.2f\t\n",
			r.name, r.sent, float64(r.sent)/p.duration.Seconds(), r.regOK, r.regFailed, r.regP50, r.regMax,
			r.lookups, r.unanswered, r.lookP50, r.lookP99, r.lookMax,
			r.stats.Challenges, r.stats.RateLimited, r.stats.BadMAC, r.cpu.Seconds()/r.wall.Seconds())
	}
	tw.Flush()
	fmt.Fprintf(w, "lookup p99 under the flood / without: %.2f\n", float64(flooded.lookP99)/float64(max(control.lookP99, time.Microsecond)))
	return nil
}

// regFlood runs the control, then the flood.
func regFlood(p floodParams, regLen int) (control, flooded floodResult, err error) {
	if control, err = floodRun("control (no flood)", p, 0, regLen); err != nil {
		return
	}
	flooded, err = floodRun("flood", p, p.pps, regLen)
	return
}

// registerLen is the length of a real client's REGISTER, which the
// attacker's must match to be decoded at all.
func registerLen() (int, error) {
	got := make(chan int, 1)
	c, err := rendezvous.NewClient(rendezvous.ClientConfig{
		SteamID: 1, AppID: 480, Server: netip.MustParseAddrPort("127.0.0.1:9"),
		Send: func(b []byte, _ netip.AddrPort) error {
			select {
			case got <- len(b):
			default:
			}
			return nil
		},
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	go c.Register(ctx)
	select {
	case n := <-got:
		return n, nil
	case <-time.After(time.Second):
		return 0, fmt.Errorf("regflood: the client sent no REGISTER")
	}
}

// register is a REGISTER of id under pub, with cookie (nil: none) and, if
// mac, a MAC of random bytes, written over b, regLen bytes.
func register(b []byte, id uint64, pub *[32]byte, cookie *[cookieLen]byte, mac bool) []byte {
	clear(b)
	regLen := len(b)
	b[0], b[1], b[2] = wireKind, wireVersion, msgRegister
	binary.BigEndian.PutUint64(b[4:], mrand.Uint64())
	binary.BigEndian.PutUint64(b[headerLen:], id)
	binary.BigEndian.PutUint32(b[headerLen+8:], 480)
	copy(b[headerLen+12:], pub[:])
	if cookie != nil {
		copy(b[cookieAt:], cookie[:])
	}
	// No addresses, no relayed ones, no options, no token, no
	// certificate: five zero bytes, then zero padding.
	if mac {
		b[3] = flagMAC
		binary.NativeEndian.PutUint64(b[regLen-macLen:], mrand.Uint64())
		binary.NativeEndian.PutUint64(b[regLen-8:], mrand.Uint64())
	}
	return b
}

// floodSource is one attacking socket.
type floodSource struct {
	conn   *net.UDPConn
	id     uint64
	pub    [32]byte
	cookie *[cookieLen]byte // nil: blind
}

// floodRun runs the players against a new server while pps datagrams a
// second (0: none) come from p.sources sources.
func floodRun(name string, p floodParams, pps, regLen int) (floodResult, error) {
	res := floodResult{name: name}
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0", Readers: p.readers})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	server := srv.Addr().(*net.UDPAddr).AddrPort()

	var sources []*floodSource
	defer func() {
		for _, s := range sources {
			s.conn.Close()
		}
	}()
	if pps > 0 {
		if sources, err = openSources(p.sources, server, regLen); err != nil {
			return res, err
		}
	}

	cpu0 := cpuTime()
	start := time.Now()
	stop := make(chan struct{})
	var sent atomic.Uint64
	var wg sync.WaitGroup
	if pps > 0 {
		const senders = 4
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				flood(sources[g*len(sources)/senders:(g+1)*len(sources)/senders], server, regLen, pps/senders, start.Add(p.duration), stop, &sent)
			}()
		}
		// Players come once the flood is under way.
		time.Sleep(time.Second)
	}
	regs, looks, unanswered, err := players(server, start.Add(p.duration))
	close(stop)
	wg.Wait()
	res.wall = time.Since(start)
	res.cpu = cpuTime() - cpu0
	if err != nil {
		return res, err
	}
	res.sent = sent.Load()
	for _, d := range regs {
		if d < 0 {
			res.regFailed++
		} else {
			res.regOK++
		}
	}
	ok := slices.DeleteFunc(slices.Clone(regs), func(d time.Duration) bool { return d < 0 })
	res.regP50, res.regMax = quantile(ok, 0.5), quantile(ok, 1)
	res.lookups, res.unanswered = len(looks), unanswered
	res.lookP50, res.lookP99, res.lookMax = quantile(looks, 0.5), quantile(looks, 0.99), quantile(looks, 1)
	res.stats = srv.Stats()
	return res, nil
}

// openSources binds n sockets on as many loopback addresses, and has the
// first half get a cookie each, as a client would.
func openSources(n int, server netip.AddrPort, regLen int) ([]*floodSource, error) {
	sources := make([]*floodSource, 0, n)
	buf := make([]byte, 2048)
	for i := range n {
		ip := netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)})
		conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			for _, s := range sources {
				s.conn.Close()
			}
			return nil, fmt.Errorf("regflood: source %d: %w", i, err)
		}
		s := &floodSource{conn: conn, id: 1<<40 + uint64(i)}
		rand.Read(s.pub[:])
		sources = append(sources, s)
		if i >= n/2 {
			continue
		}
		// Ask for a cookie, retrying a few times: the server may drop
		// over its limits while the others ask too.
		for try := 0; try < 5 && s.cookie == nil; try++ {
			conn.WriteToUDPAddrPort(register(make([]byte, regLen), s.id, &s.pub, nil, false), server)
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			m, _, err := conn.ReadFromUDPAddrPort(buf)
			if err == nil && m >= challengeCookieAt+cookieLen && buf[2] == msgChallenge {
				s.cookie = new([cookieLen]byte)
				copy(s.cookie[:], buf[challengeCookieAt:])
			}
		}
		if s.cookie == nil {
			return nil, fmt.Errorf("regflood: source %d got no cookie", i)
		}
		// From now on it does not read: what the server sends piles up
		// and is dropped by the kernel.
	}
	return sources, nil
}

// flood sends pps datagrams a second, round robin over sources, until end
// or stop.
func flood(sources []*floodSource, server netip.AddrPort, regLen, pps int, end time.Time, stop <-chan struct{}, sent *atomic.Uint64) {
	const tick = time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	done := 0 // datagrams sent or tried
	next := 0
	b := make([]byte, regLen)
	var pub [32]byte
	for now := time.Now(); now.Before(end); now = time.Now() {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		// What is owed by now, so that late ticks do not lower the rate.
		owed := int(time.Since(start).Seconds()*float64(pps)) - done
		for ; owed > 0; owed-- {
			done++
			s := sources[next%len(sources)]
			next++
			if s.cookie != nil {
				register(b, s.id, &s.pub, s.cookie, true)
			} else {
				for i := 0; i < len(pub); i += 8 {
					binary.NativeEndian.PutUint64(pub[i:], mrand.Uint64())
				}
				register(b, 1<<41+mrand.Uint64N(1<<40), &pub, nil, false)
			}
			if _, err := s.conn.WriteToUDPAddrPort(b, server); err == nil {
				sent.Add(1)
			}
		}
	}
}

// players registers floodPlayers keyed clients, then has each look up
// another every lookupEvery until end. It returns the time each took to
// register (-1: failed), every lookup's round trip, and how many lookups
// got no answer within a second.
func players(server netip.AddrPort, end time.Time) (regs, looks []time.Duration, unanswered int, err error) {
	type player struct {
		conn   *net.UDPConn
		client *rendezvous.Client
		mu     sync.Mutex
		sentAt map[uint64]time.Time // by session ID
		rtts   []time.Duration
	}
	ps := make([]*player, floodPlayers)
	defer func() {
		for _, p := range ps {
			if p != nil {
				p.client.Close()
				p.conn.Close()
			}
		}
	}()
	for i := range ps {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, nil, 0, err
		}
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, 0, err
		}
		p := &player{conn: conn, sentAt: make(map[uint64]time.Time)}
		p.client, err = rendezvous.NewClient(rendezvous.ClientConfig{
			SteamID: uint64(100 + i), AppID: 480, Server: server,
			PublicKey: [32]byte(k.PublicKey().Bytes()), PrivateKey: [32]byte(k.Bytes()),
			Send: func(b []byte, to netip.AddrPort) error {
				_, err := conn.WriteToUDPAddrPort(b, to)
				return err
			},
			OnLookup: func(r rendezvous.LookupResult) {
				now := time.Now()
				p.mu.Lock()
				for sid, at := range p.sentAt {
					if uint64(r.Target) == sid>>32 {
						p.rtts = append(p.rtts, now.Sub(at))
						delete(p.sentAt, sid)
					}
				}
				p.mu.Unlock()
			},
		})
		if err != nil {
			conn.Close()
			return nil, nil, 0, err
		}
		ps[i] = p
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				p.client.HandleInbound(buf[:n], from)
			}
		}()
	}
	// Register all at once, as after a server restart.
	regs = make([]time.Duration, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), registerWithin)
			defer cancel()
			if _, err := p.client.Register(ctx); err != nil {
				regs[i] = -1
				return
			}
			regs[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	// Lookups until end; one outstanding per player, given up after a
	// second (the client retransmits meanwhile).
	for seq := uint64(1); time.Now().Before(end); seq++ {
		now := time.Now()
		for i, p := range ps {
			target := uint64(100 + (i+1)%len(ps))
			p.mu.Lock()
			for sid, at := range p.sentAt {
				if now.Sub(at) > time.Second {
					delete(p.sentAt, sid)
					unanswered++
				}
			}
			if len(p.sentAt) == 0 {
				sid := target<<32 | seq
				p.sentAt[sid] = now
				p.mu.Unlock()
				p.client.Lookup(target, sid)
				continue
			}
			p.mu.Unlock()
		}
		time.Sleep(lookupEvery)
	}
	for _, p := range ps {
		p.mu.Lock()
		looks = append(looks, p.rtts...)
		p.mu.Unlock()
	}
	return regs, looks, unanswered, nil
}

// quantile is the q-quantile of ds (nearest rank); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))].Round(10 * time.Microsecond)
}

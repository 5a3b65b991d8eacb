//go:build linux

package natlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peerReport is labpeer's JSON line.
type peerReport struct {
	Role         string            `json:"role"`
	ID           uint64            `json:"id"`
	Peer         uint64            `json:"peer"`
	OK           bool              `json:"ok"`
	Error        string            `json:"error"`
	SessionError int               `json:"session_error"`
	UsingRelay   bool              `json:"using_relay"`
	Remote       string            `json:"remote"`
	Local        string            `json:"local"`
	FirstEchoMs  float64           `json:"first_echo_ms"`
	SecondEchoMs float64           `json:"second_echo_ms"`
	ElapsedMs    float64           `json:"elapsed_ms"`
	Echoed       int               `json:"echoed"`
	PathLog      []json.RawMessage `json:"path_log"`
}

func (r peerReport) remoteIP() string {
	ap, err := netip.ParseAddrPort(r.Remote)
	if err != nil {
		return ""
	}
	return ap.Addr().String()
}

// path describes where the session ended up, as the report shows it.
func (r peerReport) path() string {
	switch {
	case !r.OK && r.SessionError != 0:
		return fmt.Sprintf("failed: session_error %d", r.SessionError)
	case !r.OK:
		return "failed: " + r.Error
	case r.UsingRelay:
		return "relay " + r.remoteIP()
	default:
		return "direct " + r.remoteIP()
	}
}

type mapReport struct {
	Local   string `json:"local"`
	Targets []struct {
		To    string  `json:"to"`
		Seen  string  `json:"seen"`
		RTTms float64 `json:"rtt_ms"`
		Error string  `json:"error"`
	} `json:"targets"`
	CrossAnswered bool `json:"cross_answered"`
	CrossThen     *struct {
		To    string `json:"to"`
		Seen  string `json:"seen"`
		Error string `json:"error"`
	} `json:"cross_then"`
}

type turnReport struct {
	OK       bool    `json:"ok"`
	Error    string  `json:"error"`
	Mapped   string  `json:"mapped"`
	Relay    string  `json:"relay"`
	EchoSeen string  `json:"echo_seen"`
	EchoFrom string  `json:"echo_from"`
	RTTms    float64 `json:"rtt_ms"`
}

// oneShot runs a lab program to completion in ns and decodes its JSON line.
func (l *lab) oneShot(t *testing.T, ns, name string, timeout time.Duration, v any, argv ...string) error {
	t.Helper()
	p := l.start(t, ns, name, argv...)
	if err := p.wait(timeout); err != nil && p.jsonLine(v) != nil {
		return fmt.Errorf("%s in %s: %v; stderr:\n%s", name, ns, err, tail(p.stderr.String(), 20))
	}
	return p.jsonLine(v)
}

// peerFlags are extra labpeer flags for both peers of every scenario run
// (NATLAB_PEER_FLAGS), e.g. -v for the library's debug log, or
// -opener-ttl 64 to have the openers reach the peer's router.
func peerFlags() []string { return strings.Fields(os.Getenv("NATLAB_PEER_FLAGS")) }

func runs() int {
	if n, err := strconv.Atoi(os.Getenv("NATLAB_RUNS")); err == nil && n > 0 {
		return n
	}
	return 1
}

func TestNATLab(t *testing.T) {
	env := requireLab(t)
	l := newLab(t, env)
	t.Logf("natlab: namespaces %s{core,pub,natA,natB,hostA,hostB}; iptables: %s; link delays: %s (pub %v, A %v, B %v)",
		l.prefix, env.iptables, env.delay, linkDelay["to-pub"], linkDelay["to-a"], linkDelay["to-b"])
	for _, n := range env.notes {
		t.Logf("natlab: note: %s", n)
	}
	if f := peerFlags(); len(f) > 0 {
		t.Logf("natlab: NATLAB_PEER_FLAGS: both peers of every scenario run with %q", f)
	}

	// The harness first: if these fail, a scenario's failure would say
	// nothing about p2pcompat.
	harness := true
	harness = t.Run("topology", l.testTopology) && harness
	harness = t.Run("nat-behaviour", l.testNATBehaviour) && harness
	harness = t.Run("registration", l.testRegistration) && harness
	harness = t.Run("coturn", l.testCoturn) && harness
	if !harness {
		t.Fatal("natlab: the lab itself is broken (see the failed subtests above); scenarios not run")
	}

	var rows []string
	for i, sc := range l.scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			rows = append(rows, l.runScenario(t, i, sc))
		})
	}
	if len(rows) == 0 {
		return
	}
	ready := "ready for NATLAB.md"
	if f := peerFlags(); len(f) > 0 {
		ready = fmt.Sprintf("NOT for NATLAB.md: NATLAB_PEER_FLAGS %q", f)
	}
	t.Logf("natlab: results (NATLAB_RUNS=%d, delays %s, race=%v), %s:\n"+
		"| Scenario | Expected path | Path taken by A (runs) | Runs as expected | Median time to first echo* | Min - max* |\n"+
		"|---|---|---|---|---|---|\n%s",
		runs(), env.delay, raceEnabled, ready, strings.Join(rows, "\n")+
			"\n* over the runs that went as expected; for symmetric-symmetric-no-relay, the time to P2PSessionConnectFail")
}

// testTopology: the core is a dead end for anything outside the lab, and
// each host reaches the public side through its NAT with the round trip
// its links' delays add up to.
func (l *lab) testTopology(t *testing.T) {
	if out := l.must(t, "", "ip", "-n", l.ns("core"), "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Errorf("core router has a default route: %q", out)
	}
	for _, h := range []struct{ host, wan, link string }{{"hostA", natAWAN, "to-a"}, {"hostB", natBWAN, "to-b"}} {
		var m mapReport
		if err := l.oneShot(t, h.host, "labprobe map", 20*time.Second, &m,
			l.binary("labprobe"), "map", "-to", echoAddrs[0], "-count", "5"); err != nil {
			t.Errorf("%s: %v", h.host, err)
			continue
		}
		tg := m.Targets[0]
		if tg.Error != "" || tg.Seen == "" {
			t.Errorf("%s cannot reach the echo at %s through its NAT: %+v", h.host, tg.To, tg)
			continue
		}
		want := 2 * oneWay(h.link, "to-pub")
		rtt := time.Duration(tg.RTTms * float64(time.Millisecond))
		t.Logf("%s -> %s: seen as %s, round trip %.1f ms (links add up to %v)", h.host, tg.To, tg.Seen, tg.RTTms, want)
		if !strings.HasPrefix(tg.Seen, h.wan+":") {
			t.Errorf("%s: the echo saw %s, want the NAT's WAN address %s", h.host, tg.Seen, h.wan)
		}
		if rtt < want*95/100 || rtt > want+150*time.Millisecond {
			t.Errorf("%s: round trip %v, want about %v: the link delays are not in place", h.host, rtt, want)
		}
	}
}

// testNATBehaviour: a cone router keeps one public port for every
// destination, a symmetric one picks a new port per destination, and both
// drop what arrives from where the inside never sent.
func (l *lab) testNATBehaviour(t *testing.T) {
	for _, kind := range []natKind{cone, symmetric} {
		l.setNAT(t, kind)
		for _, h := range []struct{ host, router, wan, ip string }{{"hostA", "natA", natAWAN, hostAIP}, {"hostB", "natB", natBWAN, hostBIP}} {
			var m mapReport
			if err := l.oneShot(t, h.host, "labprobe map", 30*time.Second, &m,
				l.binary("labprobe"), "map", "-to", strings.Join(echoAddrs[:3], ","), "-count", "1", "-cross", "3", "-cross-ping", echoAddrs[3], "-wait", "1s"); err != nil {
				t.Errorf("%s %s: %v", kind, h.host, err)
				continue
			}
			ports := map[string]bool{}
			var seen []string
			for _, tg := range m.Targets {
				ap, err := netip.ParseAddrPort(tg.Seen)
				if err != nil || ap.Addr().String() != h.wan {
					t.Errorf("%s %s -> %s: seen as %q (%s), want %s:port", kind, h.host, tg.To, tg.Seen, tg.Error, h.wan)
					continue
				}
				ports[strconv.Itoa(int(ap.Port()))] = true
				seen = append(seen, tg.Seen)
			}
			t.Logf("%s %s (local %s): seen as %s; unsolicited packet from %s got through: %v", kind, h.host, m.Local, strings.Join(seen, ", "), echoAddrs[3], m.CrossAnswered)
			switch {
			case kind == cone && len(ports) != 1:
				t.Errorf("cone %s: public ports %v differ per destination; want one mapping for all", h.host, seen)
			case kind == symmetric && len(ports) < 2:
				t.Errorf("symmetric %s: one public port %v for three destinations; want a new one per destination", h.host, seen)
			}
			if m.CrossAnswered {
				t.Errorf("%s %s: an unsolicited packet from %s got through the NAT", kind, h.host, echoAddrs[3])
			}
			// The trap of issue 3: the unsolicited packet left a conntrack
			// record in the router, so the flow toward its sender, started
			// afterwards, cannot have the port a cone NAT gave every other
			// destination.
			if ct := m.CrossThen; ct == nil || ct.Seen == "" {
				t.Errorf("%s %s: no answer from %s after its unsolicited packet: %+v", kind, h.host, echoAddrs[3], ct)
			} else {
				t.Logf("%s %s: then -> %s: seen as %s", kind, h.host, ct.To, ct.Seen)
				if ap, err := netip.ParseAddrPort(ct.Seen); kind == cone && err == nil && len(ports) == 1 && ports[strconv.Itoa(int(ap.Port()))] {
					t.Errorf("cone %s: the flow toward %s kept port %d although that sender's unsolicited packet came first; the router does not show the netfilter trap of issue 3", h.host, ct.To, ap.Port())
				}
			}
			ct, err := l.run(h.router, 10*time.Second, "conntrack", "-L", "-p", "udp", "--orig-src", h.ip)
			if err != nil {
				t.Errorf("conntrack in %s: %v", h.router, err)
			} else {
				t.Logf("%s conntrack:\n%s", h.router, strings.TrimSpace(ct))
			}
		}
	}
}

// testRegistration: through either kind of NAT, each host registers with the
// rendezvous, and a lookup of an unknown user comes back at once as
// DestinationNotLoggedOn: both directions through the NAT work.
func (l *lab) testRegistration(t *testing.T) {
	srv, err := l.startServer(t)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop(5 * time.Second)
	id := uint64(76561197960265728)
	for _, kind := range []natKind{cone, symmetric} {
		l.setNAT(t, kind)
		for _, host := range []string{"hostA", "hostB"} {
			id++
			var r peerReport
			err := l.oneShot(t, host, "labpeer", 30*time.Second, &r, l.binary("labpeer"),
				"-id", fmt.Sprint(id), "-peer", "999", "-app", "480", "-rendezvous", serverIP+":"+serverPort,
				"-connect-timeout", "5s", "-timeout", "15s")
			if err != nil {
				t.Errorf("%s %s: %v", kind, host, err)
				continue
			}
			t.Logf("%s %s: local %s, talking to unknown user 999: session_error %d after %.1f ms (%s)", kind, host, r.Local, r.SessionError, r.ElapsedMs, r.Error)
			if r.OK || r.SessionError != 3 {
				t.Errorf("%s %s: want session_error 3 (DestinationNotLoggedOn), got %+v", kind, host, r)
			} else if r.ElapsedMs > 3000 {
				t.Errorf("%s %s: DestinationNotLoggedOn took %.0f ms; want it at once", kind, host, r.ElapsedMs)
			}
		}
	}
}

// testCoturn: coturn answers a TURN allocation with the shared-secret
// credentials from behind a symmetric NAT, and relays to and from a peer.
func (l *lab) testCoturn(t *testing.T) {
	l.setNAT(t, symmetric)
	for _, h := range []struct{ host, wan string }{{"hostA", natAWAN}, {"hostB", natBWAN}} {
		var r turnReport
		if err := l.oneShot(t, h.host, "labprobe turn", 30*time.Second, &r, l.binary("labprobe"), "turn",
			"-server", coturnIP+":"+serverPort, "-secret", l.turnSecret, "-realm", turnRealm, "-peer", echoAddrs[0]); err != nil {
			t.Errorf("%s: %v", h.host, err)
			continue
		}
		t.Logf("%s: TURN mapped %s, relay %s, echo saw %s, answered from %s, %.1f ms", h.host, r.Mapped, r.Relay, r.EchoSeen, r.EchoFrom, r.RTTms)
		switch {
		case !r.OK:
			t.Errorf("%s: TURN allocation through coturn failed: %s", h.host, r.Error)
		case !strings.HasPrefix(r.Mapped, h.wan+":"):
			t.Errorf("%s: coturn saw us as %s, want %s:port", h.host, r.Mapped, h.wan)
		case !strings.HasPrefix(r.Relay, coturnIP+":"):
			t.Errorf("%s: relay address %s, want %s:port", h.host, r.Relay, coturnIP)
		case r.EchoSeen != r.Relay:
			t.Errorf("%s: the echo saw %s, want the relay address %s", h.host, r.EchoSeen, r.Relay)
		}
	}
}

type scenario struct {
	name           string
	nat            natKind
	server         []string // p2pcompat-server flags besides -listen
	relayA, relayB bool     // AllowP2PPacketRelay on each side
	connectTimeout time.Duration
	// lateOffer > 0 holds the rendezvous's datagrams to natB that much
	// longer in the core: B learns of A (the forwarded offer) that long
	// after A learned of B (see trap_test.go).
	lateOffer time.Duration
	expected  string                         // the path, for the results table
	check     func(a, b peerReport) []string // what is wrong with a run
}

func (l *lab) scenarios() []scenario {
	embedded := []string{"-relay-ip", serverIP}
	return []scenario{{
		// The embedded relay is there, and must not be the path that stays.
		name: "cone-cone", nat: cone, server: embedded, relayA: true, relayB: true,
		connectTimeout: 10 * time.Second, expected: "direct",
		check: func(a, b peerReport) []string {
			return slices.Concat(expectOK(a, b), expectPath("A", a, false, natBWAN), expectPath("B", b, false, natAWAN))
		},
	}, {
		// The trap of issue 3, provoked: A's full probes reach natB long
		// before B has sent anything toward A. The embedded relay opens
		// the session meanwhile; cone-to-cone must still end direct.
		name: "cone-cone-late-offer", nat: cone, server: embedded, relayA: true, relayB: true,
		connectTimeout: 10 * time.Second, lateOffer: lateOfferDelay, expected: "direct (offer to B 400 ms late)",
		check: func(a, b peerReport) []string {
			return slices.Concat(expectOK(a, b), expectPath("A", a, false, natBWAN), expectPath("B", b, false, natAWAN))
		},
	}, {
		// The same with no relay to fall back on: it must open direct,
		// not time out.
		name: "cone-cone-late-offer-no-relay", nat: cone, server: embedded, relayA: false, relayB: false,
		connectTimeout: 10 * time.Second, lateOffer: lateOfferDelay, expected: "direct (offer to B 400 ms late), no relay",
		check: func(a, b peerReport) []string {
			return slices.Concat(expectOK(a, b), expectPath("A", a, false, natBWAN), expectPath("B", b, false, natAWAN))
		},
	}, {
		name: "symmetric-symmetric-embedded-relay", nat: symmetric, server: embedded, relayA: true, relayB: true,
		connectTimeout: 10 * time.Second, expected: "relay " + serverIP + " (embedded)",
		check: func(a, b peerReport) []string {
			return slices.Concat(expectOK(a, b), expectPath("A", a, true, serverIP), expectPath("B", b, true, serverIP))
		},
	}, {
		name: "symmetric-symmetric-coturn", nat: symmetric,
		server: []string{"-turn", coturnIP + ":" + serverPort, "-turn-secret", l.turnSecret},
		relayA: true, relayB: true,
		connectTimeout: 10 * time.Second, expected: "relay " + coturnIP + " (coturn)",
		check: func(a, b peerReport) []string {
			return slices.Concat(expectOK(a, b), expectPath("A", a, true, coturnIP), expectPath("B", b, true, coturnIP))
		},
	}, {
		// A relay is on offer; both sides refuse it.
		name: "symmetric-symmetric-no-relay", nat: symmetric, server: embedded, relayA: false, relayB: false,
		connectTimeout: 5 * time.Second, expected: "none: Timeout (4)",
		check: func(a, b peerReport) []string {
			var bad []string
			if a.OK || a.SessionError != 4 {
				bad = append(bad, fmt.Sprintf("A: want the session to fail with session_error 4 (Timeout), got ok=%v session_error=%d error=%q", a.OK, a.SessionError, a.Error))
			} else if a.ElapsedMs < 4500 || a.ElapsedMs > 10000 {
				bad = append(bad, fmt.Sprintf("A: Timeout after %.0f ms; want it after the 5 s ConnectTimeout", a.ElapsedMs))
			}
			if b.Echoed != 0 {
				bad = append(bad, fmt.Sprintf("B echoed %d messages over a path that should not exist (remote %s, relay %v)", b.Echoed, b.Remote, b.UsingRelay))
			}
			return bad
		},
	}}
}

func expectOK(a, b peerReport) []string {
	var bad []string
	if !a.OK {
		bad = append(bad, fmt.Sprintf("A: no echo: %s (session_error %d)", a.Error, a.SessionError))
	}
	if b.Echoed < 2 {
		bad = append(bad, fmt.Sprintf("B echoed %d messages, want 2", b.Echoed))
	}
	return bad
}

func expectPath(who string, r peerReport, relay bool, ip string) []string {
	if !r.OK && r.Echoed == 0 {
		return nil // no path to judge; expectOK said so
	}
	if r.UsingRelay != relay || r.remoteIP() != ip {
		return []string{fmt.Sprintf("%s: ended on using_relay=%v remote=%s; want using_relay=%v remote %s:port", who, r.UsingRelay, r.Remote, relay, ip)}
	}
	return nil
}

// runScenario runs one scenario NATLAB_RUNS times on a fresh server and
// returns its row of the results table.
func (l *lab) runScenario(t *testing.T, index int, sc scenario) string {
	l.setNAT(t, sc.nat)
	row := func(taken string, asExpected, n int, times []float64) string {
		med, span := "-", "-"
		if len(times) > 0 {
			slices.Sort(times)
			med = fmt.Sprintf("%.1f ms", median(times))
			span = fmt.Sprintf("%.1f - %.1f ms", times[0], times[len(times)-1])
		}
		return fmt.Sprintf("| %s | %s | %s | %d/%d | %s | %s |", sc.name, sc.expected, taken, asExpected, n, med, span)
	}
	srv, err := l.startServer(t, sc.server...)
	if err != nil {
		t.Error(err)
		return row("not run: the server did not start", 0, runs(), nil)
	}
	defer srv.stop(5 * time.Second)

	var hold *lateOffer
	if sc.lateOffer > 0 {
		if hold, err = l.holdServerToB(t, sc.lateOffer); err != nil {
			t.Error(err)
			return row("not run: "+err.Error(), 0, runs(), nil)
		}
		t.Logf("late offer: %s", hold.note)
	}

	var times []float64
	taken := map[string]int{}
	good := 0
	for i := 0; i < runs(); i++ {
		l.flushConntrack(t)
		idA := 76561198000000000 + uint64(index)*1000 + uint64(i)*2
		held := 0
		if hold != nil {
			if held, err = hold.packets(); err != nil {
				t.Errorf("run %d: %v", i+1, err)
			}
		}
		a, b, bReady, err := l.runPair(t, sc, idA, idA+1)
		if err != nil {
			t.Errorf("run %d: %v", i+1, err)
			taken["harness error"]++
			l.logConntrack(t, i+1, true)
			continue
		}
		if hold != nil {
			// The lab's side of the bargain: the offer did go through the
			// hold, and B's registration (answered through it too) was late.
			n, err := hold.packets()
			t.Logf("run %d: late offer: %d datagrams from the server to B held; B registered after %v", i+1, n-held, bReady.Round(time.Millisecond))
			if err != nil || n-held == 0 || bReady < sc.lateOffer {
				t.Errorf("run %d: the late offer is not in place: %d datagrams held (%v), B registered after %v (want at least %v)", i+1, n-held, err, bReady, sc.lateOffer)
				taken["harness error"]++
				continue
			}
		}
		taken[a.path()]++
		t.Logf("run %d: A %s: first echo %.1f ms, second %.1f ms, elapsed %.1f ms; B %s, echoed %d, registered after %v",
			i+1, a.path(), a.FirstEchoMs, a.SecondEchoMs, a.ElapsedMs, b.path(), b.Echoed, bReady.Round(time.Millisecond))
		t.Logf("run %d: A path log %s", i+1, joinRaw(a.PathLog))
		t.Logf("run %d: B path log %s", i+1, joinRaw(b.PathLog))
		bad := sc.check(a, b)
		for _, e := range bad {
			t.Errorf("run %d: %s", i+1, e)
		}
		if len(bad) > 0 {
			// Whether the routers show the trap of issue 3 (cone), and
			// their tables as they were when the run ended.
			l.logConntrack(t, i+1, true)
		} else if sc.lateOffer > 0 {
			l.logConntrack(t, i+1, false)
		}
		if len(bad) == 0 {
			good++
			if a.OK {
				times = append(times, a.FirstEchoMs)
			} else {
				times = append(times, a.ElapsedMs) // the time to Timeout
			}
		}
	}
	var parts []string
	for p, n := range taken {
		parts = append(parts, fmt.Sprintf("%s (%d)", p, n))
	}
	slices.Sort(parts)
	r := row(strings.Join(parts, ", "), good, runs(), times)
	t.Logf("NATLAB.md row: %s", r)
	return r
}

// runPair starts B (the echo side) behind natB, waits for its registration,
// then runs A behind natA to the end, then stops B. bReady is how long B
// took to register.
func (l *lab) runPair(t *testing.T, sc scenario, idA, idB uint64) (a, b peerReport, bReady time.Duration, err error) {
	common := []string{"-app", "480", "-rendezvous", serverIP + ":" + serverPort,
		"-connect-timeout", sc.connectTimeout.String()}
	aTimeout := sc.connectTimeout + 15*time.Second
	started := time.Now()
	pb := l.start(t, "hostB", "labpeer B", append([]string{l.binary("labpeer"), "-echo",
		"-id", fmt.Sprint(idB), "-peer", fmt.Sprint(idA), "-relay=" + strconv.FormatBool(sc.relayB),
		"-timeout", (aTimeout + 30*time.Second).String()}, slices.Concat(common, peerFlags())...)...)
	if err := pb.waitOutput("labpeer: ready", 20*time.Second); err != nil {
		return a, b, 0, fmt.Errorf("B did not register: %w", err)
	}
	bReady = time.Since(started)
	pa := l.start(t, "hostA", "labpeer A", append([]string{l.binary("labpeer"),
		"-id", fmt.Sprint(idA), "-peer", fmt.Sprint(idB), "-relay=" + strconv.FormatBool(sc.relayA),
		"-timeout", aTimeout.String()}, slices.Concat(common, peerFlags())...)...)
	waitErr := pa.wait(aTimeout + 20*time.Second)
	if err := pa.jsonLine(&a); err != nil {
		pb.stop(5 * time.Second)
		return a, b, bReady, fmt.Errorf("A: %v (%v)", err, waitErr)
	}
	pb.stop(5 * time.Second)
	if err := pb.jsonLine(&b); err != nil {
		return a, b, bReady, fmt.Errorf("B: %v", err)
	}
	return a, b, bReady, nil
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func joinRaw(rs []json.RawMessage) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r))
	}
	return "[" + strings.Join(s, ",") + "]"
}

//go:build linux

package natlab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The late offer: the rendezvous's datagrams to natB's WAN address are held
// in the core for lateOfferDelay on top of their link delay, so that B learns
// of A (the forwarded offer) long after A learned of B (the lookup's answer).
// Only that flow is held: A<->B traffic, B->server and the server's datagrams
// to natA go at link speed. Where the kernel has the u32 match, only the
// rendezvous protocol's own messages (first payload byte 0xD0) are held, so
// STUN and TURN answers from the same port (B's relay) are not.
const (
	lateOfferDelay = 400 * time.Millisecond
	lateOfferQueue = 10 // NFQUEUE number; the link delays use 1-6
)

// rendezvousKind matches a UDP datagram whose first payload byte is the
// rendezvous protocol's kind byte, 0xD0 (see rendezvous/wire.go): the IP
// header length, then 8 bytes of UDP header.
const rendezvousKind = "0>>22&0x3C@8>>24=0xD0"

// lateOffer is the hold on the server->natB flow while a scenario runs.
type lateOffer struct {
	l    *lab
	rule []string // the rule's match and target, for -I and -D
	note string   // what is held, for the log
}

// holdServerToB sends the server's datagrams toward natB's WAN address to a
// queue of their own, released after the link delay plus extra. The rule
// and the program go away with t.
func (l *lab) holdServerToB(t *testing.T, extra time.Duration) (*lateOffer, error) {
	t.Helper()
	if !l.env.nfqueueOK {
		return nil, fmt.Errorf("the late offer needs the NFQUEUE target, which does not work here")
	}
	hold := extra
	if l.env.delay == "nfqueue" {
		// This rule comes first, so the link delay program never sees
		// these packets: the queue holds them for the links' delay too.
		// Under netem the links delay them anyway.
		hold += oneWay("to-pub", "to-b")
	}
	d := l.start(t, "core", "labprobe delay (late offer)", l.binary("labprobe"), "delay", "-q", fmt.Sprintf("%d:%v", lateOfferQueue, hold))
	if err := d.waitOutput("ready", 10*time.Second); err != nil {
		return nil, fmt.Errorf("late-offer delay program: %w", err)
	}
	base := []string{"-i", "to-pub", "-o", "to-b", "-p", "udp", "-s", serverIP, "--sport", serverPort, "-d", natBWAN}
	target := []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(lateOfferQueue)}
	lo := &lateOffer{l: l}
	lo.rule = append(append(append([]string{}, base...), "-m", "u32", "--u32", rendezvousKind), target...)
	lo.note = fmt.Sprintf("rendezvous messages (first payload byte 0xD0) from %s:%s to %s held %v in the core (link delays included)", serverIP, serverPort, natBWAN, hold)
	if _, err := l.run("core", 20*time.Second, append([]string{l.env.iptables, "-I", "FORWARD", "1"}, lo.rule...)...); err != nil {
		// No u32 match in this kernel: hold the whole flow, STUN and
		// TURN from the server's port included.
		lo.rule = append(append([]string{}, base...), target...)
		lo.note = fmt.Sprintf("every datagram from %s:%s to %s held %v in the core (no u32 match here: %v)", serverIP, serverPort, natBWAN, hold, firstLine(err))
		if _, err := l.run("core", 20*time.Second, append([]string{l.env.iptables, "-I", "FORWARD", "1"}, lo.rule...)...); err != nil {
			return nil, fmt.Errorf("late-offer rule: %w", err)
		}
	}
	// Registered after the program's own cleanup, so it runs before it:
	// the rule is gone before its queue's reader stops.
	t.Cleanup(func() {
		l.run("core", 20*time.Second, append([]string{l.env.iptables, "-D", "FORWARD"}, lo.rule...)...)
	})
	return lo, nil
}

// packets is how many packets the hold has taken so far.
func (lo *lateOffer) packets() (int, error) {
	out, err := lo.l.run("core", 10*time.Second, lo.l.env.iptables, "-L", "FORWARD", "-v", "-n", "-x")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "NFQUEUE" && strings.Contains(line, "NFQUEUE num "+strconv.Itoa(lateOfferQueue)) {
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("no NFQUEUE %d rule in the core's FORWARD chain:\n%s", lateOfferQueue, out)
}

// ctEntry is one line of `conntrack -L`: the original and the reply
// direction's tuple.
type ctEntry struct {
	line                   string
	origSrc, origDst       string
	origSport, origDport   string
	replySrc, replyDst     string
	replySport, replyDport string
	unreplied              bool
}

func parseConntrack(out string) []ctEntry {
	var es []ctEntry
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "udp") {
			continue
		}
		e := ctEntry{line: line}
		seen := map[string]int{}
		for _, f := range strings.Fields(line) {
			if f == "[UNREPLIED]" {
				e.unreplied = true
				continue
			}
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			n := seen[k]
			seen[k]++
			var dst *[2]*string
			switch k {
			case "src":
				dst = &[2]*string{&e.origSrc, &e.replySrc}
			case "dst":
				dst = &[2]*string{&e.origDst, &e.replyDst}
			case "sport":
				dst = &[2]*string{&e.origSport, &e.replySport}
			case "dport":
				dst = &[2]*string{&e.origDport, &e.replyDport}
			}
			if dst != nil && n < 2 {
				*dst[n] = v
			}
		}
		es = append(es, e)
	}
	return es
}

// trapEvidence reads a cone router's conntrack table for the trap of issue
// 3: an unreplied flow that the peer's router (peerWAN) started toward our
// WAN port P, and our host's own flow from port P toward that same peer
// address, which therefore left with a public port other than P. It returns
// what it found, one finding per line, whether that is the trap, and the
// public ports our host's flows toward the peer were remapped to.
func trapEvidence(ct, wan, peerWAN, host string) (findings []string, trapped bool, remapped []string) {
	es := parseConntrack(ct)
	inbound := map[string]ctEntry{} // "peer ip:port -> our port" of unsolicited flows
	for _, e := range es {
		if e.origSrc == peerWAN && e.origDst == wan && e.unreplied {
			inbound[e.origSrc+":"+e.origSport+">"+e.origDport] = e
			findings = append(findings, fmt.Sprintf("unreplied inbound flow %s:%s -> %s:%s (the peer's probe, unsolicited)", e.origSrc, e.origSport, wan, e.origDport))
		}
	}
	for _, e := range es {
		if e.origSrc != host || e.origDst != peerWAN {
			continue
		}
		public := e.replyDport
		switch {
		case public == e.origSport:
			findings = append(findings, fmt.Sprintf("outbound flow %s:%s -> %s:%s kept public port %s", host, e.origSport, peerWAN, e.origDport, public))
		default:
			remapped = append(remapped, public)
			why := ""
			if _, ok := inbound[peerWAN+":"+e.origDport+">"+e.origSport]; ok {
				why = fmt.Sprintf(": port %s was taken by the unreplied inbound flow from %s:%s, THE TRAP", e.origSport, peerWAN, e.origDport)
				trapped = true
			}
			findings = append(findings, fmt.Sprintf("outbound flow %s:%s -> %s:%s remapped to public port %s%s", host, e.origSport, peerWAN, e.origDport, public, why))
		}
	}
	if len(findings) == 0 {
		findings = append(findings, "no flows between "+wan+" and "+peerWAN)
	}
	return findings, trapped, remapped
}

// logConntrack logs both home routers' UDP conntrack tables and, for cone
// routers, whether they show the trap. It returns whether either does.
func (l *lab) logConntrack(t *testing.T, run int, full bool) bool {
	t.Helper()
	trap := false
	routers := []struct{ router, wan, peerWAN, host string }{
		{"natA", natAWAN, natBWAN, hostAIP},
		{"natB", natBWAN, natAWAN, hostBIP},
	}
	tables := make([]string, len(routers))
	for i, r := range routers {
		ct, err := l.run(r.router, 10*time.Second, "conntrack", "-L", "-p", "udp")
		if err != nil {
			t.Logf("run %d: conntrack in %s: %v", run, r.router, err)
		}
		tables[i] = ct
	}
	for i, r := range routers {
		ct := tables[i]
		if ct == "" {
			continue
		}
		if full {
			var lines []string
			for _, e := range parseConntrack(ct) {
				lines = append(lines, e.line)
			}
			t.Logf("run %d: %s conntrack (udp):\n%s", run, r.router, strings.Join(lines, "\n"))
		}
		if l.nat != cone {
			continue // a symmetric router remaps every flow by design
		}
		findings, trapped, remapped := trapEvidence(ct, r.wan, r.peerWAN, r.host)
		trap = trap || trapped
		// The other half: the peer's router filtered what left from the
		// remapped port (it has no flow toward that port).
		for _, e := range parseConntrack(tables[1-i]) {
			if e.origSrc == r.wan && e.origDst == r.peerWAN && e.unreplied && slices.Contains(remapped, e.origSport) {
				findings = append(findings, fmt.Sprintf("%s filtered the packets from the remapped port: unreplied inbound flow %s:%s -> %s:%s there",
					routers[1-i].router, r.wan, e.origSport, r.peerWAN, e.origDport))
			}
		}
		t.Logf("run %d: %s trap of issue 3: %v\n  %s", run, r.router, trapped, strings.Join(findings, "\n  "))
	}
	return trap
}

// TestTrapEvidence: the conntrack reading, on the tables of a run that fell
// into the trap (natB) and a router that merely filtered (natA).
func TestTrapEvidence(t *testing.T) {
	natB := `udp      17 29 src=198.18.20.2 dst=198.18.1.2 sport=59549 dport=38776 [UNREPLIED] src=198.18.1.2 dst=198.18.2.2 sport=38776 dport=20372 mark=0 use=1
udp      17 119 src=198.18.20.2 dst=198.18.0.2 sport=59549 dport=3478 src=198.18.0.2 dst=198.18.2.2 sport=3478 dport=59549 [ASSURED] mark=0 use=1
udp      17 29 src=198.18.1.2 dst=198.18.2.2 sport=38776 dport=59549 [UNREPLIED] src=198.18.2.2 dst=198.18.1.2 sport=59549 dport=38776 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.`
	natA := `udp      17 29 src=198.18.10.2 dst=198.18.2.2 sport=38776 dport=59549 [UNREPLIED] src=198.18.2.2 dst=198.18.1.2 sport=59549 dport=38776 mark=0 use=1
udp      17 29 src=198.18.2.2 dst=198.18.1.2 sport=20372 dport=38776 [UNREPLIED] src=198.18.1.2 dst=198.18.2.2 sport=38776 dport=20372 mark=0 use=1`
	if n := len(parseConntrack(natB)); n != 3 {
		t.Fatalf("parsed %d entries, want 3", n)
	}
	f, trapped, remapped := trapEvidence(natB, natBWAN, natAWAN, hostBIP)
	if !trapped || !slices.Equal(remapped, []string{"20372"}) {
		t.Errorf("natB: trapped %v, remapped %v, want true [20372]; findings %q", trapped, remapped, f)
	}
	f, trapped, remapped = trapEvidence(natA, natAWAN, natBWAN, hostAIP)
	if trapped || len(remapped) != 0 || len(f) != 2 {
		t.Errorf("natA: trapped %v, remapped %v, want false []; findings %q", trapped, remapped, f)
	}
}

//go:build linux

package natlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The lab's addresses, all inside 198.18.0.0/15 (see NATLAB.md for the
// picture). The core router has no default route and no link to the host,
// so a packet to anything else has nowhere to go.
const (
	coreOnPub = "198.18.0.1"
	serverIP  = "198.18.0.2" // p2pcompat-server (rendezvous, STUN, embedded relay)
	coturnIP  = "198.18.0.3" // coturn
	echoIP    = "198.18.0.4" // labprobe echo, for the topology checks

	coreOnA = "198.18.1.1"
	natAWAN = "198.18.1.2"
	natALAN = "198.18.10.1"
	hostAIP = "198.18.10.2"

	coreOnB = "198.18.2.1"
	natBWAN = "198.18.2.2"
	natBLAN = "198.18.20.1"
	hostBIP = "198.18.20.2"

	serverPort = "3478"
	turnRealm  = "p2pcompat"
)

// The one-way delay of each core link, both directions. They differ so
// that a mixed-up path shows in the timings.
var linkDelay = map[string]time.Duration{
	"to-pub": 10 * time.Millisecond, // core <-> pub
	"to-a":   25 * time.Millisecond, // core <-> natA
	"to-b":   40 * time.Millisecond, // core <-> natB
}

// oneWay is the delay between two core links' far ends.
func oneWay(a, b string) time.Duration { return linkDelay[a] + linkDelay[b] }

// The echo's sockets: the NAT checks ping the first three from one socket
// and have the fourth, which they never pinged, answer unsolicited.
var echoAddrs = []string{echoIP + ":7000", echoIP + ":7001", echoIP + ":7002", echoIP + ":7003"}

type natKind string

const (
	cone      natKind = "cone"      // MASQUERADE: the source port kept for every destination
	symmetric natKind = "symmetric" // MASQUERADE --random-fully: a new port per destination
)

type lab struct {
	prefix     string // namespace names are prefix+role, prefix unique per test process
	env        labEnv
	bin        string // the built programs
	tmp        string
	turnSecret string
	created    []string
	nat        natKind
	coturn     *proc
}

func (l *lab) ns(role string) string { return l.prefix + role }

func (l *lab) binary(name string) string { return filepath.Join(l.bin, name) }

// buildPrograms builds the server and the lab programs into dir, with
// -race when this test binary has it.
func buildPrograms(t *testing.T, dir string) {
	t.Helper()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args,
		"github.com/p2pcompat/p2pcompat/cmd/p2pcompat-server",
		"github.com/p2pcompat/p2pcompat/natlab/labpeer",
		"github.com/p2pcompat/p2pcompat/natlab/labprobe",
	)
	start := time.Now()
	cmd := exec.Command("go", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("natlab: go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("natlab: built p2pcompat-server, labpeer, labprobe (race=%v) in %v", raceEnabled, time.Since(start).Round(time.Millisecond))
}

// newLab builds the topology. Everything it makes is torn down by t's
// cleanup, in reverse order, whether the test passes or not.
func newLab(t *testing.T, env labEnv) *lab {
	t.Helper()
	l := &lab{
		prefix: fmt.Sprintf("natlab%d-", os.Getpid()),
		env:    env,
		tmp:    t.TempDir(),
	}
	l.bin = filepath.Join(l.tmp, "bin")
	buildPrograms(t, l.bin)
	secret := make([]byte, 16)
	rand.Read(secret)
	l.turnSecret = hex.EncodeToString(secret)

	// Registered first, so it runs last: after every process's own cleanup.
	t.Cleanup(func() {
		for i := len(l.created) - 1; i >= 0; i-- {
			removeNamespace(l.created[i])
		}
	})
	for _, role := range []string{"core", "pub", "natA", "natB", "hostA", "hostB"} {
		l.must(t, "", "ip", "netns", "add", l.ns(role))
		l.created = append(l.created, l.ns(role))
		l.must(t, "", "ip", "-n", l.ns(role), "link", "set", "lo", "up")
		// IPv4 only: no router solicitations or DAD chatter on the links.
		l.sysctl(role, "net/ipv6/conf/all/disable_ipv6", "1")
		l.sysctl(role, "net/ipv6/conf/default/disable_ipv6", "1")
	}

	// veth pairs: (namespace, interface) <-> (namespace, interface)
	links := [][4]string{
		{"core", "to-pub", "pub", "eth0"},
		{"core", "to-a", "natA", "wan"},
		{"core", "to-b", "natB", "wan"},
		{"natA", "lan", "hostA", "eth0"},
		{"natB", "lan", "hostB", "eth0"},
	}
	for _, k := range links {
		l.must(t, "", "ip", "-n", l.ns(k[0]), "link", "add", k[1], "type", "veth", "peer", "name", k[3], "netns", l.ns(k[2]))
	}
	addrs := [][3]string{
		{"core", "to-pub", coreOnPub + "/24"},
		{"core", "to-a", coreOnA + "/24"},
		{"core", "to-b", coreOnB + "/24"},
		{"pub", "eth0", serverIP + "/24"},
		{"pub", "eth0", coturnIP + "/24"},
		{"pub", "eth0", echoIP + "/24"},
		{"natA", "wan", natAWAN + "/24"},
		{"natA", "lan", natALAN + "/24"},
		{"natB", "wan", natBWAN + "/24"},
		{"natB", "lan", natBLAN + "/24"},
		{"hostA", "eth0", hostAIP + "/24"},
		{"hostB", "eth0", hostBIP + "/24"},
	}
	for _, a := range addrs {
		l.must(t, "", "ip", "-n", l.ns(a[0]), "addr", "add", a[2], "dev", a[1])
	}
	for _, k := range links {
		l.must(t, "", "ip", "-n", l.ns(k[0]), "link", "set", k[1], "up")
		l.must(t, "", "ip", "-n", l.ns(k[2]), "link", "set", k[3], "up")
	}
	for _, r := range [][2]string{{"pub", coreOnPub}, {"natA", coreOnA}, {"natB", coreOnB}, {"hostA", natALAN}, {"hostB", natBLAN}} {
		l.must(t, "", "ip", "-n", l.ns(r[0]), "route", "add", "default", "via", r[1])
	}
	for _, router := range []string{"core", "natA", "natB"} {
		if err := l.sysctl(router, "net/ipv4/ip_forward", "1"); err != nil {
			t.Fatalf("natlab: %v", err)
		}
	}

	l.setupDelays(t)
	for _, router := range []string{"natA", "natB"} {
		l.setupFirewall(t, router)
	}
	l.setNAT(t, cone)

	echo := l.start(t, "pub", "labprobe echo", l.binary("labprobe"), "echo", "-listen", strings.Join(echoAddrs, ","))
	if err := echo.waitOutput("ready", 10*time.Second); err != nil {
		t.Fatalf("natlab: %v", err)
	}
	l.coturn = l.startCoturn(t)
	return l
}

// sysctl sets a per-namespace kernel setting (without procps' sysctl,
// which minimal images lack).
func (l *lab) sysctl(ns, key, value string) error {
	_, err := l.run(ns, 5*time.Second, "sh", "-c", "echo "+value+" > /proc/sys/"+key)
	return err
}

// setupDelays gives each core link its delay in both directions.
func (l *lab) setupDelays(t *testing.T) {
	t.Helper()
	far := map[string][2]string{"to-pub": {"pub", "eth0"}, "to-a": {"natA", "wan"}, "to-b": {"natB", "wan"}}
	switch l.env.delay {
	case "netem":
		for link, d := range linkDelay {
			delay := fmt.Sprintf("%dms", d.Milliseconds())
			l.must(t, "core", "tc", "qdisc", "add", "dev", link, "root", "netem", "delay", delay, "limit", "100000")
			l.must(t, far[link][0], "tc", "qdisc", "add", "dev", far[link][1], "root", "netem", "delay", delay, "limit", "100000")
		}
	case "nfqueue":
		// A packet crossing the core from link i to link j is held once,
		// for the sum of both links' delays: one queue per ordered pair.
		var qargs []string
		var rules [][]string
		q := 0
		for _, in := range []string{"to-pub", "to-a", "to-b"} {
			for _, out := range []string{"to-pub", "to-a", "to-b"} {
				if in == out {
					continue
				}
				q++
				qargs = append(qargs, "-q", fmt.Sprintf("%d:%v", q, oneWay(in, out)))
				rules = append(rules, []string{"-A", "FORWARD", "-i", in, "-o", out, "-j", "NFQUEUE", "--queue-num", fmt.Sprint(q)})
			}
		}
		d := l.start(t, "core", "labprobe delay", append([]string{l.binary("labprobe"), "delay"}, qargs...)...)
		if err := d.waitOutput("ready", 10*time.Second); err != nil {
			t.Fatalf("natlab: link delay program: %v", err)
		}
		// No --queue-bypass: if the delay program dies, the core stops
		// forwarding and the lab fails loudly instead of running undelayed.
		for _, r := range rules {
			l.must(t, "core", append([]string{l.env.iptables}, r...)...)
		}
	default:
		t.Fatalf("natlab: unknown delay mode %q", l.env.delay)
	}
}

// setupFirewall makes a home router: what comes in on the WAN side is
// forwarded inside only if it belongs to a flow that the inside started.
// The router's own INPUT is deliberately left open, as on many Linux
// routers: an unsolicited packet to a WAN port is answered (ICMP port
// unreachable) and its flow is recorded by conntrack, and that record is
// what gives a later outgoing flow toward that sender a different public
// port, the netfilter trap of issue 3. A DROP in INPUT would hide it,
// because a packet dropped before conntrack confirms it leaves no record.
func (l *lab) setupFirewall(t *testing.T, router string) {
	t.Helper()
	ipt := l.env.iptables
	l.must(t, router, ipt, "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	l.must(t, router, ipt, "-A", "FORWARD", "-i", "wan", "-j", "DROP")
}

// setNAT makes both home routers the given kind of NAT and forgets every
// mapping they had.
func (l *lab) setNAT(t *testing.T, kind natKind) {
	t.Helper()
	for _, router := range []string{"natA", "natB"} {
		l.must(t, router, l.env.iptables, "-t", "nat", "-F", "POSTROUTING")
		rule := []string{l.env.iptables, "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if kind == symmetric {
			rule = append(rule, "--random-fully")
		}
		l.must(t, router, rule...)
	}
	l.nat = kind
	l.flushConntrack(t)
}

// flushConntrack makes the next run start from NATs with no mappings.
func (l *lab) flushConntrack(t *testing.T) {
	t.Helper()
	for _, router := range []string{"natA", "natB"} {
		l.must(t, router, "conntrack", "-F")
	}
}

// waitUDP waits until something in ns listens on the UDP address addr,
// failing early if p, the program that should, has exited.
func (l *lab) waitUDP(ns, addr string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := l.run(ns, 5*time.Second, "ss", "-Hlun")
		if err == nil && containsField(out, addr) {
			return nil
		}
		if p != nil && p.exited() {
			msg, _, _ := strings.Cut(strings.TrimSpace(p.stderr.String()+"\n"+p.stdout.String()), "\n")
			return fmt.Errorf("%s exited (%v) before listening on %s: %s", p.name, p.err, addr, msg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on udp %s in %s after %v (ss: %v %s)", addr, ns, timeout, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsField(s, field string) bool {
	for _, f := range strings.Fields(s) {
		if f == field {
			return true
		}
	}
	return false
}

// startCoturn runs a turnserver of the lab's own, with its own files: it
// shares nothing with a system coturn service.
func (l *lab) startCoturn(t *testing.T) *proc {
	t.Helper()
	dir := filepath.Join(l.tmp, "coturn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := l.start(t, "pub", "turnserver", "turnserver",
		"-n", // no configuration file
		"--listening-ip", coturnIP, "--listening-port", serverPort,
		"--relay-ip", coturnIP, "--min-port", "49152", "--max-port", "65535",
		"--use-auth-secret", "--static-auth-secret", l.turnSecret, "--realm", turnRealm,
		"--fingerprint", "--no-tls", "--no-dtls", "--no-tcp", "--no-tcp-relay", "--no-cli",
		"--no-multicast-peers",
		"--userdb", filepath.Join(dir, "turndb"), "--pidfile", filepath.Join(dir, "turnserver.pid"),
		"--log-file", "stdout", "--simple-log",
	)
	if err := l.waitUDP("pub", coturnIP+":"+serverPort, p, 15*time.Second); err != nil {
		t.Fatalf("natlab: coturn: %v", err)
	}
	return p
}

// startServer runs p2pcompat-server on the public side with extra flags.
func (l *lab) startServer(t *testing.T, extra ...string) (*proc, error) {
	t.Helper()
	argv := append([]string{l.binary("p2pcompat-server"), "-listen", serverIP + ":" + serverPort}, extra...)
	p := l.start(t, "pub", "p2pcompat-server", argv...)
	if err := l.waitUDP("pub", serverIP+":"+serverPort, p, 15*time.Second); err != nil {
		return p, fmt.Errorf("p2pcompat-server %s: %w", strings.Join(argv[1:], " "), err)
	}
	return p, nil
}

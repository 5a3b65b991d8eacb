//go:build linux

package natlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// labEnv is what the machine offers, found out before anything is built.
type labEnv struct {
	iptables string // the iptables command whose backend works here
	delay    string // "netem" or "nfqueue": how links get their delay
	// nfqueueOK: the NFQUEUE target works (the late-offer scenarios hold
	// one flow with it, whatever makes the link delays)
	nfqueueOK bool
	notes     []string
}

// strict says a missing tool is a failure, not a skip: CI installs them
// all (.ci/run), so there a skip would hide a broken lab.
func strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("NATLAB_REQUIRE") == "1"
}

// requireLab skips (or, when strict and root, fails) with the precise
// reason the lab cannot run here.
func requireLab(t *testing.T) labEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("natlab: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("natlab: needs root: it makes network namespaces, veth links and NAT rules; run `sudo go test ./natlab -v`")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if strict() {
			t.Fatalf(format+" [CI=true or NATLAB_REQUIRE=1: failing instead of skipping]", args...)
		}
		t.Skipf(format, args...)
	}
	for _, tool := range []string{"ip", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing("natlab: needs ip netns and ss (apt-get install iproute2): %v", err)
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		missing("natlab: needs the go command to build the lab programs: %v", err)
	}
	cleanStale(t)

	// A scratch namespace to try each facility in.
	probe := &lab{prefix: fmt.Sprintf("natlab%d-", os.Getpid())}
	if _, err := probe.run("", 10*time.Second, "ip", "netns", "add", probe.ns("probe")); err != nil {
		missing("natlab: needs ip netns: %v", err)
	}
	defer probe.run("", 10*time.Second, "ip", "netns", "del", probe.ns("probe"))
	probe.run("", 10*time.Second, "ip", "-n", probe.ns("probe"), "link", "set", "lo", "up")

	var env labEnv
	var errs []string
	for _, cand := range []string{"iptables", "iptables-nft", "iptables-legacy"} {
		if _, err := exec.LookPath(cand); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		_, err1 := probe.run("probe", 10*time.Second, cand, "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "MASQUERADE", "--random-fully")
		_, err2 := probe.run("probe", 10*time.Second, cand, "-A", "FORWARD", "-i", "lo", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		if err1 == nil && err2 == nil {
			env.iptables = cand
			break
		}
		errs = append(errs, fmt.Sprint(err1, "; ", err2))
	}
	if env.iptables == "" {
		missing("natlab: needs iptables with nat MASQUERADE --random-fully and the conntrack match (apt-get install iptables): %s", strings.Join(errs, " | "))
	}
	if _, err := exec.LookPath("conntrack"); err != nil {
		missing("natlab: needs conntrack (apt-get install conntrack): %v", err)
	}
	if _, err := probe.run("probe", 10*time.Second, "conntrack", "-L"); err != nil {
		missing("natlab: needs conntrack: %v", err)
	}
	if _, err := exec.LookPath("turnserver"); err != nil {
		missing("natlab: needs coturn (apt-get install coturn): %v", err)
	}

	// Link delays: tc netem where the kernel has sch_netem, else an
	// NFQUEUE program that holds each packet for the link's delay.
	_, netemErr := probe.run("probe", 10*time.Second, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
	_, nfqErr := probe.run("probe", 10*time.Second, env.iptables, "-A", "FORWARD", "-o", "lo", "-j", "NFQUEUE", "--queue-num", "1")
	env.nfqueueOK = nfqErr == nil
	switch want := os.Getenv("NATLAB_DELAY"); {
	case want == "netem" && netemErr != nil:
		missing("natlab: NATLAB_DELAY=netem, but tc netem does not work here: %v", netemErr)
	case want == "nfqueue" && nfqErr != nil:
		missing("natlab: NATLAB_DELAY=nfqueue, but the NFQUEUE target does not work here: %v", nfqErr)
	case want == "netem" || want == "nfqueue":
		env.delay = want
	case want != "":
		t.Fatalf("natlab: NATLAB_DELAY=%q: want netem or nfqueue", want)
	case netemErr == nil:
		env.delay = "netem"
	case nfqErr == nil:
		env.delay = "nfqueue"
		env.notes = append(env.notes, fmt.Sprintf("tc netem unavailable (%v); link delays come from an NFQUEUE delay program instead", firstLine(netemErr)))
	default:
		missing("natlab: needs tc netem (the sch_netem kernel module) or the NFQUEUE target for link delays: %v; %v", netemErr, nfqErr)
	}
	return env
}

var staleNS = regexp.MustCompile(`^natlab(\d+)-`)

// cleanStale removes the namespaces (and the lab processes in them) of
// earlier runs whose test process is gone: a run killed before its
// cleanup could run must not break the next one.
func cleanStale(t *testing.T) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		m := staleNS.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		removeNamespace(e.Name())
		t.Logf("natlab: removed stale namespace %s (its test process %d is gone)", e.Name(), pid)
	}
}

// removeNamespace kills what still runs in a lab namespace (only ever the
// lab's own programs) and deletes it.
func removeNamespace(name string) {
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for i := 0; i < 50; i++ {
		if exec.Command("ip", "netns", "del", name).Run() == nil {
			return
		}
		if _, err := os.Stat(filepath.Join("/run/netns", name)); os.IsNotExist(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

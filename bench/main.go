// Command bench compares p2pcompat with plain UDP, kcp-go, quic-go and ENet
// on the loopback interface, in one process, and prints one table of
// figures, ratios and whether the project's performance goals are met.
//
// It lives in a module of its own so that kcp-go, quic-go and their
// dependencies never enter the main module's go.mod. ENet is the C library
// libenet through cgo (enet.go): the build needs libenet-dev and a C
// compiler, or -tags noenet (or CGO_ENABLED=0) to leave ENet out, its cells
// then reading n/a. Run it from the repository root with
//
//	cd bench && go run .          # full run, about a minute and a half
//	cd bench && go run . -quick   # tiny counts, for CI
//	cd bench && go run . -cabi    # the C ABI beside the Go API (cabi.go)
//	cd bench && go run . -regflood # the rendezvous under a registration flood (regflood.go)
//
// Flags: -runs N (throughput runs per stack, median reported), -only to pick
// workloads (e.g. -only 1,3 or -only rtt,idle), -json for machine-readable
// output. Workloads:
//
//  1. reliable 1200-byte messages one way, sender respecting backpressure
//  2. reliable 1 MiB messages one way
//  3. 64-byte echo round trip, p50 and p99
//  4. 100-byte unreliable messages, messages per second received
//  5. 10,000 idle p2pcompat sessions: heap per session, idle CPU
//  6. allocations per message of p2pcompat during workload 1
//
// All traffic goes to 127.0.0.1 only. Every loop is bounded in count and
// time, and every socket, peer and child process is closed at the end.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// options are the command's flags.
type options struct {
	quick bool
	runs  int
	only  string
	json  bool

	// -cabi: the C ABI comparison instead of the workloads (cabi.go).
	cabi     bool
	cabiIdle string
	cabiAPI  string

	// -regflood: the rendezvous server under a registration flood (regflood.go).
	regflood      bool
	floodPPS      int
	floodSources  int
	floodReaders  int
	floodDuration time.Duration

	// Hidden: the child process that hosts the idle workload's peers.
	idlePeers int
	idleFirst uint64
	idleOwner uint64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == cabiPeerFlag {
		os.Exit(cabiPeerMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	var o options
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	fs.BoolVar(&o.quick, "quick", false, "tiny counts (for CI): finishes in well under 20 s")
	fs.IntVar(&o.runs, "runs", 0, "throughput runs per stack, interleaved across stacks; the median is reported (default 3, 1 with -quick)")
	fs.StringVar(&o.only, "only", "", "comma-separated workloads to run: 1..6 or throughput,large,rtt,unreliable,idle,allocs (default all)")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of the table")
	fs.BoolVar(&o.cabi, "cabi", false, "instead of the workloads: build libsteam_api.so and time round trips and throughput through its C ABI beside the Go API (needs a C compiler)")
	fs.StringVar(&o.cabiIdle, "cabi-idle", "", "with -cabi: the C program's pause between empty polls, spin, yield or sleep (default yield)")
	fs.StringVar(&o.cabiAPI, "cabi-api", "", "with -cabi: call the flat API or the ISteamNetworking vtable (default flat)")
	fs.BoolVar(&o.regflood, "regflood", false, "instead of the workloads: players registering and looking each other up while thousands of loopback sources flood the rendezvous with registrations it must not take")
	fs.IntVar(&o.floodPPS, "flood-pps", 25000, "with -regflood: datagrams a second from the flooding sources")
	fs.IntVar(&o.floodSources, "flood-sources", 2000, "with -regflood: flooding sources, each on an address of its own in 127.1.0.0/16")
	fs.IntVar(&o.floodReaders, "flood-readers", 0, "with -regflood: the server's ServerConfig.Readers (default one per CPU)")
	fs.DurationVar(&o.floodDuration, "flood-duration", 10*time.Second, "with -regflood: how long each run (the control, then the flood) lasts")
	fs.IntVar(&o.idlePeers, "idle-peers", 0, "internal: host this many idle peers (child process of workload 5)")
	fs.Uint64Var(&o.idleFirst, "idle-first", 0, "internal: SteamID of the first idle peer")
	fs.Uint64Var(&o.idleOwner, "idle-owner", 0, "internal: SteamID the idle peers accept")
	fs.Parse(os.Args[1:])

	if o.idlePeers > 0 {
		os.Exit(idleChild(o.idlePeers, o.idleFirst, o.idleOwner, os.Stdin, os.Stdout))
	}
	run := run
	switch {
	case o.cabi:
		run = runCABIMode
	case o.regflood:
		run = runRegFloodMode
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run measures the selected workloads and prints the report to w.
func run(o options, w io.Writer) error {
	progress := io.Writer(os.Stderr)
	if o.json {
		progress = io.Discard
	}
	rep, err := measure(o, progress)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(w)
	return nil
}

// measure runs the selected workloads, logging progress to log.
func measure(o options, log io.Writer) (*report, error) {
	p := fullParams
	if o.quick {
		p = quickParams
	}
	if o.runs > 0 {
		p.Runs = o.runs
	}
	sel, err := parseOnly(o.only)
	if err != nil {
		return nil, err
	}
	// quic-go warns on stderr when it cannot raise the socket buffers; the
	// warning says nothing about the figures and would break up the table.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")

	start := time.Now()
	rep := &report{Header: machineHeader(os.Args[1:]), Params: p}
	b := &bencher{p: p, rep: rep, log: log}
	defer b.close()
	if err := b.setup(); err != nil {
		return nil, err
	}
	if sel[1] || sel[6] {
		b.workload1()
	}
	if sel[2] {
		b.workload2()
	}
	if sel[3] {
		b.workload3()
	}
	if sel[4] {
		b.workload4()
	}
	if sel[5] {
		b.workload5()
	}
	b.close()
	// Everything the workloads opened is closed by now; what still runs
	// is the runtime's, kcp-go's package-level scheduler and the like.
	time.Sleep(100 * time.Millisecond)
	rep.note("load average at start: %s; at end: %s; goroutines left at end: %d", rep.Header.Load, loadAvg(), runtime.NumGoroutine())
	rep.Elapsed = time.Since(start).Round(100 * time.Millisecond).String()
	return rep, nil
}

// parseOnly turns the -only flag into the set of workloads to run.
func parseOnly(s string) (map[int]bool, error) {
	sel := map[int]bool{}
	if strings.TrimSpace(s) == "" {
		for i := 1; i <= 6; i++ {
			sel[i] = true
		}
		return sel, nil
	}
	names := map[string]int{
		"1": 1, "throughput": 1, "1200": 1,
		"2": 2, "large": 2, "1mib": 2,
		"3": 3, "rtt": 3,
		"4": 4, "unreliable": 4, "100": 4,
		"5": 5, "idle": 5,
		"6": 6, "allocs": 6,
	}
	for _, f := range strings.Split(s, ",") {
		n, ok := names[strings.ToLower(strings.TrimSpace(f))]
		if !ok {
			return nil, fmt.Errorf("-only: unknown workload %q", f)
		}
		sel[n] = true
	}
	return sel, nil
}

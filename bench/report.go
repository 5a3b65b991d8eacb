package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// params are the counts and bounds of one invocation.
type params struct {
	Runs       int           // throughput runs per stack (median reported)
	Count1200  int           // messages per run of workload 1
	CountLarge int           // 1 MiB messages per run of workload 2
	Cap        time.Duration // time cap of one throughput run
	RTTCount   int           // measured round trips of workload 3
	RTTWarmup  int           // round trips before measuring
	RTTCap     time.Duration // time cap of one round-trip series
	Count100   int           // messages per run of workload 4
	Cap100     time.Duration // time cap of one run of workload 4
	Idle       int           // idle sessions of workload 5
	IdleFor    time.Duration // how long idle CPU is measured
}

// The caps keep a full run under three minutes even when a stack is much
// slower than expected: each run stops at its cap and reports what arrived.
var fullParams = params{
	Runs:       3,
	Count1200:  150_000,
	CountLarge: 150,
	Cap:        5 * time.Second,
	RTTCount:   20_000,
	RTTWarmup:  1_000,
	RTTCap:     10 * time.Second,
	Count100:   300_000,
	Cap100:     3 * time.Second,
	Idle:       10_000,
	IdleFor:    10 * time.Second,
}

var quickParams = params{
	Runs:       1,
	Count1200:  5_000,
	CountLarge: 8,
	Cap:        2 * time.Second,
	RTTCount:   500,
	RTTWarmup:  50,
	RTTCap:     2 * time.Second,
	Count100:   10_000,
	Cap100:     1 * time.Second,
	Idle:       500,
	IdleFor:    2 * time.Second,
}

// report is everything the command prints.
type report struct {
	Header  header
	Params  params
	Rows    []row
	Runs    []runDetail
	Notes   []string
	Elapsed string
}

type header struct {
	CPU, Kernel, Go, Date, Command string
	Load                           string // /proc/loadavg when the run started
	Cores                          int
	Versions                       map[string]string
}

// row is one line of the table: one workload's metric on every stack.
type row struct {
	ID     string // stable key, for tests and JSON consumers
	Metric string
	UDP    string // plain UDP, the variant named in the cell
	KCP    string
	QUIC   string
	ENet   string // ENet through cgo (enet.go); "n/a" where the build has none
	P2P    string
	Goal   string
	Ratio  string
	Met    string // "met", "not met", "n/a", or "" where there is no goal
}

// runDetail lists the single runs behind a median.
type runDetail struct {
	What   string
	Unit   string
	Values []float64
	Errors []string `json:",omitempty"`
}

func (r *report) add(x row)               { r.Rows = append(r.Rows, x) }
func (r *report) note(f string, a ...any) { r.Notes = append(r.Notes, fmt.Sprintf(f, a...)) }

func machineHeader(args []string) header {
	h := header{
		CPU:      cpuModel(),
		Cores:    runtime.NumCPU(),
		Kernel:   kernel(),
		Go:       runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Date:     time.Now().UTC().Format("2006-01-02 15:04:05 UTC"),
		Command:  strings.TrimSpace("cd bench && go run . " + strings.Join(args, " ")),
		Versions: map[string]string{},
		Load:     loadAvg(),
	}
	if v := enetVersion(); v != "" {
		h.Versions["ENet (libenet, cgo)"] = v
	} else {
		h.Versions["ENet"] = "not in this build"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/xtaci/kcp-go/v5", "github.com/quic-go/quic-go", "golang.org/x/net":
				h.Versions[d.Path] = d.Version
			}
		}
	}
	return h
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAvg is the 1, 5 and 15 minute load averages: on a shared machine
// they say how much else competed for the cores.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func kernel() string {
	var parts []string
	for _, f := range []string{"ostype", "osrelease", "version"} {
		b, err := os.ReadFile("/proc/sys/kernel/" + f)
		if err != nil {
			return runtime.GOOS
		}
		parts = append(parts, strings.TrimSpace(string(b)))
	}
	return strings.Join(parts, " ")
}

func (r *report) print(w io.Writer) {
	h := r.Header
	fmt.Fprintf(w, "p2pcompat comparison benchmark (loopback 127.0.0.1)\n")
	fmt.Fprintf(w, "machine:  %s, %d cores, GOMAXPROCS %d\n", h.CPU, h.Cores, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "kernel:   %s\n", h.Kernel)
	fmt.Fprintf(w, "go:       %s\n", h.Go)
	var vs []string
	for k, v := range h.Versions {
		vs = append(vs, k+" "+v)
	}
	sort.Strings(vs)
	fmt.Fprintf(w, "modules:  %s\n", strings.Join(vs, ", "))
	fmt.Fprintf(w, "date:     %s (load average %s at start)\n", h.Date, h.Load)
	fmt.Fprintf(w, "command:  %s\n", h.Command)
	fmt.Fprintf(w, "runs:     %d per throughput figure (median, interleaved across stacks); MB = 10^6 bytes of payload\n\n", r.Params.Runs)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload / metric\tplain UDP\tkcp-go\tquic-go\tENet\tp2pcompat\tgoal\tratio\tmet")
	fmt.Fprintln(tw, "-----------------\t---------\t------\t-------\t----\t---------\t----\t-----\t---")
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Metric, dash(x.UDP), dash(x.KCP), dash(x.QUIC), dash(x.ENet), dash(x.P2P), dash(x.Goal), dash(x.Ratio), dash(x.Met))
	}
	tw.Flush()

	if len(r.Runs) > 0 {
		fmt.Fprintf(w, "\nsingle runs:\n")
		for _, d := range r.Runs {
			var vs []string
			for _, v := range d.Values {
				vs = append(vs, num(v))
			}
			line := fmt.Sprintf("  %-48s %s %s", d.What, strings.Join(vs, " "), d.Unit)
			if len(d.Errors) > 0 {
				line += "  errors: " + strings.Join(d.Errors, "; ")
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\nnotes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	fmt.Fprintf(w, "\nelapsed:  %s\n", r.Elapsed)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 0.1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// ratio formats a/b, or n/a when either is missing.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// verdict is "met" when every check passed, "n/a" when a figure is missing.
func verdict(checks ...float64) string {
	// Each check is a margin: >= 0 passes, < 0 fails, NaN is unknown.
	for _, c := range checks {
		if math.IsNaN(c) {
			return "n/a"
		}
	}
	for _, c := range checks {
		if c < 0 {
			return "not met"
		}
	}
	return "met"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the p-th percentile (0..100) of d in microseconds.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Microsecond)
}

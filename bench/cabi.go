package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// The C ABI comparison (-cabi): the 64-byte reliable round trip and
// 1200-byte reliable throughput through the drop-in libsteam_api.so, timed
// by a C program of two processes (cabi/cabi_bench.c), beside the same two
// workloads through the Go API, in one run: with both peers in this process
// (the comparison command's own code for workloads 1 and 3), and as two
// processes that do what the C program does (cabi_peer.go). It builds the
// library and the C program first (go and a C compiler are needed), and
// serves the rendezvous for all of them from this process.

// cabiParams are the counts and bounds of a -cabi invocation.
type cabiParams struct {
	Runs      int           // runs of each column, interleaved; medians reported
	RTTCount  int           // timed round trips per run
	RTTWarmup int           // round trips before timing
	Msgs      int           // 1200-byte messages per throughput run
	Cap       time.Duration // time cap of each phase of a run
	Idle      string        // the C side's pause between empty polls
	API       string        // flat or vtable
}

var cabiFull = cabiParams{Runs: 5, RTTCount: 20_000, RTTWarmup: 1_000, Msgs: 150_000, Cap: 10 * time.Second, Idle: "yield", API: "flat"}

var cabiQuick = cabiParams{Runs: 1, RTTCount: 500, RTTWarmup: 50, Msgs: 5_000, Cap: 5 * time.Second, Idle: "yield", API: "flat"}

// The goals, C ABI against Go API.
const (
	cabiRTTGoal  = 1.3 // median round trip at most 1.3 × Go's
	cabiTputGoal = 0.8 // throughput at least 0.8 × Go's
)

// cabiRun is one run of one side.
type cabiRun struct {
	P50, P99 float64 // µs
	MBps     float64
	SendFull int64 // times a send was refused, send buffer full (two-process runs)
}

type cabiReport struct {
	Header  header
	Params  cabiParams
	Library string    // how the library was built
	Program string    // how the C program was built
	C, Go   []cabiRun // the C ABI (two processes), the Go API in this process
	Go2     []cabiRun // the Go API in two processes (cabi_peer.go)
	Errors  []string  `json:",omitempty"`
	Elapsed string
}

// cabiBuild is the library and the C program, built into a directory of
// their own.
type cabiBuild struct {
	dir, lib, prog string
	libCmd, cCmd   string
}

func (b *cabiBuild) close() { os.RemoveAll(b.dir) }

// buildCABI builds libsteam_api.so from the main module and compiles the C
// benchmark against it.
func buildCABI() (*cabiBuild, error) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("the drop-in library is built for linux/amd64 only, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	cc, err := cCompiler()
	if err != nil {
		return nil, err
	}
	root, err := goOutput("list", "-m", "-f", "{{.Dir}}", "github.com/p2pcompat/p2pcompat")
	if err != nil {
		return nil, fmt.Errorf("finding the main module: %w", err)
	}
	gomod, err := goOutput("env", "GOMOD")
	if err != nil || gomod == "" || gomod == os.DevNull {
		return nil, fmt.Errorf("finding the bench module: %v", err)
	}
	src := filepath.Join(filepath.Dir(gomod), "cabi", "cabi_bench.c")
	dir, err := os.MkdirTemp("", "p2pcompat-cabi-")
	if err != nil {
		return nil, err
	}
	b := &cabiBuild{dir: dir, lib: filepath.Join(dir, "libsteam_api.so"), prog: filepath.Join(dir, "cabi_bench")}

	lib := exec.Command("go", "build", "-buildmode=c-shared", "-o", b.lib, "./cmd/libsteam_api")
	lib.Dir = root
	lib.Env = append(os.Environ(), "CGO_ENABLED=1")
	b.libCmd = "go build -buildmode=c-shared -o libsteam_api.so ./cmd/libsteam_api"
	if out, err := lib.CombinedOutput(); err != nil {
		b.close()
		return nil, fmt.Errorf("%s (in %s): %v\n%s", b.libCmd, root, err, out)
	}
	// In the library's directory, which the program finds through $ORIGIN.
	c := exec.Command(cc, "-std=c11", "-O2", "-Wall", "-o", "cabi_bench", src, "-L.", "-lsteam_api", "-Wl,-rpath,$ORIGIN", "-lm")
	c.Dir = dir
	b.cCmd = fmt.Sprintf("%s -std=c11 -O2 -Wall -o cabi_bench cabi/cabi_bench.c -L. -lsteam_api -Wl,-rpath,'$ORIGIN' -lm", filepath.Base(cc))
	if out, err := c.CombinedOutput(); err != nil {
		b.close()
		return nil, fmt.Errorf("%v: %v\n%s", c.Args, err, out)
	}
	return b, nil
}

// cCompiler is the C compiler cgo uses, which the library's build needs
// anyway.
func cCompiler() (string, error) {
	cc, err := goOutput("env", "CC")
	if err != nil {
		return "", err
	}
	if f := strings.Fields(cc); len(f) > 0 {
		cc = f[0]
	}
	path, err := exec.LookPath(cc)
	if err != nil {
		return "", fmt.Errorf("no C compiler (%s): %w", cc, err)
	}
	return path, nil
}

func goOutput(args ...string) (string, error) {
	out, err := exec.Command("go", args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "", fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
	}
	return strings.TrimSpace(string(out)), err
}

// measureCABI builds everything and runs both sides p.Runs times,
// interleaved, logging progress to log.
func measureCABI(p cabiParams, log io.Writer) (*cabiReport, error) {
	start := time.Now()
	rep := &cabiReport{Header: machineHeader(os.Args[1:]), Params: p}
	fmt.Fprintf(log, "C ABI: building libsteam_api.so and the C program\n")
	b, err := buildCABI()
	if err != nil {
		return nil, err
	}
	defer b.close()
	rep.Library, rep.Program = b.libCmd, b.cCmd
	env, err := newP2PEnv()
	if err != nil {
		return nil, err
	}
	defer env.close()

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// The three setups, interleaved run by run so that the machine's
	// moods fall on all of them alike.
	setups := []struct {
		label, errLabel string
		into            *[]cabiRun
		run             func() (cabiRun, error)
	}{
		{"C ABI, 2 processes: ", "C ABI", &rep.C, func() (cabiRun, error) { return runPair(b.prog, nil, b.dir, env, p) }},
		{"Go API, 2 processes:", "Go API two-process", &rep.Go2, func() (cabiRun, error) { return runPair(self, []string{cabiPeerFlag}, b.dir, env, p) }},
		{"Go API, 1 process:  ", "Go API", &rep.Go, func() (cabiRun, error) { return runGoAPI(env, p) }},
	}
	for r := 1; r <= p.Runs; r++ {
		for _, su := range setups {
			runtime.GC()
			res, err := su.run()
			if err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s run %d: %v", su.errLabel, r, err))
				fmt.Fprintf(log, "  [%d/%d] %s error: %v\n", r, p.Runs, su.label, err)
				continue
			}
			*su.into = append(*su.into, res)
			fmt.Fprintf(log, "  [%d/%d] %s round trip p50 %s µs, p99 %s µs; %s MB/s\n", r, p.Runs, su.label, num(res.P50), num(res.P99), num(res.MBps))
		}
	}
	rep.Elapsed = time.Since(start).Round(100 * time.Millisecond).String()
	if len(rep.C) == 0 || len(rep.Go) == 0 || len(rep.Go2) == 0 {
		return rep, fmt.Errorf("no successful run of both sides: %s", strings.Join(rep.Errors, "; "))
	}
	return rep, nil
}

// runGoAPI runs the two workloads through the Go API, with the command's
// own code for workloads 1 and 3.
func runGoAPI(env *p2pEnv, p cabiParams) (cabiRun, error) {
	rtts, err := p2pRTT(env, p2p.P2PSendReliable, 64, p.RTTWarmup, p.RTTCount, p.Cap)
	if err != nil {
		return cabiRun{}, fmt.Errorf("round trips: %w", err)
	}
	if len(rtts) < p.RTTCount {
		return cabiRun{}, fmt.Errorf("round trips: %d of %d in %v", len(rtts), p.RTTCount, p.Cap)
	}
	t, err := p2pThroughput(env, 1200, p.Msgs, p2p.P2PSendReliable, p.Cap, nil)
	if err != nil {
		return cabiRun{}, fmt.Errorf("throughput: %w", err)
	}
	if t.Capped {
		return cabiRun{}, fmt.Errorf("throughput: %d of %d messages in %v", t.Msgs, p.Msgs, p.Cap)
	}
	return cabiRun{P50: percentile(rtts, 50), P99: percentile(rtts, 99), MBps: t.MBps()}, nil
}

// SteamIDs of the C processes: valid individual IDs, two new ones a run.
var cabiNextID = uint64(76561197960265728 + 100_000)

// runPair runs one side of the comparison once as two processes, prog
// with the arguments pre and then the C program's flags: the echo side, and
// once it is ready the timing side, each with a SteamID of its own. dir is
// their working, home and data directory.
func runPair(prog string, pre []string, dir string, env *p2pEnv, p cabiParams) (cabiRun, error) {
	echoID, timeID := cabiNextID+1, cabiNextID+2
	cabiNextID += 2
	// Each phase is capped in the C program; this bounds the processes.
	ctx, cancel := context.WithTimeout(context.Background(), 4*p.Cap+30*time.Second)
	defer cancel()
	args := func(role string, peer uint64) []string {
		return append(append([]string(nil), pre...), "-role", role, "-peer", strconv.FormatUint(peer, 10),
			"-rtt", strconv.Itoa(p.RTTCount), "-warmup", strconv.Itoa(p.RTTWarmup),
			"-msgs", strconv.Itoa(p.Msgs), "-cap", strconv.FormatFloat(p.Cap.Seconds(), 'f', -1, 64),
			"-idle", p.Idle, "-api", p.API)
	}
	procEnv := func(id uint64) []string {
		env := []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + dir,
			"XDG_DATA_HOME=" + dir,
			"P2PCOMPAT_RENDEZVOUS=" + env.srv.Addr().String(),
			"P2PCOMPAT_STEAMID=" + strconv.FormatUint(id, 10),
			"SteamAppId=480",
		}
		for _, k := range []string{"P2PCOMPAT_LOG", "P2PCOMPAT_LOG_LEVEL", "P2PCOMPAT_DISABLE_GSO", "GOMAXPROCS", "GODEBUG"} {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
		return env
	}

	echo := exec.CommandContext(ctx, prog, args("echo", timeID)...)
	echo.Env, echo.Dir = procEnv(echoID), dir
	var echoErr lockedBuf
	echo.Stderr = &echoErr
	echoOut, err := echo.StdoutPipe()
	if err != nil {
		return cabiRun{}, err
	}
	if err := echo.Start(); err != nil {
		return cabiRun{}, err
	}
	echoDone := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(echoOut)
		ok := false
		for sc.Scan() {
			if !ok && sc.Text() == "ready" {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		echoDone <- echo.Wait()
	}()
	defer func() { cancel(); <-echoDone }() // no-op once it has exited
	select {
	case ok := <-ready:
		if !ok {
			return cabiRun{}, fmt.Errorf("the echo side exited before it was ready: %s", echoErr.String())
		}
	case <-time.After(p.Cap):
		return cabiRun{}, fmt.Errorf("the echo side was not ready after %v: %s", p.Cap, echoErr.String())
	}

	timer := exec.CommandContext(ctx, prog, args("time", echoID)...)
	timer.Env, timer.Dir = procEnv(timeID), dir
	var timeErr lockedBuf
	timer.Stderr = &timeErr
	out, err := timer.Output()
	if err != nil {
		return cabiRun{}, fmt.Errorf("the timing side: %v: %s", err, timeErr.String())
	}
	var werr error
	select {
	case werr = <-echoDone:
		echoDone <- werr // for the deferred receive
	case <-time.After(10 * time.Second):
		werr = errors.New("did not exit 10 s after the timing side")
	}
	if werr != nil {
		return cabiRun{}, fmt.Errorf("the echo side: %v: %s", werr, echoErr.String())
	}
	return parseCABI(string(out))
}

// parseCABI reads the timing side's result lines.
func parseCABI(out string) (cabiRun, error) {
	var r cabiRun
	var haveRTT, haveTput bool
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "result" || len(f)%2 != 0 {
			continue
		}
		kv := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i+1], 64)
			if err != nil {
				return r, fmt.Errorf("bad result line %q", line)
			}
			kv[f[i]] = v
		}
		switch f[1] {
		case "rtt64":
			r.P50, r.P99, haveRTT = kv["p50_us"], kv["p99_us"], true
		case "tput1200":
			r.MBps, r.SendFull, haveTput = kv["mbps"], int64(kv["send_false"]), true
		}
	}
	if !haveRTT || !haveTput {
		return r, fmt.Errorf("the timing side printed no results: %q", out)
	}
	return r, nil
}

// lockedBuf collects a process's stderr.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}

func medianOf(rs []cabiRun, f func(cabiRun) float64) float64 {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

// cabiRow is one line of the -cabi table: the C ABI against the Go API in
// one process (the comparison command's figures) and in two processes (one
// player a process, as games run and as the C program runs).
type cabiRow struct {
	ID, Metric, Go, Go2, C, Goal, Ratio, Ratio2, Met, Met2 string
}

func (r *cabiReport) rows() []cabiRow {
	p50 := func(x cabiRun) float64 { return x.P50 }
	p99 := func(x cabiRun) float64 { return x.P99 }
	mb := func(x cabiRun) float64 { return x.MBps }
	row := func(id, metric string, f func(cabiRun) float64, goal string, margin func(ratio float64) float64) cabiRow {
		g, g2, c := medianOf(r.Go, f), medianOf(r.Go2, f), medianOf(r.C, f)
		x := cabiRow{ID: id, Metric: metric, Go: num(g), Go2: num(g2), C: num(c), Goal: goal,
			Ratio: fmtRatio(ratio(c, g)), Ratio2: fmtRatio(ratio(c, g2))}
		if margin != nil {
			x.Met, x.Met2 = verdict(margin(ratio(c, g))), verdict(margin(ratio(c, g2)))
		}
		return x
	}
	return []cabiRow{
		row("cabi-rtt-p50", "64 B reliable round trip p50, µs", p50,
			fmt.Sprintf("C/Go ≤ %.2f", cabiRTTGoal), func(x float64) float64 { return cabiRTTGoal - x }),
		row("cabi-rtt-p99", "64 B reliable round trip p99, µs", p99, "", nil),
		row("cabi-tput", "1200 B reliable one way, MB/s", mb,
			fmt.Sprintf("C/Go ≥ %.2f", cabiTputGoal), func(x float64) float64 { return x - cabiTputGoal }),
	}
}

func (r *cabiReport) print(w io.Writer) {
	h, p := r.Header, r.Params
	fmt.Fprintf(w, "p2pcompat through the C ABI (libsteam_api.so) and through the Go API (loopback 127.0.0.1)\n")
	fmt.Fprintf(w, "machine:  %s, %d cores, GOMAXPROCS %d\n", h.CPU, h.Cores, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "kernel:   %s\n", h.Kernel)
	fmt.Fprintf(w, "go:       %s\n", h.Go)
	fmt.Fprintf(w, "date:     %s (load average %s at start)\n", h.Date, h.Load)
	fmt.Fprintf(w, "command:  %s\n", h.Command)
	fmt.Fprintf(w, "built:    %s; %s\n", r.Library, r.Program)
	fmt.Fprintf(w, "runs:     %d per column, interleaved, median reported; per run %d timed round trips after %d, %d messages of 1200 B; MB = 10^6 bytes of payload\n",
		p.Runs, p.RTTCount, p.RTTWarmup, p.Msgs)
	fmt.Fprintf(w, "C ABI:    cabi/cabi_bench.c, an echo and a timing process, %s API, polling IsP2PPacketAvailable/ReadP2PPacket, idle poll: %s; SendP2PPacket false: retry after 50 µs\n", p.API, p.Idle)
	fmt.Fprintf(w, "Go 1p:    both peers in this process, workloads 1 and 3 of the comparison command (ReadP2PPacket, waiting on PacketReady)\n")
	fmt.Fprintf(w, "Go 2p:    the C program's two processes written with the Go API (%s, cabi_peer.go), waiting on PacketReady\n\n", cabiPeerFlag)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tGo 1p\tGo 2p\tC ABI\tgoal\tC/Go 1p\tmet\tC/Go 2p\tmet")
	fmt.Fprintln(tw, "------\t-----\t-----\t-----\t----\t-------\t---\t-------\t---")
	for _, x := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Metric, x.Go, x.Go2, x.C, dash(x.Goal), x.Ratio, dash(x.Met), x.Ratio2, dash(x.Met2))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nsingle runs (p50 µs / p99 µs / MB/s):\n")
	for _, s := range []struct {
		name string
		rs   []cabiRun
	}{{"Go 1p", r.Go}, {"Go 2p", r.Go2}, {"C ABI", r.C}} {
		var vs []string
		for _, x := range s.rs {
			vs = append(vs, fmt.Sprintf("%s/%s/%s", num(x.P50), num(x.P99), num(x.MBps)))
		}
		fmt.Fprintf(w, "  %-6s %s\n", s.name, strings.Join(vs, "  "))
	}
	for _, s := range []struct {
		name string
		rs   []cabiRun
	}{{"Go 2p", r.Go2}, {"C ABI", r.C}} {
		var full []string
		for _, x := range s.rs {
			full = append(full, strconv.FormatInt(x.SendFull, 10))
		}
		fmt.Fprintf(w, "  %s: sends refused (send buffer full) per run: %s\n", s.name, strings.Join(full, " "))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "\nelapsed:  %s\n", r.Elapsed)
}

// runCABIMode is the command's -cabi mode.
func runCABIMode(o options, w io.Writer) error {
	p := cabiFull
	if o.quick {
		p = cabiQuick
	}
	if o.runs > 0 {
		p.Runs = o.runs
	}
	if o.cabiIdle != "" {
		p.Idle = o.cabiIdle
	}
	if o.cabiAPI != "" {
		p.API = o.cabiAPI
	}
	progress := io.Writer(os.Stderr)
	if o.json {
		progress = io.Discard
	}
	rep, err := measureCABI(p, progress)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*cabiReport
			Rows []cabiRow
		}{rep, rep.rows()})
	}
	rep.print(w)
	return nil
}

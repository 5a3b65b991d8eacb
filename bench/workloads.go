package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// bencher runs the workloads and fills the report.
type bencher struct {
	p   params
	rep *report
	log io.Writer
	tls *tlsPair
	env *p2pEnv

	// Plain UDP figures of workload 1, workload 2's reference.
	udpBatch, udpGSO float64
	haveUDPRef       bool
}

func (b *bencher) setup() error {
	var err error
	if b.tls, err = newTLSPair(); err != nil {
		return err
	}
	if b.env, err = newP2PEnv(); err != nil {
		return err
	}
	if readUDPCounters().ok {
		b.rep.note("UDP sends and drops below are the kernel's OutDatagrams and RcvbufErrors (/proc/net/snmp) over a series' runs: one GSO send counts once; the counters are the whole network namespace's")
	}
	b.rep.note("%s", enetSetupNote())
	if on, err := quicGSO(b.tls); err == nil {
		b.rep.note("quic-go with its default configuration uses GSO: %s (QUIC_GO_DISABLE_GSO=true turns it off; not set here)", map[bool]string{true: "on", false: "off"}[on])
	} else {
		b.rep.note("quic-go GSO state unknown: %v", err)
	}
	return nil
}

func (b *bencher) close() {
	if b.env != nil {
		b.env.close()
		b.env = nil
	}
}

// series is one stack's runs of one workload.
type series struct {
	name   string
	run    func() (tput, error)
	res    []tput
	errs   []string
	capped int
	na     bool        // the variant is not available here (GSO)
	udp    udpCounters // kernel UDP counters summed over the runs
	sent   int64       // messages the runs counted in udp
}

// interleave runs every series p.Runs times, round robin, so that a slow
// patch of the shared machine hurts every stack alike.
func (b *bencher) interleave(label, unit string, metric func(tput) float64, ss ...*series) {
	for r := 0; r < b.p.Runs; r++ {
		for _, s := range ss {
			if s.na {
				continue
			}
			runtime.GC()
			c0 := readUDPCounters()
			t, err := s.run()
			if d := readUDPCounters().sub(c0); d.ok && err == nil {
				s.udp.ok = true
				s.udp.in += d.in
				s.udp.out += d.out
				s.udp.rcvbufErrs += d.rcvbufErrs
				s.sent += int64(b.countOf(label))
			}
			switch {
			case errors.Is(err, errGSOUnsupported):
				s.na = true
				fmt.Fprintf(b.log, "  %s [%d/%d] %s: n/a (%v)\n", label, r+1, b.p.Runs, s.name, err)
				continue
			case err != nil:
				s.errs = append(s.errs, err.Error())
				fmt.Fprintf(b.log, "  %s [%d/%d] %s: error: %v\n", label, r+1, b.p.Runs, s.name, err)
				continue
			}
			if t.Capped {
				s.capped++
			}
			s.res = append(s.res, t)
			fmt.Fprintf(b.log, "  %s [%d/%d] %s: %s %s\n", label, r+1, b.p.Runs, s.name, num(metric(t)), unit)
		}
	}
	for _, s := range ss {
		d := runDetail{What: label + ", " + s.name, Unit: unit, Errors: s.errs}
		for _, t := range s.res {
			d.Values = append(d.Values, metric(t))
		}
		if s.na {
			d.Errors = append(d.Errors, "not available on this machine")
		}
		if s.udp.ok && s.sent > 0 {
			b.rep.note("%s, %s: %s UDP sends per message, %d kernel receive-buffer drops", label, s.name, num(float64(s.udp.out)/float64(s.sent)), s.udp.rcvbufErrs)
		}
		if s.capped > 0 {
			b.rep.note("%s, %s: %d of %d runs hit the %v time cap before their count", label, s.name, s.capped, len(s.res), b.capOf(label))
		}
		b.rep.Runs = append(b.rep.Runs, d)
	}
}

func (b *bencher) countOf(label string) int {
	switch label {
	case "4 100 B":
		return b.p.Count100
	case "2 1 MiB":
		return b.p.CountLarge
	}
	return b.p.Count1200
}

func (b *bencher) capOf(label string) time.Duration {
	if label == "4 100 B" {
		return b.p.Cap100
	}
	return b.p.Cap
}

// med is the median of metric over a series' runs, NaN if none succeeded.
func med(s *series, metric func(tput) float64) float64 {
	var xs []float64
	for _, t := range s.res {
		if v := metric(t); !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	return median(xs)
}

func mbps(t tput) float64              { return t.MBps() }
func msgsps(t tput) float64            { return t.MsgsPerSec() }
func allocsPer(t tput) float64         { return t.AllocsPerMsg() }
func cell(v float64) string            { return num(v) }
func named(n string, v float64) string { return n + " " + num(v) }

// rate formats messages per second with a k or M suffix.
func rate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// enetSeries is a series of the ENet peer, not available in a build
// without it (enet_stub.go).
func enetSeries(name string, run func() (tput, error)) *series {
	return &series{name: name, run: run, na: !enetAvailable}
}

// enetRate is ENet's cell in workload 4: "n/a" where the build has none.
func enetRate(s *series, v float64) string {
	if s.na {
		return "n/a"
	}
	return "unseq. " + rate(v)
}

// workload1 is reliable 1200-byte messages one way, and with it workload 6,
// the allocations per message of p2pcompat.
func (b *bencher) workload1() {
	const size = 1200
	n, limit := b.p.Count1200, b.p.Cap
	fmt.Fprintf(b.log, "workload 1: %d × %d B one way, %d runs per stack\n", n, size, b.p.Runs)
	udpA := &series{name: "plain UDP WriteTo", run: func() (tput, error) { return udpThroughput(udpWriteTo, size, n, limit) }}
	udpB := &series{name: "plain UDP batch64", run: func() (tput, error) { return udpThroughput(udpBatch, size, n, limit) }}
	udpC := &series{name: "plain UDP GSO", run: func() (tput, error) { return udpThroughput(udpGSO, size, n, limit) }}
	k := &series{name: "kcp-go", run: func() (tput, error) { return kcpThroughput(size, n, false, limit) }}
	q := &series{name: "quic-go", run: func() (tput, error) { return quicThroughput(b.tls, size, n, limit) }}
	en := enetSeries("ENet", func() (tput, error) { return enetThroughput(size, n, true, limit) })
	pp := &series{name: "p2pcompat", run: func() (tput, error) { return p2pThroughput(b.env, size, n, p2p.P2PSendReliable, limit, nil) }}
	b.interleave("1 1200 B", "MB/s", mbps, udpA, udpB, udpC, k, q, en, pp)

	a, bb, c := med(udpA, mbps), med(udpB, mbps), med(udpC, mbps)
	kv, qv, ev, pv := med(k, mbps), med(q, mbps), med(en, mbps), med(pp, mbps)
	b.udpBatch, b.udpGSO, b.haveUDPRef = bb, c, true
	rk, rq := ratio(pv, kv), ratio(pv, qv)
	b.rep.add(row{
		ID: "1-reliable-1200", Metric: "1 reliable 1200 B one way, MB/s",
		UDP: named("WriteTo", a), KCP: cell(kv), QUIC: cell(qv), ENet: cell(ev), P2P: cell(pv),
		Goal:  "p2p/kcp ≥ 1.20; p2p/quic ≥ 1.00",
		Ratio: fmtRatio(rk) + "; " + fmtRatio(rq),
		Met:   verdict(rk-1.2, rq-1.0),
	})
	b.rep.note("1 1200 B: p2pcompat/ENet %s (no goal)", fmtRatio(ratio(pv, ev)))
	b.rep.add(row{ID: "1-udp-batch", Metric: "1 plain UDP 1200 B, sendmmsg/recvmmsg ×64, MB/s", UDP: named("batch64", bb)})
	gso := named("GSO", c)
	if udpC.na {
		gso = "GSO n/a"
	}
	b.rep.add(row{ID: "1-udp-gso", Metric: fmt.Sprintf("1 plain UDP 1200 B, GSO ×%d + recvmmsg, MB/s", gsoSegments(size)), UDP: gso})
	delivered := func(t tput) float64 { return 100 * float64(t.Msgs) / float64(n) }
	var parts []string
	for _, s := range []*series{udpA, udpB, udpC} {
		if len(s.res) > 0 {
			parts = append(parts, s.name[len("plain UDP "):]+" "+num(med(s, delivered))+"%")
		}
	}
	b.rep.note("plain UDP is neither reliable nor paced: the sender writes as fast as the kernel takes datagrams and only what arrives is counted (1200 B datagrams that arrived, median: %s)", strings.Join(parts, ", "))
	b.rep.note("GSO sends %d segments of 1200 B per sendmsg: 64 would exceed one UDP datagram's 65,507 bytes", gsoSegments(size))

	pa := med(pp, allocsPer)
	b.rep.add(row{
		ID: "6-allocs", Metric: "6 allocs per message, 1200 B reliable (whole process)",
		KCP: cell(med(k, allocsPer)), QUIC: cell(med(q, allocsPer)), P2P: cell(pa),
		Goal: "p2p = 0", Ratio: "", Met: verdict(0.005 - pa),
	})
}

// workload2 is reliable 1 MiB messages one way.
func (b *bencher) workload2() {
	const size = 1 << 20
	n, limit := b.p.CountLarge, b.p.Cap
	fmt.Fprintf(b.log, "workload 2: %d × 1 MiB one way, %d runs per stack\n", n, b.p.Runs)
	ss := []*series{
		{name: "kcp-go (stream mode)", run: func() (tput, error) { return kcpThroughput(size, n, true, limit) }},
		{name: "quic-go", run: func() (tput, error) { return quicThroughput(b.tls, size, n, limit) }},
		enetSeries("ENet", func() (tput, error) { return enetThroughput(size, n, true, limit) }),
		{name: "p2pcompat", run: func() (tput, error) { return p2pThroughput(b.env, size, n, p2p.P2PSendReliable, limit, nil) }},
		// With the default 1 MiB send buffer a 1 MiB message is only taken
		// once the previous one is fully acknowledged; a larger buffer
		// shows what pipelining them would give.
		{name: "p2pcompat SendBufferSize 4 MiB", run: func() (tput, error) {
			return p2pThroughput(b.env, size, n, p2p.P2PSendReliable, limit, func(c *p2p.Config) { c.SendBufferSize = 4 << 20 })
		}},
	}
	var ub, uc *series
	if !b.haveUDPRef {
		// Workload 1 did not run: measure its plain UDP reference here.
		ub = &series{name: "plain UDP batch64 (1200 B)", run: func() (tput, error) { return udpThroughput(udpBatch, 1200, b.p.Count1200, limit) }}
		uc = &series{name: "plain UDP GSO (1200 B)", run: func() (tput, error) { return udpThroughput(udpGSO, 1200, b.p.Count1200, limit) }}
		ss = append([]*series{ub, uc}, ss...)
	}
	b.interleave("2 1 MiB", "MB/s", mbps, ss...)
	if ub != nil {
		b.udpBatch, b.udpGSO = med(ub, mbps), med(uc, mbps)
		if uc.na {
			b.udpGSO = math.NaN()
		}
		ss = ss[2:]
	}
	kv, qv, ev, pv, tv := med(ss[0], mbps), med(ss[1], mbps), med(ss[2], mbps), med(ss[3], mbps), med(ss[4], mbps)
	r := ratio(pv, b.udpBatch)
	gso := "GSO " + num(b.udpGSO)
	if math.IsNaN(b.udpGSO) {
		gso = "GSO n/a"
	}
	b.rep.add(row{
		ID: "2-reliable-1mib", Metric: "2 reliable 1 MiB messages one way, MB/s",
		UDP: "batch64 " + num(b.udpBatch) + "; " + gso, KCP: cell(kv) + " (stream)", QUIC: cell(qv), ENet: cell(ev), P2P: cell(pv),
		Goal: "p2p/plain batch64 ≥ 0.70", Ratio: fmtRatio(r) + " (vs GSO " + fmtRatio(ratio(pv, b.udpGSO)) + ")",
		Met: verdict(r - 0.70),
	})
	b.rep.note("2 1 MiB: p2pcompat/ENet %s (no goal)", fmtRatio(ratio(pv, ev)))
	b.rep.add(row{
		ID: "2-reliable-1mib-sendbuf", Metric: "2 … p2pcompat with Config.SendBufferSize 4 MiB, MB/s",
		P2P: cell(tv), Goal: "(tuned; reference only)", Ratio: fmtRatio(ratio(tv, b.udpBatch)),
	})
}

// workload3 is the 64-byte echo round trip. ENet runs twice, reliable
// and unsequenced: each p2pcompat row is set beside the ENet series of
// its kind; kcp-go and quic-go are reliable in both rows.
func (b *bencher) workload3() {
	const size = 64
	w, n, limit := b.p.RTTWarmup, b.p.RTTCount, b.p.RTTCap
	fmt.Fprintf(b.log, "workload 3: %d round trips of %d B after %d warm-up\n", n, size, w)
	type rtt struct {
		name string
		run  func() ([]time.Duration, error)
		na   bool // the stack is not in this build (ENet without cgo)
		p50  float64
		p99  float64
	}
	u := &rtt{name: "plain UDP", run: func() ([]time.Duration, error) { return udpRTT(size, w, n, limit) }}
	k := &rtt{name: "kcp-go", run: func() ([]time.Duration, error) { return kcpRTT(size, w, n, limit) }}
	q := &rtt{name: "quic-go", run: func() ([]time.Duration, error) { return quicRTT(b.tls, size, w, n, limit) }}
	er := &rtt{name: "ENet reliable", na: !enetAvailable, run: func() ([]time.Duration, error) { return enetRTT(size, w, n, true, false, limit) }}
	eu := &rtt{name: "ENet unsequenced", na: !enetAvailable, run: func() ([]time.Duration, error) { return enetRTT(size, w, n, false, false, limit) }}
	ers := &rtt{name: "ENet reliable, spinning", na: !enetAvailable, run: func() ([]time.Duration, error) { return enetRTT(size, w, n, true, true, limit) }}
	eus := &rtt{name: "ENet unsequenced, spinning", na: !enetAvailable, run: func() ([]time.Duration, error) { return enetRTT(size, w, n, false, true, limit) }}
	pr := &rtt{name: "p2pcompat reliable", run: func() ([]time.Duration, error) { return p2pRTT(b.env, p2p.P2PSendReliable, size, w, n, limit) }}
	pu := &rtt{name: "p2pcompat unreliable NoDelay", run: func() ([]time.Duration, error) {
		return p2pRTT(b.env, p2p.P2PSendUnreliableNoDelay, size, w, n, limit)
	}}
	for _, s := range []*rtt{u, k, q, er, eu, ers, eus, pr, pu} {
		if s.na {
			s.p50, s.p99 = math.NaN(), math.NaN()
			b.rep.Runs = append(b.rep.Runs, runDetail{What: "3 64 B RTT p50/p99, " + s.name, Unit: "µs", Errors: []string{"not in this build"}})
			continue
		}
		runtime.GC()
		d, err := s.run()
		s.p50, s.p99 = percentile(d, 50), percentile(d, 99)
		det := runDetail{What: "3 64 B RTT p50/p99, " + s.name, Unit: fmt.Sprintf("µs (%d samples)", len(d)), Values: []float64{s.p50, s.p99}}
		if err != nil {
			det.Errors = []string{err.Error()}
			b.rep.note("3 round trip, %s: %v (figures from the %d round trips before)", s.name, err, len(d))
		}
		if len(d) < n {
			b.rep.note("3 round trip, %s: only %d of %d round trips within the %v cap", s.name, len(d), n, limit)
		}
		b.rep.Runs = append(b.rep.Runs, det)
		fmt.Fprintf(b.log, "  3 %s: p50 %s µs, p99 %s µs\n", s.name, num(s.p50), num(s.p99))
	}
	for _, c := range []struct {
		p, e      *rtt
		id, label string
	}{
		{pr, er, "reliable", "p2p reliable; ENet reliable"},
		{pu, eu, "unreliable", "p2p unreliable NoDelay; ENet unsequenced"},
	} {
		p := c.p
		// The median below every peer's; ENet counts where the build has it.
		const strictly = 1e-9
		rk, rq, re := ratio(p.p50, k.p50), ratio(p.p50, q.p50), ratio(p.p50, c.e.p50)
		goal, ratios := "p2p < kcp and < quic", fmtRatio(rk)+"; "+fmtRatio(rq)
		checks := []float64{1 - rk - strictly, 1 - rq - strictly}
		if !c.e.na {
			goal, ratios = "p2p < kcp, < quic and < ENet", ratios+"; "+fmtRatio(re)
			checks = append(checks, 1-re-strictly)
		}
		b.rep.add(row{
			ID: "3-rtt-p50-" + c.id, Metric: "3 64 B round trip p50, µs (" + c.label + ")",
			UDP: cell(u.p50), KCP: cell(k.p50), QUIC: cell(q.p50), ENet: cell(c.e.p50), P2P: cell(p.p50),
			Goal: goal, Ratio: ratios, Met: verdict(checks...),
		})
		r := ratio(p.p99, u.p99)
		b.rep.add(row{
			ID: "3-rtt-p99-" + c.id, Metric: "3 64 B round trip p99, µs (" + c.label + ")",
			UDP: cell(u.p99), KCP: cell(k.p99), QUIC: cell(q.p99), ENet: cell(c.e.p99), P2P: cell(p.p99),
			Goal: "p2p ≤ 2 × plain UDP", Ratio: fmtRatio(r), Met: verdict(2 - r),
		})
	}
	if enetAvailable {
		b.rep.add(row{
			ID: "3-rtt-enet-spin", Metric: "3 … ENet spinning (enet_host_service timeout 0), p50 / p99, µs",
			ENet: fmt.Sprintf("rel. %s / %s; unseq. %s / %s", num(ers.p50), num(ers.p99), num(eus.p50), num(eus.p99)),
			Goal: "(both cores busy; reference only)",
		})
	}
}

// workload4 is 100-byte unreliable messages: what arrives per second.
func (b *bencher) workload4() {
	const size = 100
	n, limit := b.p.Count100, b.p.Cap100
	fmt.Fprintf(b.log, "workload 4: %d × %d B unreliable, %d runs per stack\n", n, size, b.p.Runs)
	u := &series{name: "plain UDP WriteTo", run: func() (tput, error) { return udpThroughput(udpWriteTo, size, n, limit) }}
	nd := &series{name: "p2pcompat UnreliableNoDelay", run: func() (tput, error) {
		return p2pThroughput(b.env, size, n, p2p.P2PSendUnreliableNoDelay, limit, nil)
	}}
	ng := &series{name: "p2pcompat Unreliable", run: func() (tput, error) {
		return p2pThroughput(b.env, size, n, p2p.P2PSendUnreliable, limit, nil)
	}}
	en := enetSeries("ENet unsequenced", func() (tput, error) { return enetThroughput(size, n, false, limit) })
	b.interleave("4 100 B", "msgs/s", msgsps, u, en, nd, ng)
	delivered := func(t tput) float64 { return 100 * float64(t.Msgs) / float64(n) }
	for _, s := range []*series{u, en, nd, ng} {
		if len(s.res) > 0 {
			b.rep.note("4 100 B, %s: %s%% of the messages arrived (median of runs)", s.name, num(med(s, delivered)))
		}
	}
	uv, ev := med(u, msgsps), med(en, msgsps)
	for _, s := range []*series{nd, ng} {
		pv := med(s, msgsps)
		r := ratio(pv, uv)
		id, label := "4-unreliable-nodelay", "UnreliableNoDelay"
		if s == ng {
			id, label = "4-unreliable", "Unreliable"
		}
		b.rep.add(row{
			ID: id, Metric: "4 100 B unreliable, msgs/s received (p2p " + label + ")",
			UDP: "WriteTo " + rate(uv), ENet: enetRate(en, ev), P2P: rate(pv),
			Goal: "p2p/plain ≥ 0.80", Ratio: fmtRatio(r), Met: verdict(r - 0.80),
		})
	}
}

// workload5 is many idle sessions of one Networking.
func (b *bencher) workload5() {
	n, d := b.p.Idle, b.p.IdleFor
	fmt.Fprintf(b.log, "workload 5: %d idle sessions, idle CPU over %v\n", n, d)
	runtime.GC()
	res, err := idleParent(n, d, b.log)
	bytesCell, cpuCell, grCell := num(res.BytesPerSession), num(res.CPUPercent), fmt.Sprintf("%d (%d before)", res.Goroutines, res.GoroutinesIdle0)
	metB, metC := verdict(2048-res.BytesPerSession), verdict(1-res.CPUPercent-1e-9)
	if err != nil {
		b.rep.note("5 idle sessions: %v", err)
		bytesCell, cpuCell, grCell, metB, metC = "error", "error", "error", "n/a", "n/a"
	} else {
		b.rep.note("5 idle: HeapInuse growth %s B/session; sessions established in %v; %d of %d still connected after the idle period",
			num(res.InusePerSession), res.Established.Round(time.Millisecond), res.Active, n)
	}
	b.rep.add(row{
		ID: "5-idle-bytes", Metric: fmt.Sprintf("5 idle sessions: heap bytes per session (%d)", n),
		P2P: bytesCell, Goal: "≤ 2048", Ratio: fmtRatio(ratio(res.BytesPerSession, 2048)), Met: metB,
	})
	b.rep.add(row{
		ID: "5-idle-cpu", Metric: fmt.Sprintf("5 idle CPU, %% of one core (%d sessions, %v)", n, d),
		P2P: cpuCell, Goal: "< 1%", Ratio: fmtRatio(ratio(res.CPUPercent, 1)), Met: metC,
	})
	b.rep.add(row{ID: "5-idle-goroutines", Metric: fmt.Sprintf("5 goroutines with %d idle sessions", n), P2P: grCell})
}

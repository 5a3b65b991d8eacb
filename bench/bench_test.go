package main

import (
	"errors"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// The benchmarks are the cores of the command's workloads, one message (or
// round trip) per iteration, so that -benchtime 1x is quick and a longer
// -benchtime gives steadier figures. Each run sets up its own connection,
// outside the figures it reports: rcvMB/s and msgs/s are counted like the
// command's, from the first send to the last receive.

// benchLimit caps one benchmark run, whatever b.N is.
const benchLimit = time.Minute

// reportTput returns what reports a throughput run's outcome, so that the
// run's two results can be passed to it directly.
func reportTput(b *testing.B) func(tput, error) {
	return func(t tput, err error) { reportTputOf(b, t, err) }
}

func reportTputOf(b *testing.B, t tput, err error) {
	b.Helper()
	if errors.Is(err, errGSOUnsupported) {
		b.Skip("GSO is not supported here")
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(t.MBps(), "rcvMB/s")
	b.ReportMetric(t.MsgsPerSec(), "msgs/s")
	b.ReportMetric(t.AllocsPerMsg(), "allocs/msg")
}

func benchEnv(b *testing.B) *p2pEnv {
	b.Helper()
	e, err := newP2PEnv()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.close)
	return e
}

func benchTLS(b *testing.B) *tlsPair {
	b.Helper()
	t, err := newTLSPair()
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkUDPWriteTo1200(b *testing.B) {
	reportTput(b)(udpThroughput(udpWriteTo, 1200, b.N, benchLimit))
}

func BenchmarkUDPBatch1200(b *testing.B) {
	reportTput(b)(udpThroughput(udpBatch, 1200, b.N, benchLimit))
}

func BenchmarkUDPGSO1200(b *testing.B) {
	reportTput(b)(udpThroughput(udpGSO, 1200, b.N, benchLimit))
}

func BenchmarkKCPReliable1200(b *testing.B) {
	reportTput(b)(kcpThroughput(1200, b.N, false, benchLimit))
}

func BenchmarkQUICReliable1200(b *testing.B) {
	t := benchTLS(b)
	reportTput(b)(quicThroughput(t, 1200, b.N, benchLimit))
}

func BenchmarkP2PReliable1200(b *testing.B) {
	e := benchEnv(b)
	reportTput(b)(p2pThroughput(e, 1200, b.N, p2p.P2PSendReliable, benchLimit, nil))
}

func BenchmarkKCPReliable1MiB(b *testing.B) {
	reportTput(b)(kcpThroughput(1<<20, b.N, true, benchLimit))
}

func BenchmarkQUICReliable1MiB(b *testing.B) {
	t := benchTLS(b)
	reportTput(b)(quicThroughput(t, 1<<20, b.N, benchLimit))
}

func BenchmarkP2PReliable1MiB(b *testing.B) {
	e := benchEnv(b)
	reportTput(b)(p2pThroughput(e, 1<<20, b.N, p2p.P2PSendReliable, benchLimit, nil))
}

func BenchmarkUDPWriteTo100(b *testing.B) {
	reportTput(b)(udpThroughput(udpWriteTo, 100, b.N, benchLimit))
}

func BenchmarkP2PUnreliableNoDelay100(b *testing.B) {
	e := benchEnv(b)
	reportTput(b)(p2pThroughput(e, 100, b.N, p2p.P2PSendUnreliableNoDelay, benchLimit, nil))
}

func BenchmarkP2PUnreliable100(b *testing.B) {
	e := benchEnv(b)
	reportTput(b)(p2pThroughput(e, 100, b.N, p2p.P2PSendUnreliable, benchLimit, nil))
}

// reportRTT returns what reports a round-trip series.
func reportRTT(b *testing.B) func([]time.Duration, error) {
	return func(d []time.Duration, err error) { reportRTTOf(b, d, err) }
}

func reportRTTOf(b *testing.B, d []time.Duration, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(percentile(d, 50), "p50-µs")
	b.ReportMetric(percentile(d, 99), "p99-µs")
}

// The round-trip benchmarks warm up with a tenth of b.N more round trips.

func BenchmarkUDPRoundTrip64(b *testing.B) {
	reportRTT(b)(udpRTT(64, b.N/10, b.N, benchLimit))
}

func BenchmarkKCPRoundTrip64(b *testing.B) {
	reportRTT(b)(kcpRTT(64, b.N/10, b.N, benchLimit))
}

func BenchmarkQUICRoundTrip64(b *testing.B) {
	t := benchTLS(b)
	reportRTT(b)(quicRTT(t, 64, b.N/10, b.N, benchLimit))
}

func BenchmarkP2PRoundTrip64Reliable(b *testing.B) {
	e := benchEnv(b)
	reportRTT(b)(p2pRTT(e, p2p.P2PSendReliable, 64, b.N/10, b.N, benchLimit))
}

func BenchmarkP2PRoundTrip64Unreliable(b *testing.B) {
	e := benchEnv(b)
	reportRTT(b)(p2pRTT(e, p2p.P2PSendUnreliableNoDelay, 64, b.N/10, b.N, benchLimit))
}

// The ENet benchmarks skip where the build has no ENet (enet_stub.go).

func skipNoENet(b *testing.B) {
	b.Helper()
	if !enetAvailable {
		b.Skip("ENet left out of this build (no cgo, or -tags noenet)")
	}
}

func BenchmarkENetReliable1200(b *testing.B) {
	skipNoENet(b)
	reportTput(b)(enetThroughput(1200, b.N, true, benchLimit))
}

func BenchmarkENetReliable1MiB(b *testing.B) {
	skipNoENet(b)
	reportTput(b)(enetThroughput(1<<20, b.N, true, benchLimit))
}

func BenchmarkENetUnsequenced100(b *testing.B) {
	skipNoENet(b)
	reportTput(b)(enetThroughput(100, b.N, false, benchLimit))
}

func BenchmarkENetRoundTrip64Reliable(b *testing.B) {
	skipNoENet(b)
	reportRTT(b)(enetRTT(64, b.N/10, b.N, true, false, benchLimit))
}

func BenchmarkENetRoundTrip64Unsequenced(b *testing.B) {
	skipNoENet(b)
	reportRTT(b)(enetRTT(64, b.N/10, b.N, false, false, benchLimit))
}

func BenchmarkENetRoundTrip64ReliableSpin(b *testing.B) {
	skipNoENet(b)
	reportRTT(b)(enetRTT(64, b.N/10, b.N, true, true, benchLimit))
}

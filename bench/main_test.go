package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as workload 5's child and as the
// -cabi comparison's Go processes: the command re-executes its own binary
// with -idle-peers or -cabi-peer, which under go test is this one.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "-idle-peers" || os.Args[1] == cabiPeerFlag) {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestQuickRun runs every workload in -quick mode and checks that the table
// has every row, each with a p2pcompat figure where it should have one.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole benchmark in -quick mode (about 10 s of loopback traffic); skipped under -short")
	}
	var log bytes.Buffer
	rep, err := measure(options{quick: true}, &log)
	if err != nil {
		t.Fatalf("measure: %v\nprogress:\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.print(&out)
	table := out.String()
	t.Logf("\n%s", table)

	want := []string{
		"1-reliable-1200", "1-udp-batch", "1-udp-gso", "6-allocs",
		"2-reliable-1mib", "2-reliable-1mib-sendbuf",
		"3-rtt-p50-reliable", "3-rtt-p99-reliable", "3-rtt-p50-unreliable", "3-rtt-p99-unreliable",
		"4-unreliable-nodelay", "4-unreliable",
		"5-idle-bytes", "5-idle-cpu", "5-idle-goroutines",
	}
	if enetAvailable {
		want = append(want, "3-rtt-enet-spin")
	}
	rows := map[string]row{}
	for _, r := range rep.Rows {
		rows[r.ID] = r
	}
	for _, id := range want {
		r, ok := rows[id]
		if !ok {
			t.Errorf("row %s missing from the report", id)
			continue
		}
		if !strings.Contains(table, r.Metric) {
			t.Errorf("row %s (%q) missing from the printed table", id, r.Metric)
		}
		if strings.HasPrefix(id, "1-udp") {
			continue // plain UDP only
		}
		if id == "3-rtt-enet-spin" {
			if !strings.HasPrefix(r.ENet, "rel. ") || strings.Contains(r.ENet, "n/a") {
				t.Errorf("row %s has no ENet figures: %q", id, r.ENet)
			}
			continue // ENet only
		}
		if r.P2P == "" || r.P2P == "n/a" || r.P2P == "error" {
			t.Errorf("row %s has no p2pcompat figure: %q", id, r.P2P)
		}
		if enetAvailable && strings.Contains("1-reliable-1200 2-reliable-1mib 3-rtt-p50-reliable 3-rtt-p99-reliable 3-rtt-p50-unreliable 3-rtt-p99-unreliable 4-unreliable-nodelay 4-unreliable", id) {
			if r.ENet == "" || strings.Contains(r.ENet, "n/a") || r.ENet == "error" {
				t.Errorf("row %s has no ENet figure: %q", id, r.ENet)
			}
		}
		if r.Goal != "" && !strings.HasPrefix(r.Goal, "(") && r.Met != "met" && r.Met != "not met" {
			t.Errorf("row %s has a goal but no verdict: %q", id, r.Met)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("report has %d rows, want %d", len(rows), len(want))
	}
}

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCABIQuick runs the -cabi comparison in -quick mode: it builds the
// library and the C program, runs both sides once and checks that the
// table has every row with both figures and a verdict where there is a
// goal. Without a C compiler it skips, unless P2PCOMPAT_CABI_REQUIRE=1.
func TestCABIQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds libsteam_api.so and runs the C ABI comparison in -quick mode; skipped under -short")
	}
	if _, err := cCompiler(); err != nil {
		if os.Getenv("P2PCOMPAT_CABI_REQUIRE") == "1" {
			t.Fatalf("a C compiler is required (P2PCOMPAT_CABI_REQUIRE=1): %v", err)
		}
		t.Skipf("the C ABI comparison needs a C compiler: %v", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("the C ABI comparison builds the library with the go command: %v", err)
	}
	var log bytes.Buffer
	rep, err := measureCABI(cabiQuick, &log)
	if err != nil {
		t.Fatalf("measureCABI: %v\nprogress:\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.print(&out)
	table := out.String()
	t.Logf("\n%s", table)

	want := map[string]bool{"cabi-rtt-p50": true, "cabi-rtt-p99": true, "cabi-tput": true}
	rows := rep.rows()
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		if !want[r.ID] {
			t.Errorf("unexpected row %s", r.ID)
		}
		if !strings.Contains(table, r.Metric) {
			t.Errorf("row %s (%q) missing from the printed table", r.ID, r.Metric)
		}
		if r.Go == "n/a" || r.C == "n/a" || r.Go == "0" || r.C == "0" {
			t.Errorf("row %s lacks a figure: Go %q, C %q", r.ID, r.Go, r.C)
		}
		if r.Goal != "" && r.Met != "met" && r.Met != "not met" {
			t.Errorf("row %s has a goal but no verdict: %q", r.ID, r.Met)
		}
	}
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %q", rep.Errors)
	}
}

// TestParseCABI reads the C program's result lines.
func TestParseCABI(t *testing.T) {
	out := "result rtt64 samples 500 p50_us 17.50 p99_us 80.25 min_us 9.00 max_us 120.00\n" +
		"result tput1200 msgs 5000 bytes 6000000 seconds 0.020000 mbps 300.0 send_false 12\n"
	r, err := parseCABI(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.P50 != 17.5 || r.P99 != 80.25 || r.MBps != 300 || r.SendFull != 12 {
		t.Errorf("parseCABI = %+v", r)
	}
	if _, err := parseCABI("result rtt64 samples 1 p50_us 1 p99_us 1 min_us 1 max_us 1\n"); err == nil {
		t.Error("parseCABI without a throughput line: no error")
	}
}

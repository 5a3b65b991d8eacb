package main

import (
	"testing"
	"time"
)

// A small -regflood, so that the load program keeps building and running:
// the flood is sent, the server challenges it, and every player registers
// and gets its lookups answered. Figures come from the full run.
func TestRegFloodSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("two runs of loopback traffic (about 4 s); skipped under -short")
	}
	regLen, err := registerLen()
	if err != nil {
		t.Fatal(err)
	}
	if regLen != 388 {
		t.Fatalf("a client's REGISTER is %d bytes; the attacker's messages are built for 388", regLen)
	}
	control, flooded, err := regFlood(floodParams{pps: 1000, sources: 40, readers: 2, duration: 1500 * time.Millisecond}, regLen)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []floodResult{control, flooded} {
		if r.regFailed != 0 || r.regOK != floodPlayers || r.lookups == 0 {
			t.Errorf("%s: %d players registered, %d failed, %d lookups answered", r.name, r.regOK, r.regFailed, r.lookups)
		}
	}
	if flooded.sent == 0 || flooded.stats.Challenges < flooded.sent/4 {
		t.Errorf("flood: %d sent, %d challenged", flooded.sent, flooded.stats.Challenges)
	}
	t.Logf("control lookups p99 %v, flood %v; %d sent, %d challenged, %d rate limited", control.lookP99, flooded.lookP99, flooded.sent, flooded.stats.Challenges, flooded.stats.RateLimited)
}

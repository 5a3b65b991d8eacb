package p2p

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixtureSessions covers every state, both kinds of path, sessions with
// and without an engine, rates, errors, candidates and pairs.
func fixtureSessions() []SessionInfo {
	ap := netip.MustParseAddrPort
	local := ap("192.168.1.10:27015")
	return []SessionInfo{
		{
			Remote: 76561198000000002, State: "established", Path: "direct",
			LocalAddr: local, RemoteAddr: ap("198.51.100.7:40002"),
			RTT: 1234567 * time.Nanosecond, RTTVar: 250 * time.Microsecond, MinRTT: 980 * time.Microsecond,
			Loss: 0.005, PacketsSent: 600, PacketsLost: 3, PacketsRecv: 580,
			BytesSent: 1258291, BytesRecv: 57344,
			QueuedBytes: 1536, QueuedPackets: 3, Cwnd: 14720, BytesInFlight: 2944,
			InRate: 2048.5, OutRate: 131072, RateWindow: 1250 * time.Millisecond,
			Channels: []int{0, 1, 7}, Accepted: true, RemoteAccepted: true,
			Age: 65400 * time.Millisecond, Idle: 120 * time.Millisecond,
			LastErrorName: "None",
			Candidates: []PeerCandidate{
				{ap("192.168.7.2:40002"), "host"},
				{ap("198.51.100.7:40002"), "srflx"},
				{ap("203.0.113.9:51000"), "relay"},
			},
			Pairs: []PathPair{
				{Via: "socket", Addr: ap("198.51.100.7:40002"), Kind: "srflx", Heard: 120 * time.Millisecond, Active: true},
				{Via: "turn", Addr: ap("198.51.100.7:40002"), Kind: "srflx", Heard: 4500 * time.Millisecond},
			},
		},
		{
			Remote: 76561198000000003, State: "established", Path: "relay",
			LocalAddr: local, RemoteAddr: ap("192.0.2.44:61000"), RelayServer: ap("203.0.113.5:3478"),
			RTT: 48250 * time.Microsecond, RTTVar: 3100 * time.Microsecond, MinRTT: 41 * time.Millisecond,
			Loss: 0.0123, PacketsSent: 10000, PacketsLost: 123, PacketsRecv: 9800,
			BytesSent: 3 << 30, BytesRecv: 5 << 20,
			Cwnd: 1 << 20, BytesInFlight: 300 << 10,
			InRate: 700, OutRate: 2.5 * (1 << 20), RateWindow: 1020 * time.Millisecond,
			Channels: []int{3}, Accepted: true, RemoteAccepted: true,
			Age: 2*time.Hour + 3*time.Minute + 4500*time.Millisecond, Idle: 1500 * time.Microsecond,
			LastErrorName: "None",
			Candidates:    []PeerCandidate{{ap("192.0.2.44:61000"), "srflx"}},
			Pairs: []PathPair{
				{Via: "turn", Addr: ap("192.0.2.44:61000"), Kind: "srflx", Heard: 3 * time.Millisecond, Active: true},
			},
		},
		{
			Remote: 76561198000000004, State: "connecting",
			LocalAddr: local, Channels: []int{},
			Age: 800 * time.Millisecond, Idle: 800 * time.Millisecond,
			LastErrorName: "None",
		},
		{
			Remote: 76561198000000005, State: "failed",
			LocalAddr: local, Channels: []int{0},
			Age: 20500 * time.Millisecond, Idle: 20500 * time.Millisecond,
			LastError: P2PSessionErrorTimeout, LastErrorName: "Timeout",
			Candidates: []PeerCandidate{{ap("198.51.100.20:1024"), "srflx"}},
		},
		{
			Remote: 76561198000000006, State: "lookup",
			LocalAddr: local, Channels: []int{2}, Accepted: true,
			RTTVar: 0, QueuedBytes: 64, QueuedPackets: 1, Cwnd: 14720,
			Age: 15 * time.Millisecond, Idle: 15 * time.Millisecond,
			LastErrorName: "None",
		},
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestWriteTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writeTable(&b, fixtureSessions()); err != nil {
		t.Fatal(err)
	}
	golden(t, "sessions.golden", b.Bytes())
	for i, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %d ends in a space: %q", i, l)
		}
	}
}

func TestWriteTableEmpty(t *testing.T) {
	for _, ss := range [][]SessionInfo{nil, {}} {
		var b bytes.Buffer
		if err := writeTable(&b, ss); err != nil {
			t.Fatal(err)
		}
		if b.String() != "no sessions\n" {
			t.Fatalf("empty table: %q", b.String())
		}
	}
}

func TestWriteDetailGolden(t *testing.T) {
	var b bytes.Buffer
	for i, s := range fixtureSessions() {
		if i > 0 {
			b.WriteString("\n")
		}
		if err := writeDetail(&b, s); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "detail.golden", b.Bytes())
}

// Every field of SessionInfo appears, labelled, in the detailed status.
func TestWriteDetailHasEveryField(t *testing.T) {
	var b bytes.Buffer
	if err := writeDetail(&b, fixtureSessions()[0]); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{
		"Remote": "Session", "State": "State", "Path": "Path", "LocalAddr": "Local address",
		"RemoteAddr": "Remote address", "RelayServer": "Relay server", "RTT": "RTT (smoothed)",
		"RTTVar": "RTT variation", "MinRTT": "Min RTT", "Loss": "Loss", "PacketsSent": "Packets sent",
		"PacketsLost": "Packets lost", "PacketsRecv": "Packets received", "BytesSent": "Bytes sent",
		"BytesRecv": "Bytes received", "QueuedBytes": "Queued bytes", "QueuedPackets": "Queued packets",
		"Cwnd": "Congestion window", "BytesInFlight": "Bytes in flight", "InRate": "In rate",
		"OutRate": "Out rate", "RateWindow": "Rate window", "Channels": "Channels",
		"Accepted": "Accepted by us", "RemoteAccepted": "Accepted by peer", "Age": "Age", "Idle": "Idle",
		"LastError": "Last error", "LastErrorName": "Last error", "Candidates": "Candidates", "Pairs": "Pairs",
	}
	typ := reflect.TypeFor[SessionInfo]()
	for i := range typ.NumField() {
		f := typ.Field(i).Name
		label, ok := labels[f]
		if !ok {
			t.Errorf("field %s has no label in this test", f)
			continue
		}
		if !strings.Contains(b.String(), "\n"+label+":") && !strings.HasPrefix(b.String(), label+":") {
			t.Errorf("field %s: no line labelled %q in\n%s", f, label, b.String())
		}
	}
}

func TestSessionInfoJSONRoundTrip(t *testing.T) {
	in := fixtureSessions()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []SessionInfo
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the sessions:\n in  %+v\n out %+v\n json %s", in, out, b)
	}

	// The field names are stable, and mean what SessionInfo says.
	var raw []map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(raw[0]))
	for k := range raw[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{
		"accepted", "age_us", "bytes_in_flight", "bytes_recv", "bytes_sent", "candidates", "channels",
		"cwnd", "idle_us", "in_bytes_per_sec", "last_error", "last_error_name", "local_addr", "loss",
		"min_rtt_us", "out_bytes_per_sec", "packets_lost", "packets_recv", "packets_sent", "pairs",
		"path", "queued_bytes", "queued_packets", "rate_window_us", "relay_server", "remote_accepted",
		"remote_addr", "rtt_us", "rttvar_us", "state", "steamid",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("JSON fields\n got %q\nwant %q", keys, want)
	}
	for _, frag := range []string{
		`"steamid":"76561198000000002"`, `"rtt_us":1234.567`, `"rttvar_us":250`, `"age_us":65400000`,
		`"remote_addr":"198.51.100.7:40002"`, `"relay_server":""`, `"heard_us":120000`,
		`"last_error":4`, `"last_error_name":"Timeout"`, `"channels":[]`, `"candidates":null`,
	} {
		if !bytes.Contains(b, []byte(frag)) {
			t.Errorf("JSON lacks %s:\n%s", frag, b)
		}
	}
}

func TestMicrosJSON(t *testing.T) {
	for _, d := range []time.Duration{
		0, 1, 10, 999, 1000, 1001, 1010, 1100, -1, -1500, 1234567, 36 * time.Hour,
		math.MaxInt64, math.MinInt64, math.MinInt64 + 1,
	} {
		b, err := json.Marshal(micros(d))
		if err != nil {
			t.Fatal(err)
		}
		var got micros
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%d ns as %s: %v", d, b, err)
		}
		if time.Duration(got) != d {
			t.Errorf("%d ns: encoded %s, decoded %d", d, b, got)
		}
	}
	for in, want := range map[string]time.Duration{
		"1.5": 1500, "1e3": time.Millisecond, "2.25e-1": 225, "-0.001": -1, "0.0004": 0, "12.3456": 12346,
	} {
		var got micros
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if time.Duration(got) != want {
			t.Errorf("%s µs decoded to %d ns, want %d", in, got, want)
		}
	}
	var got micros
	if err := json.Unmarshal([]byte("1e300"), &got); err == nil {
		t.Error("1e300 µs decoded without error")
	}
}

func TestAcceptsJSON(t *testing.T) {
	for h, want := range map[string]bool{
		"application/json":                    true,
		"text/plain, application/json;q=0.5":  true,
		"application/json; charset=utf-8":     true,
		"application/json;q=0":                false,
		"*/*":                                 false,
		"text/html,application/xhtml+xml,*/*": false,
		"":                                    false,
	} {
		if got := acceptsJSON([]string{h}); got != want {
			t.Errorf("Accept %q: json %v, want %v", h, got, want)
		}
	}
}

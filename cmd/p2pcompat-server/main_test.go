package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/testsupport"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// runMainEnv, set to 1 in the environment of the test binary, makes it run
// main instead of the tests: TestSIGTERM runs the server so.
const runMainEnv = "RUN_P2PCOMPAT_SERVER_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// within bounds every wait of these tests, as a guard against hanging;
// nothing takes anywhere near as long.
const within = 20 * time.Second

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		<-tick.C
	}
}

func TestParseApps(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint32
		bad  bool
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "480", want: []uint32{480}},
		{in: "480,730", want: []uint32{480, 730}},
		{in: " 480 , 730 ", want: []uint32{480, 730}},
		{in: "4294967295", want: []uint32{4294967295}},
		{in: "4294967296", bad: true},
		{in: "480,", bad: true},
		{in: "-1", bad: true},
		{in: "abc", bad: true},
	} {
		got, err := parseApps(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseApps(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseApps(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// runOnce runs the binary in-process with args and environ until it
// stops by itself, which a usage error or -h makes it do at once.
func runOnce(args, environ []string) (code int, stdout, stderr string) {
	var out, errs testsupport.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	// Should it start serving after all, it stops at once.
	cancel()
	code = run(ctx, runEnv{args: args, environ: environ, stdout: &out, stderr: &errs})
	return code, out.String(), errs.String()
}

// safeEnv keeps a run that should fail on a usage error, but does not, on
// loopback and without an admin listener.
var safeEnv = []string{"P2PCOMPAT_LISTEN=127.0.0.1:0", "P2PCOMPAT_ADMIN=off"}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-apps", "x"},
		{"extra"},
		{"-turn", "127.0.0.1:3478"}, // without -turn-secret
		{"-turn", "127.0.0.1:3478,", "-turn-secret", "s"},
		{"-turn", "127.0.0.1", "-turn-secret", "s"},
		{"-nonsense"},
		{"-listen", "nonsense"},
		{"-relay-ip", "not an address"},
		{"-relay-ip", "2001:db8::1"},
		{"-relay-ip", "224.0.0.1"}, // refused by the server: not unicast
		{"-turn", "nohost", "-turn-secret", "s"},
		{"-secret-file", filepath.Join(t.TempDir(), "missing")},
		{"-secret-file", writeFile(t, "\n")},
		{"-secret-file", writeFile(t, "")},
		{"-hide-presence=maybe"},
		{"-rate-limit", "fast"},
		{"-rate-limit", "NaN"},
		{"-rate-burst", "-1"},
		{"-readers", "-1"},
		{"-readers", "many"},
		{"-admin", "nonsense"},
		{"-log-format", "xml"},
		{"-log-level", "loud"},
	} {
		if code, _, stderr := runOnce(args, safeEnv); code != 2 {
			t.Errorf("run %q = %d, want 2; output:\n%s", args, code, stderr)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{
		"-listen", "127.0.0.1:4000",
		"-apps", "480",
		"-relay-ip", "198.18.0.1",
		"-turn", "turn1.example:3478, 198.18.0.2:3478",
		"-turn", "198.18.0.3:3479",
		"-turn-secret", "s3cret",
		"-admin", "127.0.0.1:9999",
		"-log-format", "JSON",
		"-log-level", "warn",
	}, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := [9]any{cfg.server.ListenAddr, cfg.server.AllowedApps, cfg.server.RelayIP, cfg.server.TURN, cfg.server.TURNSecret, cfg.server.Logger, cfg.admin, cfg.logFormat, cfg.logLevel}
	want := [9]any{"127.0.0.1:4000", []uint32{480}, "198.18.0.1", []string{"turn1.example:3478", "198.18.0.2:3478", "198.18.0.3:3479"}, "s3cret", (*slog.Logger)(nil), "127.0.0.1:9999", "json", slog.LevelWarn}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed %v, want %v", got, want)
	}
	cfg, err = parseFlags(nil, nil, io.Discard, io.Discard)
	s := cfg.server
	if err != nil || s.ListenAddr != ":3478" || s.RelayIP != "" || s.TURN != nil || s.Secret != nil || s.HidePresence || s.RateLimit != 0 || s.RateBurst != 0 ||
		cfg.admin != "127.0.0.1:9090" || cfg.logFormat != "text" || cfg.logLevel != slog.LevelInfo || cfg.unknownEnv != nil {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	for _, off := range []string{"", "off"} {
		if cfg, err := parseFlags([]string{"-admin", off}, nil, io.Discard, io.Discard); err != nil || cfg.admin != "" {
			t.Errorf("-admin %q: admin %q, %v; want it off", off, cfg.admin, err)
		}
	}

	for content, want := range map[string]string{
		"s3cret\n":           "s3cret",
		"s3cret\r\n":         "s3cret",
		"s3cret":             "s3cret",
		"two\nlines\n":       "two\nlines",
		" spaced s3cret \n":  " spaced s3cret ",
		"\x00binary\xff\n\n": "\x00binary\xff\n",
	} {
		cfg, err = parseFlags([]string{"-secret-file", writeFile(t, content), "-hide-presence", "-rate-limit", "12.5", "-rate-burst", "40"}, nil, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		got := [4]any{string(cfg.server.Secret), cfg.server.HidePresence, cfg.server.RateLimit, cfg.server.RateBurst}
		if want := [4]any{want, true, 12.5, 40}; got != want {
			t.Fatalf("secret file %q: parsed %q, want %q", content, got, want)
		}
	}
}

// envCase is a flag, two values for it, and what the configuration holds
// with each.
type envCase struct {
	flag         string
	a, b         string
	wantA, wantB any
	get          func(config) any
}

func envCases(t *testing.T) []envCase {
	return []envCase{
		{"listen", "127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:4000", "127.0.0.1:4001", func(c config) any { return c.server.ListenAddr }},
		{"apps", "480,730", "440", []uint32{480, 730}, []uint32{440}, func(c config) any { return c.server.AllowedApps }},
		{"relay-ip", "198.18.0.1", "198.18.0.2", "198.18.0.1", "198.18.0.2", func(c config) any { return c.server.RelayIP }},
		{"turn", "turn1.example:3478,198.18.0.2:3478", "198.18.0.3:3479", []string{"turn1.example:3478", "198.18.0.2:3478"}, []string{"198.18.0.3:3479"}, func(c config) any { return c.server.TURN }},
		{"turn-secret", "env secret", "flag secret", "env secret", "flag secret", func(c config) any { return c.server.TURNSecret }},
		{"secret-file", writeFile(t, "env secret\n"), writeFile(t, "flag secret\n"), "env secret", "flag secret", func(c config) any { return string(c.server.Secret) }},
		{"server-key-file", writeFile(t, strings.Repeat("11", 32)+"\n"), writeFile(t, strings.Repeat("22", 32)), [32]byte(bytes.Repeat([]byte{0x11}, 32)), [32]byte(bytes.Repeat([]byte{0x22}, 32)), func(c config) any { return c.server.PrivateKey }},
		{"hide-presence", "true", "false", true, false, func(c config) any { return c.server.HidePresence }},
		{"rate-limit", "12.5", "-1", 12.5, -1.0, func(c config) any { return c.server.RateLimit }},
		{"rate-burst", "40", "7", 40, 7, func(c config) any { return c.server.RateBurst }},
		{"readers", "3", "1", 3, 1, func(c config) any { return c.server.Readers }},
		{"admin", "127.0.0.1:9999", "off", "127.0.0.1:9999", "", func(c config) any { return c.admin }},
		{"log-format", "json", "text", "json", "text", func(c config) any { return c.logFormat }},
		{"log-level", "debug", "error", slog.LevelDebug, slog.LevelError, func(c config) any { return c.logLevel }},
	}
}

// flagNames lists every flag the command defines.
func flagNames() []string {
	fs, _ := newFlagSet(io.Discard)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// Every flag's environment variable sets it; a flag on the command line
// wins over its variable.
func TestEnvironment(t *testing.T) {
	cases := envCases(t)
	covered := make(map[string]bool)
	for _, tc := range cases {
		covered[tc.flag] = true
	}
	for _, name := range flagNames() {
		if !covered[name] {
			t.Errorf("-%s has no environment case", name)
		}
	}
	// -turn needs a secret; the cases of -turn-secret override it.
	base := []string{"P2PCOMPAT_TURN_SECRET=base secret"}
	for _, tc := range cases {
		env := append(base[:len(base):len(base)], envName(tc.flag)+"="+tc.a)
		var stderr bytes.Buffer
		cfg, err := parseFlags(nil, env, io.Discard, &stderr)
		if err != nil {
			t.Errorf("%s=%q: %v\n%s", envName(tc.flag), tc.a, err, stderr.String())
			continue
		}
		if got := tc.get(cfg); !reflect.DeepEqual(got, tc.wantA) {
			t.Errorf("%s=%q: got %#v, want %#v", envName(tc.flag), tc.a, got, tc.wantA)
		}
		cfg, err = parseFlags([]string{"-" + tc.flag + "=" + tc.b}, env, io.Discard, &stderr)
		if err != nil {
			t.Errorf("%s=%q and -%s=%q: %v\n%s", envName(tc.flag), tc.a, tc.flag, tc.b, err, stderr.String())
			continue
		}
		if got := tc.get(cfg); !reflect.DeepEqual(got, tc.wantB) {
			t.Errorf("%s=%q and -%s=%q: got %#v, want the flag's %#v", envName(tc.flag), tc.a, tc.flag, tc.b, got, tc.wantB)
		}
	}

	// An empty variable is unset; the last of a name counts, as in
	// os.Getenv; a variable with the prefix that names no flag is noted.
	cfg, err := parseFlags(nil, []string{"P2PCOMPAT_RATE_LIMIT=", "P2PCOMPAT_LOG_LEVEL=warn", "P2PCOMPAT_LOG_LEVEL=error", "P2PCOMPAT_RATELIMIT=5", "OTHER=1"}, io.Discard, io.Discard)
	if err != nil || cfg.server.RateLimit != 0 || cfg.logLevel != slog.LevelError || !reflect.DeepEqual(cfg.unknownEnv, []string{"P2PCOMPAT_RATELIMIT"}) {
		t.Fatalf("rate limit %v, log level %v, unknown %q, %v; want 0, ERROR, [P2PCOMPAT_RATELIMIT]", cfg.server.RateLimit, cfg.logLevel, cfg.unknownEnv, err)
	}
}

// A variable with a value its flag would refuse is a usage error that
// names the variable.
func TestBadEnvironment(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"P2PCOMPAT_LISTEN", "nonsense"},
		{"P2PCOMPAT_APPS", "x"},
		{"P2PCOMPAT_RELAY_IP", "not an address"},
		{"P2PCOMPAT_TURN", "nohost"},
		{"P2PCOMPAT_TURN", "198.18.0.1:3478"}, // without a secret
		// P2PCOMPAT_TURN_SECRET: any value is a secret.
		{"P2PCOMPAT_SECRET_FILE", filepath.Join(t.TempDir(), "missing")},
		{"P2PCOMPAT_HIDE_PRESENCE", "maybe"},
		{"P2PCOMPAT_RATE_LIMIT", "fast"},
		{"P2PCOMPAT_RATE_BURST", "-1"},
		{"P2PCOMPAT_RATE_BURST", "many"},
		{"P2PCOMPAT_ADMIN", "nonsense"},
		{"P2PCOMPAT_LOG_FORMAT", "xml"},
		{"P2PCOMPAT_LOG_LEVEL", "loud"},
	} {
		env := append(safeEnv[:len(safeEnv):len(safeEnv)], tc.name+"="+tc.value)
		code, _, stderr := runOnce(nil, env)
		if code != 2 || !strings.Contains(stderr, tc.name) {
			t.Errorf("%s=%q: exit %d, want 2 and the variable named; output:\n%s", tc.name, tc.value, code, stderr)
		}
	}
}

// -h lists every flag with its variable and default, on stdout, and exits 0.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		code, stdout, stderr := runOnce([]string{arg}, nil)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q; want 0 and nothing", arg, code, stderr)
		}
		fs, _ := newFlagSet(io.Discard)
		fs.VisitAll(func(f *flag.Flag) {
			_, after, ok := strings.Cut(stdout, "\n  -"+f.Name)
			if !ok {
				t.Errorf("%s does not list -%s:\n%s", arg, f.Name, stdout)
				return
			}
			// The flag's entry runs to the next flag's.
			entry, _, _ := strings.Cut(after, "\n  -")
			if !strings.Contains(entry, "Environment: "+envName(f.Name)+".") || !strings.Contains(entry, "Default: ") {
				t.Errorf("%s: the entry of -%s names no variable or default:\n%s", arg, f.Name, entry)
			}
			if len(strings.Fields(entry)) < 10 {
				t.Errorf("%s: the entry of -%s explains little:\n%s", arg, f.Name, entry)
			}
		})
		for _, want := range []string{"/healthz", "/metrics", "SIGTERM"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s does not mention %s", arg, want)
			}
		}
	}
}

// writeFile writes content to a new file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// instance is the binary running in-process.
type instance struct {
	udp   netip.AddrPort
	admin string // the admin listener's base URL
	srv   *rendezvous.Server
	logs  *testsupport.SyncBuffer
}

// serving runs the binary in-process with args, after -listen and -admin
// on loopback, until the test ends.
func serving(t *testing.T, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *instance, 1)
	exited := make(chan int, 1)
	logs := new(testsupport.SyncBuffer)
	args = append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...)
	go func() {
		exited <- run(ctx, runEnv{args: args, stdout: io.Discard, stderr: logs, started: func(s *rendezvous.Server, admin net.Addr) {
			in := &instance{udp: s.Addr().(*net.UDPAddr).AddrPort(), srv: s, logs: logs}
			if admin != nil {
				in.admin = "http://" + admin.String()
			}
			started <- in
		}})
	}()
	var in *instance
	select {
	case in = <-started:
	case code := <-exited:
		cancel()
		t.Fatalf("run exited with %d:\n%s", code, logs.String())
	}
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("run exited with %d:\n%s", code, logs.String())
		}
	})
	return in
}

var httpClient = &http.Client{Timeout: within}

// get fetches url and returns the status and body.
func get(url string) (int, string, http.Header, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// client is a keyed rendezvous client on its own loopback socket, with
// its reader; lookups' answers go to results.
type client struct {
	*rendezvous.Client
	results chan rendezvous.LookupResult
}

func newClient(t *testing.T, server netip.AddrPort, id uint64, app uint32, token string) client {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan rendezvous.LookupResult, 16)
	c, err := rendezvous.NewClient(rendezvous.ClientConfig{
		SteamID:    id,
		AppID:      app,
		PublicKey:  [32]byte(priv.PublicKey().Bytes()),
		PrivateKey: [32]byte(priv.Bytes()),
		Server:     server,
		Token:      token,
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := conn.WriteToUDPAddrPort(b, to)
			return err
		},
		OnLookup: func(r rendezvous.LookupResult) { results <- r },
		// Loopback loses nothing: no retransmissions or refreshes, so
		// that the server's counts are exact.
		RetransmitInterval: time.Hour,
		RefreshInterval:    time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.HandleInbound(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		conn.Close()
		<-done
	})
	return client{c, results}
}

func register(c client) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	_, err := c.Register(ctx)
	return err
}

// result waits for the answer to a lookup.
func (c client) result(t *testing.T) rendezvous.LookupResult {
	t.Helper()
	select {
	case r := <-c.results:
		return r
	case <-time.After(within):
		t.Fatal("no answer to a lookup")
		panic("unreachable")
	}
}

// The binary serves in-process with an embedded relay, and a client that
// registers learns the relay and credentials for it.
func TestRunServesWithRelay(t *testing.T) {
	in := serving(t, "-relay-ip", "127.0.0.1")
	c := newClient(t, in.udp, 1, 480, "")
	if err := register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	relays := c.Relays()
	if len(relays) != 1 || relays[0].Addr != in.udp || relays[0].Username == "" || relays[0].Password == "" {
		t.Fatalf("relays %+v, want the embedded relay at %v with credentials", relays, in.udp)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, "relay_ip=127.0.0.1") {
		t.Errorf("the log does not say where the relay is:\n%s", logs)
	}
	// Without -secret-file the server is open, and says so.
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "no registration secret") {
		t.Errorf("the log does not warn of an open server:\n%s", logs)
	}
}

// With -secret-file, only players with a token made under the file's
// secret register; with -hide-presence, a lookup of a user who is offline
// goes unanswered.
func TestRunWithSecretAndHidePresence(t *testing.T) {
	secret := "a secret shared with the game's back end"
	in := serving(t, "-secret-file", writeFile(t, secret+"\n"), "-hide-presence")
	if logs := in.logs.String(); !strings.Contains(logs, "tokens=true") || !strings.Contains(logs, "hide_presence=true") {
		t.Errorf("the log does not say that tokens are required and presence hidden:\n%s", logs)
	}

	var refused *rendezvous.RefusedError
	if err := register(newClient(t, in.udp, 1, 480, "")); !errors.As(err, &refused) || refused.Reason != rendezvous.RefuseTokenMissing {
		t.Fatalf("Register without a token: %v, want refused for a missing token", err)
	}
	// The trailing newline is not part of the secret.
	wrong, err := rendezvous.IssueToken([]byte(secret+"\n"), 1, 480, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := register(newClient(t, in.udp, 1, 480, wrong)); !errors.As(err, &refused) || refused.Reason != rendezvous.RefuseTokenInvalid {
		t.Fatalf("Register with a token under another secret: %v, want refused as invalid", err)
	}
	var clients []client
	for id := uint64(1); id <= 2; id++ {
		tok, err := rendezvous.IssueToken([]byte(secret), id, 480, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(t, in.udp, id, 480, tok)
		if err := register(c); err != nil {
			t.Fatalf("Register %d with its token: %v", id, err)
		}
		clients = append(clients, c)
	}
	a := clients[0]
	a.Lookup(99, 1) // offline
	// The server answers in order, over loopback: an answer about 99 would
	// come first.
	a.Lookup(2, 2)
	if r := a.result(t); r.Target != 2 || r.Status != rendezvous.LookupOK {
		t.Fatalf("first answer %+v, want 2 online", r)
	}
	st := in.srv.Stats()
	if st.LookupsHidden != 1 || st.Refused[rendezvous.RefuseTokenMissing] != 1 || st.Refused[rendezvous.RefuseTokenInvalid] != 1 {
		t.Errorf("stats %+v: want a hidden lookup, a registration refused for a missing token and one for an invalid token", st)
	}
}

// /healthz answers 200 while the server serves and 503 once it is
// shutting down; the log ends with "stopped".
func TestRunHealth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := new(testsupport.SyncBuffer)
	type answer struct {
		code int
		body string
		err  error
	}
	var before, during answer
	var base string
	code := run(ctx, runEnv{
		args:   []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"},
		stdout: io.Discard,
		stderr: logs,
		started: func(_ *rendezvous.Server, admin net.Addr) {
			base = "http://" + admin.String()
			before.code, before.body, _, before.err = get(base + "/healthz")
			cancel()
		},
		stopping: func() {
			during.code, during.body, _, during.err = get(base + "/healthz")
		},
	})
	if code != 0 {
		t.Fatalf("run exited with %d:\n%s", code, logs.String())
	}
	if before != (answer{200, "ok\n", nil}) {
		t.Errorf("/healthz while serving: %+v, want 200 ok", before)
	}
	if during.err != nil || during.code != http.StatusServiceUnavailable {
		t.Errorf("/healthz once shutting down: %+v, want 503", during)
	}
	// And once stopped, nothing listens any more.
	if _, _, _, err := get(base + "/healthz"); err == nil {
		t.Errorf("the admin listener still answers after run returned")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "msg=stopped") {
		t.Errorf("the log does not end with stopped:\n%s", logs.String())
	}
}

// The admin handler: /healthz follows the serving flag, /metrics serves
// the exposition format, and nothing else is there.
func TestAdminHandler(t *testing.T) {
	var serving atomic.Bool
	serving.Store(true)
	st := rendezvous.ServerStats{
		Registrations: 3,
		Refused:       map[rendezvous.RefuseReason]uint64{rendezvous.RefuseServerFull: 2, rendezvous.RefuseInvalid: 0},
		LookupsHidden: 5,
		Online:        7,
		OnlineByApp:   map[uint32]int64{730: 3, 480: 4},
		RateLimited:   11,
	}
	h := adminHandler(&serving, func() rendezvous.ServerStats { return st }, time.Unix(1_700_000_000, 500_000_000))
	do := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	if w := do("GET", "/healthz"); w.Code != 200 || w.Body.String() != "ok\n" {
		t.Errorf("/healthz while serving: %d %q", w.Code, w.Body.String())
	}
	if w := do("HEAD", "/healthz"); w.Code != 200 {
		t.Errorf("HEAD /healthz while serving: %d", w.Code)
	}
	serving.Store(false)
	if w := do("GET", "/healthz"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthz once shutting down: %d %q, want 503", w.Code, w.Body.String())
	}
	w := do("GET", "/metrics")
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: %d, %q", w.Code, w.Header().Get("Content-Type"))
	}
	samples, err := parseExposition(w.Body.String())
	if err != nil {
		t.Fatalf("/metrics is not in the exposition format: %v\n%s", err, w.Body.String())
	}
	checkSamples(t, samples, map[string]float64{
		"p2pcompat_start_time_seconds":                                      1_700_000_000.5,
		"p2pcompat_registrations_total":                                     3,
		`p2pcompat_registrations_refused_total{reason="server_full"}`:       2,
		`p2pcompat_registrations_refused_total{reason="invalid"}`:           0,
		`p2pcompat_lookups_total{result="hidden"}`:                          5,
		`p2pcompat_lookups_total{result="found"}`:                           0,
		"p2pcompat_online_users":                                            7,
		`p2pcompat_app_online_users{app="480"}`:                             4,
		`p2pcompat_app_online_users{app="730"}`:                             3,
		`p2pcompat_dropped_datagrams_total{reason="rate_limited"}`:          11,
		`p2pcompat_dropped_datagrams_total{reason="bad_mac"}`:               0,
		`p2pcompat_relay_bytes_total{direction="to_peers"}`:                 0,
		`p2pcompat_relay_allocations`:                                       0,
		`p2pcompat_registrations_refused_total{reason="token_wrong_appid"}`: -1, // absent: not in the snapshot
	})
	for _, path := range []string{"/", "/metric", "/healthz/x"} {
		if w := do("GET", path); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}
	if w := do("POST", "/metrics"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", w.Code)
	}
}

// checkSamples checks that samples hold want; a want of -1 is a series
// that must be absent.
func checkSamples(t *testing.T, samples map[string]float64, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		got, ok := samples[series]
		switch {
		case v == -1 && ok:
			t.Errorf("%s = %v, want no such series", series, got)
		case v != -1 && !ok:
			t.Errorf("no series %s", series)
		case v != -1 && got != v:
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
}

// After real clients register and look each other up, /metrics counts
// exactly that.
func TestRunMetrics(t *testing.T) {
	in := serving(t, "-apps", "480")
	a := newClient(t, in.udp, 1, 480, "")
	b := newClient(t, in.udp, 2, 480, "")
	for _, c := range []client{a, b} {
		if err := register(c); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	var refused *rendezvous.RefusedError
	if err := register(newClient(t, in.udp, 3, 730, "")); !errors.As(err, &refused) || refused.Reason != rendezvous.RefuseNoRightsToApp {
		t.Fatalf("Register under an AppID not admitted: %v, want refused", err)
	}
	a.Lookup(2, 7)
	if r := a.result(t); r.Target != 2 || r.Status != rendezvous.LookupOK {
		t.Fatalf("A's lookup of B: %+v", r)
	}
	a.Lookup(99, 8)
	if r := a.result(t); r.Target != 99 || r.Status != rendezvous.LookupNotOnline {
		t.Fatalf("A's lookup of 99: %+v", r)
	}
	// Each client registers twice, first without the cookie (challenged)
	// and then with it (and authenticated, if keyed); and B acknowledges
	// A's offer, which the server passes on.
	waitFor(t, func() bool {
		st := in.srv.Stats()
		return st.Registrations == 2 && st.Deliveries == 1 && st.DatagramsOut == 10
	}, "both clients authenticated and the offer acknowledged")

	code, body, header, err := get(in.admin + "/metrics")
	if err != nil || code != 200 || header.Get("Content-Type") != metricsContentType {
		t.Fatalf("/metrics: %d, %q, %v", code, header.Get("Content-Type"), err)
	}
	samples, err := parseExposition(body)
	if err != nil {
		t.Fatalf("/metrics is not in the exposition format: %v\n%s", err, body)
	}
	// In: A's two registrations and two lookups, B's two registrations
	// and receipt, the refused client's two. Out: three CHALLENGEs, two
	// REGISTERED, a REFUSED, two lookup results, an offer and a DELIVERED.
	want := map[string]float64{
		"p2pcompat_udp_received_datagrams_total":                          9,
		"p2pcompat_udp_sent_datagrams_total":                              10,
		"p2pcompat_registrations_total":                                   2,
		"p2pcompat_registration_challenges_total":                         3,
		`p2pcompat_registrations_refused_total{reason="app_not_allowed"}`: 1,
		`p2pcompat_registrations_refused_total{reason="token_missing"}`:   0,
		`p2pcompat_lookups_total{result="found"}`:                         1,
		`p2pcompat_lookups_total{result="not_online"}`:                    1,
		`p2pcompat_lookups_total{result="other_app"}`:                     0,
		`p2pcompat_lookups_total{result="hidden"}`:                        0,
		"p2pcompat_offers_total":                                          1,
		"p2pcompat_deliveries_total":                                      1,
		"p2pcompat_online_users":                                          2,
		`p2pcompat_app_online_users{app="480"}`:                           2,
		"p2pcompat_relay_allocations":                                     0,
		"p2pcompat_relay_allocations_total":                               0,
		"p2pcompat_udp_write_errors_total":                                0,
	}
	for _, reason := range []string{"rate_limited", "malformed", "unrecognized", "bad_mac", "unauthorized", "relay_queue_full"} {
		want[`p2pcompat_dropped_datagrams_total{reason="`+reason+`"}`] = 0
	}
	checkSamples(t, samples, want)
	st := in.srv.Stats()
	checkSamples(t, samples, map[string]float64{
		"p2pcompat_udp_received_bytes_total": float64(st.BytesIn),
		"p2pcompat_udp_sent_bytes_total":     float64(st.BytesOut),
	})
	if st.BytesIn == 0 || st.BytesOut == 0 {
		t.Errorf("bytes in %d, out %d: want some of each", st.BytesIn, st.BytesOut)
	}
}

// With -log-format json, every line of the log is a JSON object with a
// time, a level and a message.
func TestRunJSONLogs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := new(testsupport.SyncBuffer)
	code := run(ctx, runEnv{
		args:    []string{"-log-format", "json", "-log-level", "debug"},
		environ: []string{"P2PCOMPAT_LISTEN=127.0.0.1:0", "P2PCOMPAT_ADMIN=127.0.0.1:0", "P2PCOMPAT_RATELIMIT=5"},
		stdout:  io.Discard,
		stderr:  logs,
		started: func(s *rendezvous.Server, _ net.Addr) {
			c := newClient(t, s.Addr().(*net.UDPAddr).AddrPort(), 1, 480, "")
			if err := register(c); err != nil {
				t.Errorf("Register: %v", err)
			}
			cancel()
		},
	})
	if code != 0 {
		t.Fatalf("run exited with %d:\n%s", code, logs.String())
	}
	msgs := checkJSONLines(t, logs.String())
	for _, want := range []string{"admin listening", "rendezvous server listening", "rendezvous: registered", "ignoring an environment variable that matches no flag", "shutting down", "stopped"} {
		if !msgs[want] {
			t.Errorf("no %q in the log:\n%s", want, logs.String())
		}
	}
}

// checkJSONLines checks that every line of logs is a JSON object with a
// time, a level and a message, and returns the set of messages.
func checkJSONLines(t *testing.T, logs string) map[string]bool {
	t.Helper()
	msgs := make(map[string]bool)
	for _, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q: %v", line, err)
			continue
		}
		msg, _ := rec["msg"].(string)
		if _, ok := rec["time"].(string); !ok || rec["level"] == nil || msg == "" {
			t.Errorf("a JSON line without time, level or msg: %q", line)
		}
		msgs[msg] = true
	}
	return msgs
}

// The binary, run as its own process, stops on SIGTERM: it logs stopped
// and exits 0.
func TestSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-listen", "127.0.0.1:0")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, runMainEnv+"=") {
			env = append(env, kv)
		}
	}
	// GORACE: a race-enabled binary otherwise lingers a second at exit.
	cmd.Env = append(env, runMainEnv+"=1", "P2PCOMPAT_ADMIN=127.0.0.1:0", "P2PCOMPAT_LOG_FORMAT=json", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := new(testsupport.SyncBuffer)
	adminAddr := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "admin listening" {
				adminAddr <- rec.Addr
			}
		}
		// All of stderr is read: now Wait may close the pipe.
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	})
	timeout := time.NewTimer(within)
	defer timeout.Stop()

	var addr string
	select {
	case addr = <-adminAddr:
	case err := <-exited:
		stopped = true
		t.Fatalf("the server exited before serving: %v\n%s", err, logs.String())
	case <-timeout.C:
		t.Fatalf("the server did not start:\n%s", logs.String())
	}
	if code, body, _, err := get("http://" + addr + "/healthz"); err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q %v, want 200 ok", code, body, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
		stopped = true
	case <-timeout.C:
		t.Fatalf("the server did not stop on SIGTERM:\n%s", logs.String())
	}
	if err != nil {
		t.Fatalf("the server exited with %v, want status 0:\n%s", err, logs.String())
	}
	msgs := checkJSONLines(t, logs.String())
	if !msgs["stopped"] || !msgs["shutting down"] {
		t.Errorf("the log does not say it shut down and stopped:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "terminated signal received") {
		t.Errorf("the log does not name the signal:\n%s", logs.String())
	}
}

// parseExposition checks text against the Prometheus text exposition
// format, version 0.0.4, and the naming rules the server keeps to, and
// returns its samples by series, "name{labels}" as written. Every family
// has one HELP and one TYPE line before its samples, which come together;
// a counter's name ends in _total; every sample line is
// `name{label="value",...} value`; no series comes twice.
func parseExposition(text string) (map[string]float64, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("does not end with a newline")
	}
	samples := make(map[string]float64)
	help := make(map[string]bool)
	types := make(map[string]string)
	done := make(map[string]bool) // families whose samples are over
	current := ""                 // the family of the latest line
	enter := func(family string) error {
		if family != current {
			if done[family] {
				return fmt.Errorf("family %s comes twice", family)
			}
			if current != "" {
				done[current] = true
			}
			current = family
		}
		return nil
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kw, rest, _ := strings.Cut(rest, " ")
			name, arg, _ := strings.Cut(rest, " ")
			switch kw {
			case "HELP", "TYPE":
				if !validName(name, true) {
					return nil, fail("bad metric name")
				}
				if err := enter(name); err != nil {
					return nil, fail("%v", err)
				}
			}
			switch kw {
			case "HELP":
				if help[name] {
					return nil, fail("second HELP")
				}
				if arg == "" {
					return nil, fail("empty HELP")
				}
				help[name] = true
			case "TYPE":
				if types[name] != "" {
					return nil, fail("second TYPE")
				}
				switch arg {
				case "counter":
					if !strings.HasSuffix(name, "_total") {
						return nil, fail("a counter not named *_total")
					}
				case "gauge", "untyped", "histogram", "summary":
				default:
					return nil, fail("unknown type %q", arg)
				}
				types[name] = arg
			}
			continue
		}
		if line == "" || line[0] == '#' {
			return nil, fail("not a sample, HELP or TYPE line")
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fail("no value")
		}
		name := series
		if open := strings.IndexByte(series, '{'); open >= 0 {
			name = series[:open]
			if err := checkLabels(series[open:]); err != nil {
				return nil, fail("%v", err)
			}
		}
		if !validName(name, true) {
			return nil, fail("bad metric name")
		}
		if !help[name] || types[name] == "" {
			return nil, fail("a sample before its family's HELP and TYPE")
		}
		if err := enter(name); err != nil {
			return nil, fail("%v", err)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fail("value: %v", err)
		}
		if _, dup := samples[series]; dup {
			return nil, fail("series comes twice")
		}
		samples[series] = v
	}
	for name := range help {
		if types[name] == "" {
			return nil, fmt.Errorf("family %s has HELP but no TYPE", name)
		}
	}
	return samples, nil
}

// validName reports whether s is a metric name (colons allowed) or a
// label name.
func validName(s string, metric bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case c == ':' && metric:
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkLabels checks a label set, `{name="value",...}`.
func checkLabels(s string) error {
	if !strings.HasSuffix(s, "}") || len(s) < 2 {
		return errors.New("unterminated label set")
	}
	s = s[1 : len(s)-1]
	seen := make(map[string]bool)
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !validName(name, false) || seen[name] {
			return fmt.Errorf("bad or repeated label name %q", name)
		}
		seen[name] = true
		if !strings.HasPrefix(rest, `"`) {
			return fmt.Errorf("label %s: value not quoted", name)
		}
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' {
				i++
				if i >= len(rest) || !strings.ContainsRune(`\"n`, rune(rest[i])) {
					return fmt.Errorf("label %s: bad escape", name)
				}
			}
			if rest[i] == '\n' {
				return fmt.Errorf("label %s: raw newline", name)
			}
		}
		if i >= len(rest) {
			return fmt.Errorf("label %s: unterminated value", name)
		}
		s = rest[i+1:]
		if s != "" {
			if s[0] != ',' || len(s) == 1 {
				return fmt.Errorf("label %s: junk after the value", name)
			}
			s = s[1:]
		}
	}
	return nil
}

// The checker itself refuses what breaks the format.
func TestParseExposition(t *testing.T) {
	good := "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\na_total{x=\"2\"} 4\n# HELP g G.\n# TYPE g gauge\ng -1\n"
	samples, err := parseExposition(good)
	if err != nil || !reflect.DeepEqual(samples, map[string]float64{`a_total{x="1",y="q\""}`: 3, `a_total{x="2"}`: 4, "g": -1}) {
		t.Fatalf("good text: %v, %v", samples, err)
	}
	for _, bad := range []string{
		"# HELP g G.\n# TYPE g gauge\ng 1",                          // no final newline
		"g 1\n",                                                     // no HELP or TYPE
		"# TYPE g gauge\ng 1\n",                                     // no HELP
		"# HELP g G.\ng 1\n",                                        // no TYPE
		"# HELP c C.\n# TYPE c counter\nc 1\n",                      // counter not *_total
		"# HELP g G.\n# TYPE g gauge\ng one\n",                      // bad value
		"# HELP g G.\n# TYPE g gauge\ng{x=1} 1\n",                   // unquoted label
		"# HELP g G.\n# TYPE g gauge\ng{x=\"1\"} 1\ng{x=\"1\"} 2\n", // duplicate series
		"# HELP g G.\n# TYPE g gauge\ng 1\n# HELP h H.\n# TYPE h gauge\nh 1\ng 2\n", // family split
		"# HELP g G.\n# TYPE g gauge\ng{1x=\"1\"} 1\n",                              // bad label name
		"# HELP g G.\n# TYPE g gauge\n\ng 1\n",                                      // blank line
		"# HELP g G.\n# TYPE g gauge\ng{x=\"1\"\n",                                  // no value
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// -server-key-file makes the key once, mode 0600, and every later start
// (another node) reads the same; a file that holds no key is a usage error.
func TestServerKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.key")
	first, err := parseFlags([]string{"-server-key-file", path}, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || first.server.PrivateKey == ([32]byte{}) {
		t.Fatalf("key file %v, mode %v, key %x", err, st.Mode(), first.server.PrivateKey)
	}
	again, err := parseFlags([]string{"-server-key-file", path}, nil, io.Discard, io.Discard)
	if err != nil || again.server.PrivateKey != first.server.PrivateKey {
		t.Fatalf("second start: %v, key %x, want %x", err, again.server.PrivateKey, first.server.PrivateKey)
	}
	if _, err := parseFlags([]string{"-server-key-file", writeFile(t, "not hex\n")}, nil, io.Discard, io.Discard); err == nil {
		t.Fatal("a key file without a key was taken")
	}
}

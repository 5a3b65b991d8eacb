package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

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

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-apps", "x"},
		{"extra"},
		{"-turn", "127.0.0.1:3478"}, // without -turn-secret
		{"-turn", "127.0.0.1:3478,", "-turn-secret", "s"},
		{"-nonsense"},
		{"-listen", "127.0.0.1:0", "-relay-ip", "not an address"},
		{"-listen", "127.0.0.1:0", "-turn", "nohost", "-turn-secret", "s"},
		{"-listen", "127.0.0.1:0", "-secret-file", filepath.Join(t.TempDir(), "missing")},
		{"-listen", "127.0.0.1:0", "-secret-file", writeFile(t, "\n")},
		{"-listen", "127.0.0.1:0", "-secret-file", writeFile(t, "")},
		{"-listen", "127.0.0.1:0", "-hide-presence=maybe"},
		{"-listen", "127.0.0.1:0", "-rate-limit", "fast"},
		{"-listen", "127.0.0.1:0", "-rate-burst", "-1"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, nil); code != 2 {
			t.Errorf("run %q = %d, want 2; output:\n%s", args, code, out.String())
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
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := [6]any{cfg.ListenAddr, cfg.AllowedApps, cfg.RelayIP, cfg.TURN, cfg.TURNSecret, cfg.Logger}
	want := [6]any{"127.0.0.1:4000", []uint32{480}, "198.18.0.1", []string{"turn1.example:3478", "198.18.0.2:3478", "198.18.0.3:3479"}, "s3cret", (*slog.Logger)(nil)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed %v, want %v", got, want)
	}
	cfg, err = parseFlags(nil, io.Discard)
	if err != nil || cfg.ListenAddr != ":3478" || cfg.RelayIP != "" || cfg.TURN != nil || cfg.Secret != nil || cfg.HidePresence || cfg.RateLimit != 0 || cfg.RateBurst != 0 {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}

	for content, want := range map[string]string{
		"s3cret\n":           "s3cret",
		"s3cret\r\n":         "s3cret",
		"s3cret":             "s3cret",
		"two\nlines\n":       "two\nlines",
		" spaced s3cret \n":  " spaced s3cret ",
		"\x00binary\xff\n\n": "\x00binary\xff\n",
	} {
		cfg, err = parseFlags([]string{"-secret-file", writeFile(t, content), "-hide-presence", "-rate-limit", "12.5", "-rate-burst", "40"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		got := [4]any{string(cfg.Secret), cfg.HidePresence, cfg.RateLimit, cfg.RateBurst}
		if want := [4]any{want, true, 12.5, 40}; got != want {
			t.Fatalf("secret file %q: parsed %q, want %q", content, got, want)
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

// serving runs the binary in-process with args until the test ends, and
// returns the server's address and its log.
func serving(t *testing.T, args ...string) (netip.AddrPort, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *rendezvous.Server, 1)
	exited := make(chan int, 1)
	logs := new(syncBuffer)
	go func() {
		exited <- run(ctx, args, logs, func(s *rendezvous.Server) { started <- s })
	}()
	var srv *rendezvous.Server
	select {
	case srv = <-started:
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
	return srv.Addr().(*net.UDPAddr).AddrPort(), logs
}

// client is a keyed rendezvous client on its own loopback socket, with
// its reader; lookups' answers go to results.
type client struct {
	*rendezvous.Client
	results chan rendezvous.LookupResult
}

func newClient(t *testing.T, server netip.AddrPort, id uint64, token string) client {
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
		AppID:      480,
		PublicKey:  [32]byte(priv.PublicKey().Bytes()),
		PrivateKey: [32]byte(priv.Bytes()),
		Server:     server,
		Token:      token,
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := conn.WriteToUDPAddrPort(b, to)
			return err
		},
		OnLookup: func(r rendezvous.LookupResult) { results <- r },
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Register(ctx)
	return err
}

// The binary serves in-process with an embedded relay, and a client that
// registers learns the relay and credentials for it.
func TestRunServesWithRelay(t *testing.T) {
	addr, logs := serving(t, "-listen", "127.0.0.1:0", "-relay-ip", "127.0.0.1")
	c := newClient(t, addr, 1, "")
	if err := register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	relays := c.Relays()
	if len(relays) != 1 || relays[0].Addr != addr || relays[0].Username == "" || relays[0].Password == "" {
		t.Fatalf("relays %+v, want the embedded relay at %v with credentials", relays, addr)
	}
	if !strings.Contains(logs.String(), "relay_ip=127.0.0.1") {
		t.Errorf("the log does not say where the relay is:\n%s", logs.String())
	}
	// Without -secret-file the server is open, and says so.
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no registration secret") {
		t.Errorf("the log does not warn of an open server:\n%s", logs.String())
	}
}

// With -secret-file, only players with a token made under the file's
// secret register; with -hide-presence, a lookup of a user who is offline
// goes unanswered.
func TestRunWithSecretAndHidePresence(t *testing.T) {
	secret := "a secret shared with the game's back end"
	addr, logs := serving(t, "-listen", "127.0.0.1:0", "-secret-file", writeFile(t, secret+"\n"), "-hide-presence")
	if !strings.Contains(logs.String(), "tokens=true") || !strings.Contains(logs.String(), "hide_presence=true") {
		t.Errorf("the log does not say that tokens are required and presence hidden:\n%s", logs.String())
	}

	var refused *rendezvous.RefusedError
	if err := register(newClient(t, addr, 1, "")); !errors.As(err, &refused) || refused.Reason != rendezvous.RefuseTokenMissing {
		t.Fatalf("Register without a token: %v, want refused for a missing token", err)
	}
	// The trailing newline is not part of the secret.
	wrong, err := rendezvous.IssueToken([]byte(secret+"\n"), 1, 480, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := register(newClient(t, addr, 1, wrong)); !errors.As(err, &refused) || refused.Reason != rendezvous.RefuseTokenInvalid {
		t.Fatalf("Register with a token under another secret: %v, want refused as invalid", err)
	}
	var clients []client
	for id := uint64(1); id <= 2; id++ {
		tok, err := rendezvous.IssueToken([]byte(secret), id, 480, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(t, addr, id, tok)
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
	select {
	case r := <-a.results:
		if r.Target != 2 || r.Status != rendezvous.LookupOK {
			t.Fatalf("first answer %+v, want 2 online", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer to a lookup of a user online")
	}
}

// syncBuffer is a bytes.Buffer that the server's log and the test may use
// at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

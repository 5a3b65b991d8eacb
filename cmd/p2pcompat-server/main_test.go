package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/netip"
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
	if err != nil || cfg.ListenAddr != ":3478" || cfg.RelayIP != "" || cfg.TURN != nil {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

// The binary serves in-process with an embedded relay, and a client that
// registers learns the relay and credentials for it.
func TestRunServesWithRelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan *rendezvous.Server, 1)
	exited := make(chan int, 1)
	var logs syncBuffer
	go func() {
		exited <- run(ctx, []string{"-listen", "127.0.0.1:0", "-relay-ip", "127.0.0.1"}, &logs, func(s *rendezvous.Server) { started <- s })
	}()
	var srv *rendezvous.Server
	select {
	case srv = <-started:
	case code := <-exited:
		t.Fatalf("run exited with %d:\n%s", code, logs.String())
	}
	addr := srv.Addr().(*net.UDPAddr).AddrPort()

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rendezvous.NewClient(rendezvous.ClientConfig{
		SteamID:    1,
		AppID:      480,
		PublicKey:  [32]byte(priv.PublicKey().Bytes()),
		PrivateKey: [32]byte(priv.Bytes()),
		Server:     addr,
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := conn.WriteToUDPAddrPort(b, to)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.HandleInbound(buf[:n], from)
		}
	}()
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if _, err := c.Register(rctx); err != nil {
		t.Fatalf("Register: %v", err)
	}
	relays := c.Relays()
	if len(relays) != 1 || relays[0].Addr != addr || relays[0].Username == "" || relays[0].Password == "" {
		t.Fatalf("relays %+v, want the embedded relay at %v with credentials", relays, addr)
	}

	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("run exited with %d:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), "relay_ip=127.0.0.1") {
		t.Errorf("the log does not say where the relay is:\n%s", logs.String())
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

package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// A failed init answers failure, writes a message into the error buffer
// and the log that says what is wrong and which setting to change, and
// leaves the library uninitialised (pipe 0).
func TestInitFailureSaysWhy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prog := compileProgram(t, dir, "initerr", "testdata/initerr.c")
	// A rendezvous address where nothing answers: a socket of ours that
	// reads nothing.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	server := silent.LocalAddr().String()
	logPath := filepath.Join(dir, "p2pcompat.log")

	run := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(prog, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}

	got := run(gameEnv(t, server, individualBase+1, 480, "P2PCOMPAT_REGISTER_TIMEOUT=300ms", "P2PCOMPAT_LOG="+logPath))
	want := "rc=2 pipe=0 init=0 err=p2pcompat: no rendezvous answered at " + server + " (P2PCOMPAT_RENDEZVOUS)"
	if got != want {
		t.Errorf("silent rendezvous:\n got %s\nwant %s", got, want)
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "no rendezvous answered at "+server) {
		t.Errorf("log %q (%v) does not say why", b, err)
	}

	env := gameEnv(t, server, individualBase+1, 480)
	for i, kv := range env {
		if strings.HasPrefix(kv, "SteamAppId=") {
			env = append(env[:i], env[i+1:]...)
			break
		}
	}
	got = run(env)
	if !strings.HasPrefix(got, "rc=1 pipe=0 init=0 err=p2pcompat: no AppID") {
		t.Errorf("no AppID: %s", got)
	}

	// Settings the game puts into its own environment just before init
	// count: the library reads the environment as it is then.
	addr := startRendezvous(t, rendezvous.ServerConfig{})
	got = run(env, "SteamAppId=480", "P2PCOMPAT_RENDEZVOUS="+addr)
	if got != "rc=0 pipe=21328 init=1 err=" {
		t.Errorf("settings made with setenv before init: %s", got)
	}

	got = run(gameEnv(t, addr, individualBase+1, 480))
	if got != "rc=0 pipe=21328 init=1 err=" {
		t.Errorf("a working rendezvous: %s", got)
	}
}

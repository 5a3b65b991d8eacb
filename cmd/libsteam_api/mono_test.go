package main

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// monoGame compiles testdata/monogame.cs with Mono's C# compiler into dir.
// Only mscorlib is referenced (-noconfig), so that Debian's mono-mcs and
// mono-runtime are all the packages it needs.
func monoGame(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "monogame.exe")
	args := []string{"-noconfig", "-r:mscorlib.dll", "-warnaserror+", "-out:" + out, "testdata/monogame.cs"}
	if b, err := exec.Command("mcs", args...).CombinedOutput(); err != nil {
		t.Fatalf("mcs %v: %v\n%s", args, err, b)
	}
	return out
}

// TestMonoManualDispatch: a C# program of our own under Mono, written the
// way Steamworks.NET (>= 15) uses the library, and a C++ game process
// exchange P2P packets; the Go runtime and Mono's garbage collector live in
// one process. The C# side loads the library by DllImport("steam_api")
// (found as libsteam_api.so through LD_LIBRARY_PATH), initialises through
// SteamInternal_SteamAPI_Init (an empty error string on success, a
// non-zero SteamAPI_GetHSteamPipe), dispatches manually into a 20-byte
// CallbackMsg_t (nothing written past it), reads the P2PSessionRequest_t
// of the C++ peer and accepts it through
// SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(SteamAPI_SteamNetworking_v006(), id),
// then sends 600 reliable messages up to 200 KiB on three channels and gets
// each echoed back intact and in order, calling GC.Collect() every frame
// while a second managed thread allocates, collects and calls in, and
// null dereferences still raise NullReferenceException (Mono's SIGSEGV
// handler behind the Go runtime's).
func TestMonoManualDispatch(t *testing.T) {
	t.Parallel()
	needTool(t, "mcs", "mono", "g++")
	lib := library(t)
	peer := peerProgram(t)
	exe := monoGame(t, t.TempDir())
	server := startRendezvous(t, rendezvous.ServerConfig{})
	monoID, echoID := peerSteamID(21), peerSteamID(22)
	const count = 600

	start := time.Now()
	// The C# side first: the C++ peer's greeting opens the session, so that
	// the C# side sees the request.
	game := startChild(t, "mono", "mono", []string{"--debug", exe,
		"--self", strconv.FormatUint(monoID, 10), "--peer", strconv.FormatUint(echoID, 10), "--count", strconv.Itoa(count)},
		gameEnv(t, server, monoID, 480, "LD_LIBRARY_PATH="+filepath.Dir(lib)))
	game.waitLine(t, "ready ", 20*time.Second)
	t.Logf("mono ready after %v", time.Since(start).Round(time.Millisecond))
	echo := startChild(t, "C++ echo", peer, []string{"--echo", "--hello", strconv.FormatUint(monoID, 10), "--channels", "3"},
		gameEnv(t, server, echoID, 480))
	echo.waitLine(t, "ready ", 15*time.Second)

	res := game.waitLine(t, "PASS", 30*time.Second)
	code := game.wait(t, 10*time.Second)
	t.Logf("mono: %s (exit status %d) after %v", res, code, time.Since(start).Round(time.Millisecond))
	echo.stdin.Close()
	done := echo.waitLine(t, "echo done", 15*time.Second)
	echoCode := echo.wait(t, 10*time.Second)
	t.Logf("C++ echo: %s (exit status %d)", done, echoCode)

	if code != 0 {
		t.Errorf("mono: exit status %d", code)
	}
	if out := game.output(); strings.Contains(out, "FAIL") {
		t.Errorf("mono reported failures:\n%s", out)
	}
	if n := lineField(t, res, "echoed"); n != count {
		t.Errorf("mono: %d messages echoed, want %d", n, count)
	}
	if lineField(t, res, "requests") < 1 {
		t.Errorf("mono saw no P2PSessionRequest_t")
	}
	if echoCode != 0 {
		t.Errorf("C++ echo: exit status %d", echoCode)
	}
	if n := lineField(t, done, "echoed"); n != count {
		t.Errorf("C++ echo echoed %d packets, want %d", n, count)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/p2pcompat/p2pcompat/internal/testsupport"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// The tests of this package build the library the way a studio does and run
// programs of their own against it, in processes of their own: C++ legacy
// games, a C# program under Mono, C benchmarks.

// requireTools makes a missing compiler or runtime a failure instead of a
// skip; CI sets it, after installing them.
var requireTools = os.Getenv("P2PCOMPAT_CABI_REQUIRE") == "1"

// needTool skips the test with a printed reason when a tool is missing,
// unless requireTools is set.
func needTool(t testing.TB, names ...string) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the drop-in library is built for linux/amd64 only, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if requireTools {
				t.Fatalf("%s is required (P2PCOMPAT_CABI_REQUIRE=1) but not found", name)
			}
			t.Skipf("%s not found; install it to run this test (Debian: see .ci/run)", name)
		}
	}
}

var (
	libOnce sync.Once
	libPath string
	libErr  error
	libOut  []byte
	libTmp  string
)

// SONAMEFlags is how a release build gives the library its SONAME: Go's
// cgo flag allow-list refuses -soname in a #cgo directive, so the linker
// flag comes from the command line (README).
const sonameFlags = "-extldflags=-Wl,-soname,libsteam_api.so"

// library builds libsteam_api.so once per test binary, with the README's
// release command, and returns its path.
func library(t testing.TB) string {
	t.Helper()
	needTool(t, "gcc")
	libOnce.Do(func() {
		libTmp, libErr = os.MkdirTemp("", "p2pcompat-lib-")
		if libErr != nil {
			return
		}
		libPath = filepath.Join(libTmp, "libsteam_api.so")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-ldflags="+sonameFlags, "-o", libPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		libOut, libErr = cmd.CombinedOutput()
	})
	if libErr != nil {
		t.Fatalf("building the library: %v\n%s", libErr, libOut)
	}
	return libPath
}

// TestMain removes the library built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if libTmp != "" {
		os.RemoveAll(libTmp)
	}
	os.Exit(code)
}

// compileProgram compiles C or C++ sources from testdata (or elsewhere)
// into dir against the library and returns the program's path. The
// program finds the library through its RUNPATH, as a game finds the one
// beside it.
func compileProgram(t testing.TB, dir, name string, srcs ...string) string {
	t.Helper()
	lib := library(t)
	compiler, std := "g++", "-std=c++17"
	if filepath.Ext(srcs[0]) == ".c" {
		compiler, std = "gcc", "-std=c11"
	}
	needTool(t, compiler)
	out := filepath.Join(dir, name)
	args := []string{std, "-O2", "-g", "-Wall", "-Wno-invalid-offsetof", "-pthread", "-I", "testdata", "-o", out}
	args = append(args, srcs...)
	args = append(args, "-L", filepath.Dir(lib), "-lsteam_api", "-Wl,-rpath,"+filepath.Dir(lib))
	cmd := exec.Command(compiler, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", compiler, args, err, b)
	}
	return out
}

var (
	progMu sync.Mutex
	progs  = map[string]string{}
)

// program compiles a test program from testdata once per test binary,
// beside the library (whose directory TestMain removes), and returns its
// path.
func program(t testing.TB, name, src string) string {
	t.Helper()
	lib := library(t)
	progMu.Lock()
	defer progMu.Unlock()
	if progs[name] == "" {
		progs[name] = compileProgram(t, filepath.Dir(lib), name, src)
	}
	return progs[name]
}

// startRendezvous starts a rendezvous server on loopback for the test's
// game processes and returns its address.
func startRendezvous(t testing.TB, cfg rendezvous.ServerConfig) string {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	s, err := rendezvous.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr().String()
}

// gameEnv is the environment of a game process that plays steamID in
// appID against the rendezvous at server: the library's settings, and a
// data directory of the test's own so that nothing of the user's is read
// or written. extra adds KEY=value settings.
func gameEnv(t testing.TB, server string, steamID uint64, appID uint32, extra ...string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"XDG_DATA_HOME=" + t.TempDir(),
		"P2PCOMPAT_RENDEZVOUS=" + server,
		"P2PCOMPAT_STEAMID=" + strconv.FormatUint(steamID, 10),
		"SteamAppId=" + strconv.FormatUint(uint64(appID), 10),
	}
	if os.Getenv("P2PCOMPAT_TEST_LOG") == "1" {
		env = append(env, "P2PCOMPAT_LOG=stderr", "P2PCOMPAT_LOG_LEVEL=debug")
	}
	return append(env, extra...)
}

// lockedBuffer collects a process's output for the test's failure message.
type lockedBuffer = testsupport.SyncBuffer

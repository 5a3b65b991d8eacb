package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The environment wins over p2pcompat.ini beside the library, which wins
// over the defaults.
func TestSettingsOrder(t *testing.T) {
	lib, data := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(lib, settingsFile), `
# a player's settings
[p2pcompat]
rendezvous = play.example.test:27015
name = "From Ini"
connect_timeout = 3s
relay = 0
steamid = 76561197960265729
`)
	env := map[string]string{"XDG_DATA_HOME": data, "SteamAppId": "480", "P2PCOMPAT_RENDEZVOUS": "127.0.0.1:4000", "USER": "user"}
	s, err := loadSettings(sources{getenv: envOf(env), libDir: lib})
	if err != nil {
		t.Fatal(err)
	}
	if s.rendezvous.value != "127.0.0.1:4000" || s.rendezvous.from != "P2PCOMPAT_RENDEZVOUS" {
		t.Errorf("rendezvous %+v: the environment should win", s.rendezvous)
	}
	if s.name != "From Ini" || s.connectTimeout != 3*time.Second || s.relay || s.steamID != 76561197960265729 {
		t.Errorf("from the file: name %q, connect timeout %v, relay %v, steamid %d", s.name, s.connectTimeout, s.relay, s.steamID)
	}
	if s.idleTimeout != 3*time.Minute || s.requestRepeat != 10*time.Second || s.sendBuffer != 1<<20 || s.maxSessions != 4096 || s.registerTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", s)
	}

	// Without the file: the defaults.
	s, err = loadSettings(sources{getenv: envOf(map[string]string{"XDG_DATA_HOME": data, "SteamAppId": "480", "USER": "user"}), libDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.rendezvous.value != "127.0.0.1:27015" || s.name != "user" || !s.relay || s.logPath != "" {
		t.Errorf("defaults: rendezvous %q, name %q, relay %v, log %q", s.rendezvous.value, s.name, s.relay, s.logPath)
	}
}

// A bad setting is refused with a message that names where it came from.
func TestSettingsErrorsNameTheSetting(t *testing.T) {
	lib := t.TempDir()
	writeFile(t, filepath.Join(lib, settingsFile), "send_buffer = lots\n")
	cases := []struct {
		env  map[string]string
		lib  string
		want string
	}{
		{map[string]string{"P2PCOMPAT_STEAMID": "bob"}, "", "(P2PCOMPAT_STEAMID)"},
		{map[string]string{"P2PCOMPAT_STEAMID": "0"}, "", "(P2PCOMPAT_STEAMID)"},
		{map[string]string{"P2PCOMPAT_CONNECT_TIMEOUT": "20"}, "", "(P2PCOMPAT_CONNECT_TIMEOUT)"},
		{map[string]string{"P2PCOMPAT_RELAY": "maybe"}, "", "(P2PCOMPAT_RELAY)"},
		{map[string]string{"P2PCOMPAT_LOG_LEVEL": "loud"}, "", "(P2PCOMPAT_LOG_LEVEL)"},
		{map[string]string{}, lib, "(send_buffer in p2pcompat.ini)"},
		{map[string]string{"SteamAppId": "x"}, "", "SteamAppId"},
		{map[string]string{"P2PCOMPAT_CERTIFICATE_KEY": "c2hvcnQ="}, "", "(P2PCOMPAT_CERTIFICATE_KEY)"},
		{map[string]string{"P2PCOMPAT_RENDEZVOUS_KEY": "c2hvcnQ="}, "", "(P2PCOMPAT_RENDEZVOUS_KEY)"},
		{map[string]string{"P2PCOMPAT_IDENTITY_FILE": "/proc/no/such/dir/identity"}, "", "P2PCOMPAT_IDENTITY_FILE"},
	}
	for _, c := range cases {
		env := map[string]string{"XDG_DATA_HOME": t.TempDir(), "SteamAppId": "480"}
		for k, v := range c.env {
			env[k] = v
		}
		_, err := loadSettings(sources{getenv: envOf(env), libDir: c.lib})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.env, err, c.want)
		}
	}
}

// Without P2PCOMPAT_STEAMID the player gets a valid individual SteamID,
// generated once and kept.
func TestGeneratedSteamIDIsKept(t *testing.T) {
	data := t.TempDir()
	env := envOf(map[string]string{"XDG_DATA_HOME": data, "SteamAppId": "480"})
	a, err := loadSettings(sources{getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadSettings(sources{getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	if a.steamID != b.steamID {
		t.Fatalf("SteamID %d, then %d: not kept", a.steamID, b.steamID)
	}
	if a.steamID <= individualBase || a.steamID > individualBase+1<<32-1 {
		t.Fatalf("SteamID %d is not a valid individual SteamID", a.steamID)
	}
	kept, err := os.ReadFile(filepath.Join(data, "p2pcompat", "steamid"))
	if err != nil || strings.TrimSpace(string(kept)) != strconv.FormatUint(a.steamID, 10) {
		t.Fatalf("kept %q (%v), want %d", kept, err, a.steamID)
	}
	// HOME stands in for XDG_DATA_HOME as the XDG rules say.
	home := t.TempDir()
	c, err := loadSettings(sources{getenv: envOf(map[string]string{"HOME": home, "SteamAppId": "480"})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "p2pcompat", "steamid")); err != nil || c.steamID == a.steamID {
		t.Fatalf("under HOME: %v, SteamID %d", err, c.steamID)
	}
}

// The player's identity key is kept beside the SteamID, one per SteamID,
// mode 0600, and read back on the next start, so that a game restarted
// after a crash is the same instance to the rendezvous; P2PCOMPAT_IDENTITY_FILE
// moves it, or turns it off.
func TestIdentityKeyIsKept(t *testing.T) {
	data := t.TempDir()
	env := map[string]string{"XDG_DATA_HOME": data, "SteamAppId": "480", "P2PCOMPAT_STEAMID": "76561197960265729"}
	a, err := loadSettings(sources{getenv: envOf(env)})
	if err != nil {
		t.Fatal(err)
	}
	// While a holds the key, another copy of the game gets a fresh one.
	shared, err := loadSettings(sources{getenv: envOf(env)})
	if err != nil {
		t.Fatal(err)
	}
	if !shared.identityShared || shared.identity != ([32]byte{}) || shared.identityLock != nil {
		t.Fatalf("a second copy while the first runs: shared %v, identity %x", shared.identityShared, shared.identity)
	}
	a.identityLock.Close()
	b, err := loadSettings(sources{getenv: envOf(env)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.identityLock.Close()
	if a.identity == ([32]byte{}) || a.identity != b.identity || b.identityShared {
		t.Fatalf("identity %x, then %x: not kept", a.identity, b.identity)
	}
	path := filepath.Join(data, "p2pcompat", "identity-76561197960265729")
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 || a.identityPath != path {
		t.Fatalf("kept at %q: %v, mode %v", a.identityPath, err, st.Mode())
	}
	env["P2PCOMPAT_STEAMID"] = "76561197960265730"
	if c, err := loadSettings(sources{getenv: envOf(env)}); err != nil || c.identity == a.identity {
		t.Fatalf("another SteamID's identity: %x (%v)", c.identity, err)
	}
	env["P2PCOMPAT_IDENTITY_FILE"] = "off"
	if c, err := loadSettings(sources{getenv: envOf(env)}); err != nil || c.identity != ([32]byte{}) {
		t.Fatalf("identity with P2PCOMPAT_IDENTITY_FILE=off: %x (%v)", c.identity, err)
	}
	writeFile(t, path, "not a key\n")
	env["P2PCOMPAT_IDENTITY_FILE"], env["P2PCOMPAT_STEAMID"] = path, "76561197960265729"
	if _, err := loadSettings(sources{getenv: envOf(env)}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a spoilt identity file: %v, want an error naming it", err)
	}
}

// The AppID comes from SteamAppId, SteamGameId, steam_appid.txt in the
// working directory, beside the library, then RestartAppIfNecessary.
func TestAppIDOrder(t *testing.T) {
	wd, lib := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(wd, "steam_appid.txt"), "\ufeff620\n")
	writeFile(t, filepath.Join(lib, "steam_appid.txt"), "730")
	cases := []struct {
		env     map[string]string
		wd, lib string
		restart uint32
		want    uint32
	}{
		{map[string]string{"SteamAppId": "480", "SteamGameId": "570"}, wd, lib, 10, 480},
		{map[string]string{"SteamGameId": strconv.FormatUint(0x0100000000000000|570, 10)}, wd, lib, 10, 570},
		{nil, wd, lib, 10, 620},
		{nil, "", lib, 10, 730},
		{nil, "", "", 10, 10},
		// A shortcut to a game outside Steam: SteamAppId=0 counts as unset.
		{map[string]string{"SteamAppId": "0", "SteamGameId": "0"}, wd, lib, 10, 620},
	}
	for _, c := range cases {
		env := map[string]string{}
		for k, v := range c.env {
			env[k] = v
		}
		got, _, err := findAppID(sources{getenv: envOf(env), workDir: c.wd, libDir: c.lib, restartApp: c.restart})
		if err != nil || got != c.want {
			t.Errorf("%v wd=%q lib=%q restart=%d: %d, %v; want %d", c.env, c.wd, c.lib, c.restart, got, err, c.want)
		}
	}
	if _, _, err := findAppID(sources{getenv: envOf(nil)}); err == nil || !strings.Contains(err.Error(), "steam_appid.txt") {
		t.Errorf("no AppID anywhere: %v", err)
	}
}

// Games started at once all keep the one SteamID that is written first.
func TestGeneratedSteamIDOneForConcurrentStarts(t *testing.T) {
	for round := 0; round < 20; round++ {
		env := envOf(map[string]string{"XDG_DATA_HOME": t.TempDir()})
		ids := make(chan uint64, 8)
		for range 8 {
			go func() {
				id, err := storedSteamID(env)
				if err != nil {
					t.Error(err)
				}
				ids <- id
			}()
		}
		first := <-ids
		for range 7 {
			if id := <-ids; id != first {
				t.Fatalf("round %d: SteamIDs %d and %d for one player", round, first, id)
			}
		}
	}
}

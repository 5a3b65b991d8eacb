package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/fileonce"
)

// The player's settings: the environment first (Steam's launch options
// accept VAR=value %command%), then p2pcompat.ini beside the library, with
// the same keys in lower case and without the prefix, then defaults.

// settingsFile is the name of the settings file beside the library.
const settingsFile = "p2pcompat.ini"

// individualBase is the SteamID of account 0 of an individual account in
// the public universe (account type 1, universe 1, instance 1); a valid
// individual SteamID is individualBase plus a non-zero account ID.
const individualBase = 76561197960265728

// setting is one key of the settings, with where its value came from, so
// that an error can name what the player should change.
type setting struct {
	key   string // the environment variable
	value string
	from  string // the variable, "p2pcompat.ini", or "" for the default
}

// where names the setting for a message: "(P2PCOMPAT_RENDEZVOUS)".
func (s setting) where() string {
	switch s.from {
	case "":
		return "(the default; set " + s.key + ")"
	case settingsFile:
		return "(" + strings.ToLower(strings.TrimPrefix(s.key, "P2PCOMPAT_")) + " in " + settingsFile + ")"
	}
	return "(" + s.from + ")"
}

// settings are the resolved settings of one init.
type settings struct {
	rendezvous setting
	steamID    uint64
	steamIDSet setting
	token      string
	// identity is the player's X25519 key, kept in identityPath across
	// runs so that a game restarted after a crash gets its SteamID back
	// at once; zero with P2PCOMPAT_IDENTITY_FILE=off or nowhere to keep it.
	identity     [32]byte
	identityPath string
	// identityLock holds the lock on identityPath while this copy of the
	// game uses the key; identityShared: another copy held it, so this
	// one runs with a fresh key instead (two instances under one key
	// would take the registration from each other at every refresh).
	identityLock   *os.File
	identityShared bool
	rendezvousKey  [32]byte
	certificate    string
	certificateKey ed25519.PublicKey
	name           string
	listen         string
	relay          bool
	logPath        string
	logLevel       slog.Level
	appID          uint32
	appFrom        string

	connectTimeout    time.Duration
	idleTimeout       time.Duration
	requestRepeat     time.Duration
	keepalive         time.Duration
	nagleDelay        time.Duration
	registerTimeout   time.Duration
	rendezvousRefresh time.Duration
	maxSessions       int
	sendBuffer        int
}

// sources is where settings are read from; tests fill it themselves.
type sources struct {
	getenv     func(string) string
	libDir     string // the library's directory; "" if unknown
	workDir    string
	restartApp uint32 // SteamAPI_RestartAppIfNecessary's argument, or 0
}

// loadSettings resolves the settings. Its errors say what is wrong and
// which setting to change.
func loadSettings(src sources) (*settings, error) {
	ini, err := readINI(filepath.Join(src.libDir, settingsFile), src.libDir != "")
	if err != nil {
		return nil, err
	}
	get := func(key, def string) setting {
		if v := strings.TrimSpace(src.getenv(key)); v != "" {
			return setting{key, v, key}
		}
		if v, ok := ini[strings.ToLower(strings.TrimPrefix(key, "P2PCOMPAT_"))]; ok && v != "" {
			return setting{key, v, settingsFile}
		}
		return setting{key, def, ""}
	}
	s := &settings{
		rendezvous: get("P2PCOMPAT_RENDEZVOUS", "127.0.0.1:27015"),
		token:      get("P2PCOMPAT_TOKEN", "").value,
		listen:     get("P2PCOMPAT_LISTEN", "").value,
		logPath:    get("P2PCOMPAT_LOG", "").value,
	}
	s.name = get("P2PCOMPAT_NAME", "").value
	if s.name == "" {
		s.name = src.getenv("USER")
	}
	if s.name == "" {
		s.name = "player"
	}

	level := get("P2PCOMPAT_LOG_LEVEL", "info")
	if err := s.logLevel.UnmarshalText([]byte(level.value)); err != nil {
		return nil, fmt.Errorf("log level %q is not debug, info, warn or error %s", level.value, level.where())
	}
	relay := get("P2PCOMPAT_RELAY", "1")
	switch relay.value {
	case "1", "true", "yes", "on":
		s.relay = true
	case "0", "false", "no", "off":
	default:
		return nil, fmt.Errorf("relay %q is not 0 or 1 %s", relay.value, relay.where())
	}

	durations := []struct {
		key string
		def time.Duration
		dst *time.Duration
	}{
		{"P2PCOMPAT_CONNECT_TIMEOUT", 20 * time.Second, &s.connectTimeout},
		{"P2PCOMPAT_IDLE_TIMEOUT", 3 * time.Minute, &s.idleTimeout},
		{"P2PCOMPAT_REQUEST_REPEAT", 10 * time.Second, &s.requestRepeat},
		{"P2PCOMPAT_KEEPALIVE", 0, &s.keepalive},
		{"P2PCOMPAT_NAGLE_DELAY", 200 * time.Millisecond, &s.nagleDelay},
		{"P2PCOMPAT_REGISTER_TIMEOUT", 5 * time.Second, &s.registerTimeout},
		{"P2PCOMPAT_REFRESH", 10 * time.Second, &s.rendezvousRefresh},
	}
	for _, d := range durations {
		st := get(d.key, "")
		if st.value == "" {
			*d.dst = d.def
			continue
		}
		v, err := time.ParseDuration(st.value)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration such as 1500ms or 20s %s", st.value, st.where())
		}
		*d.dst = v
	}
	// The caps keep P2PSessionState_t's int32 byte count from wrapping.
	ints := []struct {
		key      string
		def, max int
		dst      *int
	}{
		{"P2PCOMPAT_MAX_SESSIONS", 4096, 1 << 20, &s.maxSessions},
		{"P2PCOMPAT_SEND_BUFFER", 1 << 20, 1 << 30, &s.sendBuffer},
	}
	for _, n := range ints {
		st := get(n.key, "")
		if st.value == "" {
			*n.dst = n.def
			continue
		}
		v, err := strconv.Atoi(st.value)
		if err != nil || v <= 0 || v > n.max {
			return nil, fmt.Errorf("%q is not a whole number from 1 to %d %s", st.value, n.max, st.where())
		}
		*n.dst = v
	}

	s.steamIDSet = get("P2PCOMPAT_STEAMID", "")
	if s.steamIDSet.value != "" {
		id, err := strconv.ParseUint(s.steamIDSet.value, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("SteamID %q is not a non-zero decimal Steam64 ID such as %d %s",
				s.steamIDSet.value, uint64(individualBase+1), s.steamIDSet.where())
		}
		s.steamID = id
	} else {
		id, err := storedSteamID(src.getenv)
		if err != nil {
			return nil, err
		}
		s.steamID = id
	}

	s.appID, s.appFrom, err = findAppID(src)
	if err != nil {
		return nil, err
	}

	idSet := get("P2PCOMPAT_IDENTITY_FILE", "")
	switch path := idSet.value; path {
	case "off":
	case "":
		if dir := dataDir(src.getenv); dir != "" {
			s.identityPath = filepath.Join(dir, "p2pcompat", fmt.Sprintf("identity-%d", s.steamID))
		}
	default:
		s.identityPath = path
	}
	if s.identityPath != "" {
		if s.identity, err = storedIdentity(s.identityPath); err != nil {
			return nil, fmt.Errorf("%w (P2PCOMPAT_IDENTITY_FILE, or off)", err)
		}
		if s.identityLock, err = lockIdentity(s.identityPath); err != nil {
			return nil, fmt.Errorf("locking the identity key: %w (P2PCOMPAT_IDENTITY_FILE, or off)", err)
		}
		if s.identityLock == nil {
			s.identity, s.identityShared = [32]byte{}, true
		}
	}
	if rk := get("P2PCOMPAT_RENDEZVOUS_KEY", ""); rk.value != "" {
		k, err := base64.StdEncoding.DecodeString(rk.value)
		if err != nil || len(k) != len(s.rendezvousKey) {
			return nil, fmt.Errorf("%q is not the server's public key in base64, as p2pcompat-server logs it %s", rk.value, rk.where())
		}
		copy(s.rendezvousKey[:], k)
	}
	s.certificate = get("P2PCOMPAT_CERTIFICATE", "").value
	if ck := get("P2PCOMPAT_CERTIFICATE_KEY", ""); ck.value != "" {
		k, err := base64.StdEncoding.DecodeString(ck.value)
		if err != nil {
			k, err = base64.RawURLEncoding.DecodeString(ck.value)
		}
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%q is not an Ed25519 public key in base64 %s", ck.value, ck.where())
		}
		s.certificateKey = k
	}
	return s, nil
}

// dataDir is where the library keeps what it generates: XDG_DATA_HOME, or
// ~/.local/share; "" if neither is set.
func dataDir(getenv func(string) string) string {
	if dir := getenv("XDG_DATA_HOME"); dir != "" {
		return dir
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".local", "share")
	}
	return ""
}

// storedIdentity is the X25519 private key kept at path, in hex, made and
// kept (mode 0600, first link wins, as the SteamID) if there is none yet.
func storedIdentity(path string) ([32]byte, error) {
	key, err := fileonce.KeepKey(path)
	if err != nil {
		return key, fmt.Errorf("keeping an identity key: %w", err)
	}
	return key, nil
}

// readINI reads key = value lines; '#' and ';' start comments and
// [sections] are ignored. A missing file is no error.
func readINI(path string, look bool) (map[string]string, error) {
	kv := map[string]string{}
	if !look {
		return kv, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return kv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == ';' || t[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is not key = value", path, line, t)
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return kv, nil
}

// storedSteamID is the player's SteamID when none is set: a valid
// individual SteamID generated once and kept in the data directory, so
// that the player is the same user in every game and every run.
func storedSteamID(getenv func(string) string) (uint64, error) {
	dir := dataDir(getenv)
	if dir == "" {
		return 0, errors.New("no SteamID: set P2PCOMPAT_STEAMID, or HOME or XDG_DATA_HOME for a generated one to be kept")
	}
	path := filepath.Join(dir, "p2pcompat", "steamid")
	kept, err := fileonce.Keep(path, func() ([]byte, error) {
		var r [4]byte
		var account uint32
		for account == 0 {
			if _, err := rand.Read(r[:]); err != nil {
				return nil, err
			}
			account = binary.LittleEndian.Uint32(r[:])
		}
		return fmt.Appendf(nil, "%d\n", uint64(individualBase)+uint64(account)), nil
	})
	if err != nil {
		return 0, fmt.Errorf("keeping a generated SteamID in %s: %w (or set P2PCOMPAT_STEAMID)", path, err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(kept)), 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%s holds %q, not a SteamID: fix or delete it, or set P2PCOMPAT_STEAMID", path, strings.TrimSpace(string(kept)))
	}
	return id, nil
}

// findAppID finds the AppID where Steam's own library does, in order:
// SteamAppId, SteamGameId (a game ID, whose low 24 bits are the AppID),
// steam_appid.txt in the working directory, then beside the library, then
// SteamAPI_RestartAppIfNecessary's argument.
func findAppID(src sources) (uint32, string, error) {
	if v := strings.TrimSpace(src.getenv("SteamAppId")); v != "" && v != "0" { // 0: a shortcut to a game outside Steam
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil || id == 0 {
			return 0, "", fmt.Errorf("SteamAppId %q is not an AppID", v)
		}
		return uint32(id), "SteamAppId", nil
	}
	if v := strings.TrimSpace(src.getenv("SteamGameId")); v != "" {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("SteamGameId %q is not a game ID", v)
		}
		if id&0xffffff != 0 {
			return uint32(id & 0xffffff), "SteamGameId", nil
		}
	}
	for _, dir := range []string{src.workDir, src.libDir} {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, "steam_appid.txt")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("reading %s: %w", path, err)
		}
		// The file holds the number, perhaps with a newline or a BOM.
		t := strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff"))
		if f := strings.Fields(t); len(f) > 0 {
			t = f[0]
		}
		id, err := strconv.ParseUint(t, 10, 32)
		if err != nil || id == 0 {
			return 0, "", fmt.Errorf("%s holds %q, not an AppID", path, t)
		}
		return uint32(id), path, nil
	}
	if src.restartApp != 0 {
		return src.restartApp, "SteamAPI_RestartAppIfNecessary", nil
	}
	return 0, "", errors.New("no AppID: set SteamAppId, or put steam_appid.txt with the AppID beside the game")
}

// logger opens the log the settings ask for; nothing is printed without
// P2PCOMPAT_LOG.
func (s *settings) logger() (*slog.Logger, io.Closer, error) {
	opts := &slog.HandlerOptions{Level: s.logLevel}
	switch s.logPath {
	case "":
		return slog.New(slog.DiscardHandler), nil, nil
	case "stderr":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil, nil
	}
	f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the log: %w (P2PCOMPAT_LOG)", err)
	}
	return slog.New(slog.NewTextHandler(f, opts)), f, nil
}

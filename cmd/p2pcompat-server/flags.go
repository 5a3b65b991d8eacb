package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/p2pcompat/p2pcompat/internal/fileonce"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// envPrefix starts the name of every environment variable the server
// reads: a flag's variable is envPrefix and the flag's name in capitals,
// dashes made underscores (-rate-limit: P2PCOMPAT_RATE_LIMIT).
const envPrefix = "P2PCOMPAT_"

// defaultAdmin is where the admin listener serves unless told otherwise:
// loopback, so that metrics are never exposed by accident.
const defaultAdmin = "127.0.0.1:9090"

// envName is the environment variable of the flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// config is what the command line and the environment say.
type config struct {
	server rendezvous.ServerConfig
	// admin is the admin listener's TCP address; "": none.
	admin     string
	logFormat string // "text" or "json"
	logLevel  slog.Level
	// unknownEnv lists the variables of the environment that start with
	// envPrefix but belong to no flag: typos, most likely.
	unknownEnv []string
}

// flagValues holds the flags as they are parsed, before they are checked.
type flagValues struct {
	cfg                 rendezvous.ServerConfig
	apps, secretFile    string
	serverKeyFile       string
	admin               string
	logFormat, logLevel string
}

// newFlagSet defines every flag of the command on a new FlagSet, whose
// usage errors go to output.
func newFlagSet(output io.Writer) (*flag.FlagSet, *flagValues) {
	v := new(flagValues)
	fs := flag.NewFlagSet("p2pcompat-server", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&v.cfg.ListenAddr, "listen", ":3478",
		"The UDP `address` to serve on: rendezvous, STUN and the embedded TURN relay all share this one port. "+
			"Players must be able to reach it.")
	fs.StringVar(&v.apps, "apps", "",
		"The `AppIDs` to admit, comma-separated, e.g. 480,730; registrations for other AppIDs are refused. "+
			"Empty admits every AppID.")
	fs.StringVar(&v.cfg.RelayIP, "relay-ip", "",
		"The public IPv4 `address` of this server, which allocations on the embedded TURN relay advertise. "+
			"Empty: no embedded relay.")
	fs.Var((*addrList)(&v.cfg.TURN), "turn",
		"An external TURN server, `host:port`: coturn with use-auth-secret, which registered clients are handed credentials for. "+
			"Repeatable, or comma-separated; needs -turn-secret.")
	fs.StringVar(&v.cfg.TURNSecret, "turn-secret", "",
		"The `secret` shared with the -turn servers (coturn's static-auth-secret); the embedded relay uses it too. "+
			"Prefer the environment variable: a command line is visible to every user of the machine.")
	fs.StringVar(&v.secretFile, "secret-file", "",
		"The `path` of a file holding the secret registration tokens are made under (a trailing newline is trimmed); "+
			"only players with a valid token then register. Empty: an open server, where anyone registers under any SteamID.")
	fs.StringVar(&v.serverKeyFile, "server-key-file", "",
		"The `path` of a file holding the server's X25519 private key (64 hex digits), made with a new key (mode 0600) if missing. "+
			"Clients can then pin the public key the log shows (p2p.Config.RendezvousKey, P2PCOMPAT_RENDEZVOUS_KEY); empty: a new key each run.")
	fs.BoolVar(&v.cfg.HidePresence, "hide-presence", false,
		"Leave lookups of users who are offline or in another game unanswered, as Steam does, "+
			"so that only players of the same game learn who is online.")
	fs.Float64Var(&v.cfg.RateLimit, "rate-limit", 0,
		"At most `N` messages per second are taken from one source address; more are dropped. "+
			"0: 50; negative: no limit.")
	fs.IntVar(&v.cfg.RateBurst, "rate-burst", 0,
		"At most `N` messages from one source address are taken at once, beyond -rate-limit. "+
			"0: 100, or twice -rate-limit if that is more.")
	fs.IntVar(&v.cfg.Readers, "readers", 0,
		"`N` sockets read the UDP port side by side (SO_REUSEPORT, Linux only; elsewhere one), "+
			"so that a flood from some sources does not hold up the others. 0: one per CPU.")
	fs.StringVar(&v.admin, "admin", defaultAdmin,
		"The TCP `address` of the admin HTTP listener, which serves /healthz and /metrics (Prometheus). "+
			"Keep it on loopback or a private network; \"\" or \"off\" disables it.")
	fs.StringVar(&v.logFormat, "log-format", "text",
		"The log's `format` on standard error: text (key=value pairs) or json (one object a line).")
	fs.StringVar(&v.logLevel, "log-level", "info",
		"The least `level` logged: debug, info, warn or error. "+
			"Debug tells of every dropped datagram, and is for troubleshooting only.")
	return fs, v
}

// flagOrder is the order the usage text lists the flags in.
var flagOrder = []string{
	"listen", "apps", "relay-ip", "turn", "turn-secret", "secret-file", "server-key-file", "hide-presence",
	"rate-limit", "rate-burst", "readers", "admin", "log-format", "log-level",
}

// errUsage is returned for a usage error, once it has been reported.
var errUsage = errors.New("usage error")

// parseFlags reads the command line, then the environment (a list of
// "NAME=value", as os.Environ) for the flags the command line does not
// set, into a configuration. An empty variable counts as unset. -h prints
// the usage text to stdout and returns flag.ErrHelp; a usage error is
// reported on stderr, naming the flag or variable, and returns an error.
func parseFlags(args, environ []string, stdout, stderr io.Writer) (config, error) {
	fs, v := newFlagSet(stderr)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return config{}, err
		}
		// The flag package has said what is wrong.
		return config{}, usageHint(stderr)
	}
	if fs.NArg() > 0 {
		return config{}, usageError(stderr, "unexpected arguments: %q", fs.Args())
	}

	// source names where each flag's value came from, for errors.
	source := make(map[string]string)
	fs.Visit(func(f *flag.Flag) { source[f.Name] = "-" + f.Name })
	env := envMap(environ)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		val := env[name]
		delete(env, name)
		if _, set := source[f.Name]; set || val == "" || envErr != nil {
			return
		}
		source[f.Name] = name
		if err := fs.Set(f.Name, val); err != nil {
			envErr = usageError(stderr, "%s: invalid value %q: %v", name, val, err)
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	src := func(name string) string {
		if s, ok := source[name]; ok {
			return s
		}
		return "-" + name
	}

	cfg := config{server: v.cfg}
	for name := range env {
		cfg.unknownEnv = append(cfg.unknownEnv, name)
	}
	slices.Sort(cfg.unknownEnv)
	var err error
	switch {
	case cfg.server.Readers < 0:
		return cfg, usageError(stderr, "%s: %d readers; want 0 (one per CPU) or more", src("readers"), cfg.server.Readers)
	case cfg.server.Readers == 0:
		cfg.server.Readers = runtime.NumCPU()
	}
	if _, _, err := net.SplitHostPort(cfg.server.ListenAddr); err != nil {
		return cfg, usageError(stderr, "%s: %q is not a UDP address (host:port, or :port): %v", src("listen"), cfg.server.ListenAddr, err)
	}
	if cfg.server.AllowedApps, err = parseApps(v.apps); err != nil {
		return cfg, usageError(stderr, "%s: %v", src("apps"), err)
	}
	if ip := cfg.server.RelayIP; ip != "" {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Unmap().Is4() {
			return cfg, usageError(stderr, "%s: %q is not an IPv4 address", src("relay-ip"), ip)
		}
	}
	if len(cfg.server.TURN) > 0 && cfg.server.TURNSecret == "" {
		return cfg, usageError(stderr, "%s needs %s (or %s)", src("turn"), "-turn-secret", envName("turn-secret"))
	}
	if v.secretFile != "" {
		if cfg.server.Secret, err = readSecret(v.secretFile); err != nil {
			return cfg, usageError(stderr, "%s: %v", src("secret-file"), err)
		}
	}
	if v.serverKeyFile != "" {
		if cfg.server.PrivateKey, err = serverKey(v.serverKeyFile); err != nil {
			return cfg, usageError(stderr, "%s: %v", src("server-key-file"), err)
		}
	}
	if r := cfg.server.RateLimit; math.IsNaN(r) || math.IsInf(r, 0) {
		return cfg, usageError(stderr, "%s: %v is not a rate", src("rate-limit"), r)
	}
	if cfg.server.RateBurst < 0 {
		return cfg, usageError(stderr, "%s: %d is negative", src("rate-burst"), cfg.server.RateBurst)
	}
	switch cfg.admin = v.admin; cfg.admin {
	case "", "off":
		cfg.admin = ""
	default:
		if _, _, err := net.SplitHostPort(cfg.admin); err != nil {
			return cfg, usageError(stderr, "%s: %q is not a TCP address (host:port, or \"off\"): %v", src("admin"), cfg.admin, err)
		}
	}
	switch cfg.logFormat = strings.ToLower(v.logFormat); cfg.logFormat {
	case "text", "json":
	default:
		return cfg, usageError(stderr, "%s: %q is not a log format (text or json)", src("log-format"), v.logFormat)
	}
	switch strings.ToLower(v.logLevel) {
	case "debug":
		cfg.logLevel = slog.LevelDebug
	case "info":
		cfg.logLevel = slog.LevelInfo
	case "warn", "warning":
		cfg.logLevel = slog.LevelWarn
	case "error":
		cfg.logLevel = slog.LevelError
	default:
		return cfg, usageError(stderr, "%s: %q is not a log level (debug, info, warn or error)", src("log-level"), v.logLevel)
	}
	return cfg, nil
}

// envMap reads the variables of environ that start with envPrefix; the
// last of a name wins, as with os.Getenv.
func envMap(environ []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			m[k] = v
		}
	}
	return m
}

// usageError reports a usage error on w and returns errUsage.
func usageError(w io.Writer, format string, args ...any) error {
	fmt.Fprintf(w, format+"\n", args...)
	return usageHint(w)
}

func usageHint(w io.Writer) error {
	fmt.Fprintln(w, "Run p2pcompat-server -h for usage.")
	return errUsage
}

// usageIntro and usageOutro frame the flags in the usage text.
const (
	usageIntro = `Usage: p2pcompat-server [flags]

Runs the p2pcompat rendezvous server: p2pcompat peers register with it and
find each other through it. Its UDP port also answers STUN Binding requests
and, with -relay-ip, is a TURN relay.

Every flag can also be set by the environment variable shown with it; a
flag given on the command line wins over its variable, and an empty
variable counts as unset.

Flags:
`
	usageOutro = `
Admin endpoints (on -admin):
  /healthz   200 "ok" while serving, 503 once shutting down.
  /metrics   counters and gauges in the Prometheus text format.

Signals: SIGTERM or SIGINT stops the server gracefully: /healthz turns 503,
the admin listener closes, the UDP socket closes, "stopped" is logged, and
the exit status is 0. A second signal during that kills the process.

Exit status: 0 after a graceful stop or -h, 1 if the server cannot run
(e.g. the port is taken), 2 for a usage error.
`
)

// printUsage writes the usage text of fs to w: every flag with a sentence
// or two, its environment variable and its default.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	var b bytes.Buffer
	b.WriteString(usageIntro)
	flags := make([]*flag.Flag, 0, len(flagOrder))
	for _, name := range flagOrder {
		if f := fs.Lookup(name); f != nil {
			flags = append(flags, f)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(flagOrder, f.Name) {
			flags = append(flags, f)
		}
	})
	for _, f := range flags {
		arg, help := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  -%s", f.Name)
		if arg != "" {
			fmt.Fprintf(&b, " %s", arg)
		}
		b.WriteByte('\n')
		wrap(&b, help, "        ", 78)
		def := f.DefValue
		if def == "" {
			def = "none"
		} else if _, err := strconv.ParseFloat(def, 64); err != nil && def != "false" && def != "true" {
			def = strconv.Quote(def)
		}
		fmt.Fprintf(&b, "        Environment: %s. Default: %s.\n", envName(f.Name), def)
	}
	b.WriteString(usageOutro)
	w.Write(b.Bytes())
}

// wrap writes text to b in lines of at most width columns, each starting
// with indent.
func wrap(b *bytes.Buffer, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		b.WriteString(line + "\n")
	}
}

// readSecret reads the secret in path: its content, without a trailing
// newline, which must leave something.
func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// serverKey reads the server's private key from path, in hex, or makes a
// new one there (mode 0600) if there is no file: the first of several
// nodes to start makes it, and the others read it (of two starting at
// once, one key wins and both read it).
func serverKey(path string) ([32]byte, error) { return fileonce.KeepKey(path) }

// addrList is a repeatable flag of comma-separated host:port addresses.
type addrList []string

func (l *addrList) String() string { return strings.Join(*l, ",") }

func (l *addrList) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return errors.New("empty address")
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return err
		}
		if p, err := strconv.ParseUint(port, 10, 16); host == "" || err != nil || p == 0 {
			return fmt.Errorf("%q is not host:port", a)
		}
		*l = append(*l, a)
	}
	return nil
}

// parseApps reads a comma-separated list of AppIDs; "" means none.
func parseApps(s string) ([]uint32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []uint32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("AppID %q: %w", f, err)
		}
		out = append(out, uint32(id))
	}
	return out, nil
}

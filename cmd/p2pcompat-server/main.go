// Command p2pcompat-server runs the rendezvous server that p2pcompat peers
// register with and find each other through. Its one UDP port also answers
// STUN Binding requests and, with -relay-ip, is a TURN relay.
//
//	p2pcompat-server [-listen ADDR] [-apps 480,730] [-relay-ip IP]
//	                 [-turn HOST:PORT[,HOST:PORT...]]... [-turn-secret SECRET]
//	                 [-secret-file PATH] [-hide-presence]
//	                 [-rate-limit N] [-rate-burst N]
//
// -relay-ip is the public IPv4 address that allocations on the embedded
// relay advertise, the address players reach this server at. -turn lists
// external TURN servers (coturn with use-auth-secret and
// static-auth-secret=SECRET) that clients are handed credentials for too;
// -turn-secret is that secret, which the embedded relay then uses as well.
// Clients learn every relay, with short-lived credentials, when they
// register.
//
// -secret-file names a file whose content (a trailing newline trimmed) is
// the secret that registration tokens are made under: the game's back end
// mints a token per player with rendezvous.IssueToken and the same secret,
// and the server then admits only registrations with a valid token for
// exactly their SteamID and AppID. Without it the server is open: anyone
// may register under any SteamID (it says so in its log). -hide-presence
// leaves lookups of users who are offline or in another game unanswered,
// as on Steam. -rate-limit and -rate-burst bound the messages the server
// takes from one source address (per second, and at once).
//
// It serves until SIGINT or SIGTERM and logs to stderr.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

// run serves until ctx ends and returns the exit code: 2 for a usage error,
// 1 for a failure. started, if not nil, is called with the server once it
// serves.
func run(ctx context.Context, args []string, stderr io.Writer, started func(*rendezvous.Server)) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = log
	srv, err := rendezvous.NewServer(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		if errors.Is(err, rendezvous.ErrInvalidConfig) {
			return 2
		}
		return 1
	}
	log.Info("rendezvous server listening", "addr", srv.Addr().String(), "apps", cfg.AllowedApps, "relay_ip", cfg.RelayIP, "turn", cfg.TURN,
		"tokens", len(cfg.Secret) > 0, "hide_presence", cfg.HidePresence)
	if started != nil {
		started(srv)
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := srv.Close(); err != nil {
		log.Error("close", "err", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line into a server configuration. Usage
// errors are reported on output.
func parseFlags(args []string, output io.Writer) (rendezvous.ServerConfig, error) {
	var cfg rendezvous.ServerConfig
	fs := flag.NewFlagSet("p2pcompat-server", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.ListenAddr, "listen", ":3478", "UDP `address` to serve on")
	apps := fs.String("apps", "", "comma-separated `AppIDs` to admit; empty admits every AppID")
	fs.StringVar(&cfg.RelayIP, "relay-ip", "", "public IPv4 `address` that allocations on the embedded TURN relay advertise; empty: no embedded relay")
	fs.Var((*addrList)(&cfg.TURN), "turn", "external TURN server `host:port` to hand out credentials for; repeatable, or comma-separated")
	fs.StringVar(&cfg.TURNSecret, "turn-secret", "", "`secret` shared with the -turn servers (coturn's static-auth-secret); the embedded relay uses it too")
	secretFile := fs.String("secret-file", "", "`path` of a file holding the secret registration tokens are made under; empty: an open server, which admits anyone under any SteamID")
	fs.BoolVar(&cfg.HidePresence, "hide-presence", false, "leave lookups of users who are offline or in another game unanswered")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", 0, "messages per `second` taken from one source address; 0: 50, negative: no limit")
	fs.IntVar(&cfg.RateBurst, "rate-burst", 0, "messages one source address may send at `once`; 0: 100, or twice -rate-limit")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(output, "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return cfg, errors.New("unexpected arguments")
	}
	var err error
	if cfg.AllowedApps, err = parseApps(*apps); err != nil {
		fmt.Fprintf(output, "-apps: %v\n", err)
		return cfg, err
	}
	if len(cfg.TURN) > 0 && cfg.TURNSecret == "" {
		err := errors.New("-turn needs -turn-secret")
		fmt.Fprintln(output, err)
		return cfg, err
	}
	if *secretFile != "" {
		if cfg.Secret, err = readSecret(*secretFile); err != nil {
			fmt.Fprintf(output, "-secret-file: %v\n", err)
			return cfg, err
		}
	}
	if cfg.RateBurst < 0 {
		err := errors.New("-rate-burst is negative")
		fmt.Fprintln(output, err)
		return cfg, err
	}
	return cfg, nil
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

// addrList is a repeatable flag of comma-separated addresses.
type addrList []string

func (l *addrList) String() string { return strings.Join(*l, ",") }

func (l *addrList) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return errors.New("empty address")
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

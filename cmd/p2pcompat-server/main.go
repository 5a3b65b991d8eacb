// Command p2pcompat-server runs the rendezvous server that p2pcompat peers
// register with and find each other through. Its one UDP port also answers
// STUN Binding requests and, with -relay-ip, is a TURN relay.
//
//	p2pcompat-server [-listen ADDR] [-apps 480,730] [-relay-ip IP]
//	                 [-turn HOST:PORT[,HOST:PORT...]]... [-turn-secret SECRET]
//	                 [-secret-file PATH] [-server-key-file PATH] [-hide-presence]
//	                 [-rate-limit N] [-rate-burst N] [-readers N]
//	                 [-admin ADDR|off] [-log-format text|json]
//	                 [-log-level debug|info|warn|error]
//
// -listen is the UDP address to serve on (default :3478). -relay-ip is the
// public IPv4 address that allocations on the embedded relay advertise,
// the address players reach this server at. -turn lists external TURN
// servers (coturn with use-auth-secret and static-auth-secret=SECRET) that
// clients are handed credentials for too; -turn-secret is that secret,
// which the embedded relay then uses as well. Clients learn every relay,
// with short-lived credentials, when they register.
//
// -secret-file names a file whose content (a trailing newline trimmed) is
// the secret that registration tokens are made under: the game's back end
// mints a token per player with rendezvous.IssueToken and the same secret,
// and the server then admits only registrations with a valid token for
// exactly their SteamID and AppID. Without it the server is open: anyone
// may register under any SteamID (it says so in its log). -apps lists the
// AppIDs admitted (default: all). -server-key-file keeps the server's
// X25519 key in a file (made, mode 0600, if missing), so that clients can
// pin the public key the start-up log shows (p2p.Config.RendezvousKey). -hide-presence leaves lookups of users
// who are offline or in another game unanswered, as on Steam. -rate-limit
// and -rate-burst bound the messages the server takes from one source
// address (per second, and at once; defaults 50 and 100). -readers is how
// many sockets read the port side by side, with SO_REUSEPORT on Linux
// (default one per CPU).
//
// -log-format (text or json) and -log-level (debug, info, warn or error)
// shape the log, written to standard error with log/slog; the defaults are
// text and info.
//
// # Environment
//
// Every flag can be set by an environment variable instead: P2PCOMPAT_ and
// the flag's name in capitals, dashes made underscores: P2PCOMPAT_LISTEN,
// P2PCOMPAT_APPS, P2PCOMPAT_RELAY_IP, P2PCOMPAT_TURN, P2PCOMPAT_TURN_SECRET,
// P2PCOMPAT_SECRET_FILE, P2PCOMPAT_SERVER_KEY_FILE, P2PCOMPAT_HIDE_PRESENCE, P2PCOMPAT_RATE_LIMIT,
// P2PCOMPAT_RATE_BURST, P2PCOMPAT_READERS, P2PCOMPAT_ADMIN, P2PCOMPAT_LOG_FORMAT and
// P2PCOMPAT_LOG_LEVEL. A flag given on the command line wins over its
// variable; an empty variable counts as unset; a variable whose value the
// flag would refuse is a usage error naming the variable. Variables with
// the prefix that match no flag are logged as a warning. -h prints every
// flag with its variable and default.
//
// # Admin endpoints
//
// -admin (default 127.0.0.1:9090, loopback so that nothing is exposed by
// accident; "" or "off" disables it) is the TCP address of an HTTP
// listener with two endpoints:
//
//   - /healthz answers 200 "ok" while the server serves, and 503 once it
//     is shutting down.
//   - /metrics serves the server's counters and gauges (rendezvous.ServerStats)
//     in the Prometheus text exposition format, version 0.0.4, all named
//     p2pcompat_*: datagrams and bytes in and out of the UDP socket, drops
//     by reason, registrations accepted and refused by reason, lookups by
//     answer, offers, users online, and the embedded relay's allocations
//     and traffic.
//
// # Signals and exit status
//
// SIGTERM or SIGINT stops the server gracefully: /healthz turns 503, the
// admin listener shuts down (waiting a few seconds at most for requests in
// flight), the UDP socket closes, "stopped" is logged, and the process
// exits with status 0. A second signal during that ends the process at
// once. The exit status is 1 if the server cannot run (its port is taken,
// say) and 2 for a usage error.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// adminShutdownTimeout bounds how long shutting down waits for the admin
// listener's requests in flight.
const adminShutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, the next one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, runEnv{
		args:    os.Args[1:],
		environ: os.Environ(),
		stdout:  os.Stdout,
		stderr:  os.Stderr,
	})
	stop()
	os.Exit(code)
}

// runEnv is what run takes from its surroundings.
type runEnv struct {
	args    []string
	environ []string  // "NAME=value", as os.Environ
	stdout  io.Writer // -h's usage text
	stderr  io.Writer // the log, and usage errors
	// started, if not nil, is called once the server serves, with it and
	// the admin listener's address (nil without one).
	started func(srv *rendezvous.Server, admin net.Addr)
	// stopping, if not nil, is called once shutting down has begun, with
	// /healthz answering 503, before the admin listener closes.
	stopping func()
}

// run serves until ctx ends and returns the exit code: 0 after a graceful
// stop, 1 for a failure, 2 for a usage error.
func run(ctx context.Context, e runEnv) int {
	cfg, err := parseFlags(e.args, e.environ, e.stdout, e.stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := newLogger(e.stderr, cfg.logFormat, cfg.logLevel)
	for _, name := range cfg.unknownEnv {
		log.Warn("ignoring an environment variable that matches no flag", "name", name)
	}
	cfg.server.Logger = log
	start := time.Now()
	srv, err := rendezvous.NewServer(cfg.server)
	if err != nil {
		log.Error("cannot start", "err", err)
		if errors.As(err, new(*rendezvous.ConfigError)) {
			return 2
		}
		return 1
	}

	// Serving from here on, until shutting down begins.
	var serving atomic.Bool
	serving.Store(true)
	var admin *http.Server
	var adminAddr net.Addr
	adminDone := make(chan error, 1)
	if cfg.admin != "" {
		ln, err := net.Listen("tcp", cfg.admin)
		if err != nil {
			log.Error("cannot start the admin listener", "err", err)
			srv.Close()
			return 1
		}
		adminAddr = ln.Addr()
		admin = &http.Server{
			Handler:           adminHandler(&serving, srv.Stats, start),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go func() { adminDone <- admin.Serve(ln) }()
		log.Info("admin listening", "addr", adminAddr.String())
	} else {
		log.Info("admin listener off")
	}
	log.Info("rendezvous server listening", "addr", srv.Addr().String(), "apps", cfg.server.AllowedApps, "relay_ip", cfg.server.RelayIP, "turn", cfg.server.TURN,
		"tokens", len(cfg.server.Secret) > 0, "hide_presence", cfg.server.HidePresence,
		"server_key", base64.StdEncoding.EncodeToString(func() []byte { k := srv.PublicKey(); return k[:] }()), "server_key_fixed", cfg.server.PrivateKey != [32]byte{})
	if e.started != nil {
		e.started(srv, adminAddr)
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx).Error())
	case err := <-adminDone:
		log.Error("admin listener failed; shutting down", "err", err)
		adminDone <- nil // nothing left to wait for
		code = 1
	}
	serving.Store(false)
	if e.stopping != nil {
		e.stopping()
	}
	if admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		if err := admin.Shutdown(sctx); err != nil {
			log.Warn("admin listener did not shut down in time; closing it", "err", err)
			admin.Close()
		}
		cancel()
		<-adminDone
	}
	if err := srv.Close(); err != nil {
		log.Error("close", "err", err)
		code = 1
	}
	log.Info("stopped", "exit_code", code)
	return code
}

// newLogger makes the log: format "json" or "text", at level and above.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

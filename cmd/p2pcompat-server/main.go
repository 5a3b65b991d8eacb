// Command p2pcompat-server runs the rendezvous server that p2pcompat peers
// register with and find each other through.
//
//	p2pcompat-server [-listen ADDR] [-apps 480,730]
//
// It serves until SIGINT or SIGTERM and logs to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("p2pcompat-server", flag.ContinueOnError)
	listen := fs.String("listen", ":3478", "UDP `address` to serve on")
	apps := fs.String("apps", "", "comma-separated `AppIDs` to admit; empty admits every AppID")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	allowed, err := parseApps(*apps)
	if err != nil {
		fmt.Fprintf(fs.Output(), "-apps: %v\n", err)
		return 2
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{
		ListenAddr:  *listen,
		AllowedApps: allowed,
		Logger:      log,
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	log.Info("rendezvous server listening", "addr", srv.Addr().String(), "apps", *apps)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down")
	if err := srv.Close(); err != nil {
		log.Error("close", "err", err)
		return 1
	}
	return 0
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

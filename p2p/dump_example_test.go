package p2p_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// Two players on one machine, with a rendezvous of their own, exchange a
// message; then one prints its session table and the full status of its
// session with the other. Addresses and times differ from run to run, so
// the output is not checked here; the table looks like this:
//
//	STEAMID  STATE        PATH    REMOTE           RTT    LOSS  QUEUED  IN/S  OUT/S  CHANNELS  AGE  IDLE  ERROR
//	2        established  direct  127.0.0.1:41234  112µs  0%    0 B     -     -      0         2ms  0s    -
//
// IN/S and OUT/S read "-" in a session's first second: rates are only
// measured over a second or more.
func ExampleNetworking_DumpSessions() {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	player := func(id p2p.SteamID) *p2p.Networking {
		n, err := p2p.New(p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	alice, bob := player(1), player(2)
	defer alice.Close()
	defer bob.Close()

	bob.AcceptP2PSessionWithUser(1)
	alice.SendP2PPacket(2, []byte("hello"), p2p.P2PSendReliable, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bob.Receive(ctx, 0); err != nil {
		log.Fatal(err)
	}

	if err := alice.DumpSessions(os.Stdout); err != nil {
		log.Fatal(err)
	}
	if status, ok := alice.DetailedStatus(2); ok {
		fmt.Print(status)
	}
}

// The same table, per-session detail and JSON, served on a debug listener
// that only this machine can reach: GET /debug/p2p for the table,
// ?format=json (or Accept: application/json) for JSON, ?remote=STEAMID for
// one session.
func ExampleDebugHandler() {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	n, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	mux := http.NewServeMux()
	mux.Handle("/debug/p2p", p2p.DebugHandler(n))
	log.Fatal(http.ListenAndServe("127.0.0.1:6060", mux))
}

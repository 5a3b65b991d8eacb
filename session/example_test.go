package session_test

import (
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/p2pcompat/p2pcompat/callbacks"
	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/session"
)

// printEnv is the outside world of the example: it prints what the
// Manager asks of it, and remembers the lookups for the example to answer.
// Env methods must not block or call back into the Manager, so the answer
// comes later, from the example itself.
type printEnv struct{ lookups []session.SteamID }

func (e *printEnv) Lookup(target session.SteamID, sessionID uint64) {
	fmt.Println("env: look up user", target)
	e.lookups = append(e.lookups, target)
}
func (e *printEnv) WriteTo(b []byte, to netip.AddrPort) {
	fmt.Printf("env: write %d bytes to %v\n", len(b), to)
}
func (e *printEnv) WriteOpener(b []byte, to netip.AddrPort) bool { return false }
func (e *printEnv) RelayTo(b []byte, to netip.AddrPort) bool     { return false }
func (e *printEnv) HasRelay() bool                               { return false }
func (e *printEnv) RelayServer() netip.AddrPort                  { return netip.AddrPort{} }
func (e *printEnv) Permit(addrs []netip.AddrPort)                {}
func (e *printEnv) Revoke(addrs []netip.AddrPort)                {}

func ExampleManager_Send() {
	const alice, bob session.SteamID = 76561197960287930, 76561197960287931

	// A virtual clock: no timer of the Manager (connect timeout, lookup
	// repeat) can fire while the example runs.
	now := time.Unix(1_700_000_000, 0)
	env := &printEnv{}
	cb := callbacks.New(0)
	m, err := session.NewManager(session.Config{
		SteamID: alice,
		Clock:   func() time.Time { return now },
	}, env, cb)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Shutdown()

	// Callbacks reach the game only when it runs the queue.
	callbacks.Handle(cb, func(f session.ConnectFail) {
		fmt.Printf("connect fail: user %d, %v\n", f.SteamIDRemote, f.SessionError)
	})

	// No connect call: the first Send opens the session, which starts by
	// looking bob up at the rendezvous. Env.Lookup is called from the
	// Manager's outbox, once its lock is released.
	if err := m.Send(bob, []byte("hello"), channels.Reliable, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Println("send queued")

	// The example plays the rendezvous: bob is not registered.
	for _, target := range env.lookups {
		m.OnLookup(session.LookupResult{Target: target, Status: session.LookupNotOnline})
	}

	// The failure waits in the queue for the game's next frame.
	fmt.Println("callbacks run:", cb.Run())
	// Output:
	// env: look up user 76561197960287931
	// send queued
	// connect fail: user 76561197960287931, DestinationNotLoggedOn
	// callbacks run: 1
}

// Package session is the session table of one Networking: one state machine
// per remote user (looking up, connecting, waiting for accept, established,
// failed), the handshake that agrees on session IDs and keys, the timers
// (connect timeout, idle, keepalive, request repeat), the per-channel receive
// queues, and the rules of COMPAT C30-C42 about requests, accepts, failures
// and closes.
//
// The Manager does no I/O of its own and runs no goroutine. It is fed
// datagrams (HandlePackets), the rendezvous' answers in its own types
// (OnLookup, OnOffer, OnDelivered), the game's calls and timer ticks
// (OnTimer, when Deadline comes); each such step reads the time once from
// Config.Clock under its lock. What a step decides to send, look up or
// permit goes into an outbox, which is written through the Env after the
// lock is released. The receive queues have a lock of their own, so that
// the game's reads never wait on packet processing. The Networking in
// package p2p owns the socket and the goroutines around it; tests drive a
// Manager alone, in virtual time.
package session

import (
	"fmt"
	"net/netip"

	"github.com/p2pcompat/p2pcompat/channels"
)

// SteamID identifies a user: the 64-bit Steam ID, 0 is invalid.
type SteamID uint64

// SessionError is EP2PSessionError: why a session failed.
type SessionError uint8

// Session errors, with Steam's values.
const (
	ErrorNone                   SessionError = 0
	ErrorNotRunningApp          SessionError = 1
	ErrorNoRightsToApp          SessionError = 2
	ErrorDestinationNotLoggedOn SessionError = 3
	ErrorTimeout                SessionError = 4
	ErrorMax                    SessionError = 5
)

// String names e as Steam's EP2PSessionError does, without the
// k_EP2PSessionError prefix ("Timeout", "DestinationNotLoggedOn").
func (e SessionError) String() string {
	switch e {
	case ErrorNone:
		return "None"
	case ErrorNotRunningApp:
		return "NotRunningApp"
	case ErrorNoRightsToApp:
		return "NoRightsToApp"
	case ErrorDestinationNotLoggedOn:
		return "DestinationNotLoggedOn"
	case ErrorTimeout:
		return "Timeout"
	}
	return fmt.Sprintf("P2PSessionError(%d)", uint8(e))
}

// State is P2PSessionState_t.
type State struct {
	ConnectionActive     bool
	Connecting           bool
	SessionError         SessionError
	UsingRelay           bool
	BytesQueuedForSend   int32
	PacketsQueuedForSend int32
	RemoteIP             uint32 // IPv4, host byte order
	RemotePort           uint16
}

// Request is P2PSessionRequest_t: a user we have no session with wants one.
type Request struct{ SteamIDRemote SteamID }

// ConnectFail is P2PSessionConnectFail_t.
type ConnectFail struct {
	SteamIDRemote SteamID
	SessionError  SessionError
}

// SendType re-exports the engine's send types for the layers above.
type SendType = channels.SendType

// LookupStatus is what the rendezvous answered about a user looked up.
type LookupStatus uint8

// The answers to a lookup.
const (
	LookupFound     LookupStatus = iota // online under our AppID: key and addresses known
	LookupNotOnline                     // not registered
	LookupOtherApp                      // online, under another AppID
)

// LookupResult is the rendezvous' answer to an Env.Lookup, for OnLookup.
type LookupResult struct {
	Target    SteamID
	Status    LookupStatus
	PublicKey [32]byte // LookupFound: the user's identity key
	// Addrs are the user's candidates, the address the rendezvous saw it
	// at first (nil if it hides its address); Relayed its addresses on
	// TURN relays. Both only with LookupFound.
	Addrs   []netip.AddrPort
	Relayed []netip.AddrPort
}

// Offer is a user's request for a session with us, forwarded by the
// rendezvous, for OnOffer.
type Offer struct {
	From      SteamID
	PublicKey [32]byte
	SessionID uint64 // the ID the user's packets to us will carry
	Addrs     []netip.AddrPort
	Relayed   []netip.AddrPort
}

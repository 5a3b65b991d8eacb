package p2p

import (
	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/session"
)

// SteamID identifies a user; 0 is invalid.
type SteamID = session.SteamID

// P2PSend is EP2PSend, the send type of SendP2PPacket.
type P2PSend = channels.SendType

// The four send types (COMPAT C10-C13).
const (
	// P2PSendUnreliable may be lost or reordered; queued (and then
	// delivered reliably) while the session is not yet open.
	P2PSendUnreliable P2PSend = 0
	// P2PSendUnreliableNoDelay is thrown away if the session is not open.
	P2PSendUnreliableNoDelay P2PSend = 1
	// P2PSendReliable is delivered once, in order, up to 1 MiB.
	P2PSendReliable P2PSend = 2
	// P2PSendReliableWithBuffering is reliable but coalesced (Nagle).
	P2PSendReliableWithBuffering P2PSend = 3
)

// P2PSessionError is EP2PSessionError.
type P2PSessionError = session.SessionError

// Session errors, with Steam's values.
const (
	P2PSessionErrorNone                   P2PSessionError = 0
	P2PSessionErrorNotRunningApp          P2PSessionError = 1
	P2PSessionErrorNoRightsToApp          P2PSessionError = 2
	P2PSessionErrorDestinationNotLoggedOn P2PSessionError = 3
	P2PSessionErrorTimeout                P2PSessionError = 4
	P2PSessionErrorMax                    P2PSessionError = 5
)

// Size limits of one packet (COMPAT C04), both inclusive.
const (
	MaxUnreliablePacketSize = channels.MaxUnreliableSize
	MaxReliablePacketSize   = channels.MaxReliableSize
)

// P2PSessionState is P2PSessionState_t, as GetP2PSessionState reports it.
type P2PSessionState = session.State

// P2PSessionRequest is P2PSessionRequest_t: a user wants a session with us.
type P2PSessionRequest = session.Request

// P2PSessionConnectFail is P2PSessionConnectFail_t: a session failed.
type P2PSessionConnectFail = session.ConnectFail

// Packet is one received message, for the Go-style Receive.
type Packet struct {
	Remote  SteamID
	Channel int
	Data    []byte
}

// SteamServersConnected is SteamServersConnected_t: the rendezvous, which
// stands in for Steam's servers, answers our registration again after a
// SteamServersDisconnected. New returning is the first connection; it is
// not posted for that.
type SteamServersConnected struct{}

// SteamServersDisconnected is SteamServersDisconnected_t: the rendezvous
// stopped answering the renewals of our registration (for about
// RendezvousRefresh and ten seconds of retries), or refused one. Sessions
// already open go on; new ones cannot be looked up until
// SteamServersConnected.
type SteamServersDisconnected struct{}

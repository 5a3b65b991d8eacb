package p2p

import (
	"errors"

	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
	"github.com/p2pcompat/p2pcompat/rendezvous"
	"github.com/p2pcompat/p2pcompat/session"
)

// The reasons SendP2PPacket answers false (COMPAT C03), as typed errors of
// Send. A closed Networking answers net.ErrClosed.
var (
	ErrInvalidSteamID  = session.ErrInvalidSteamID
	ErrPacketTooLarge  = channels.ErrPacketTooLarge
	ErrInvalidSendType = channels.ErrInvalidSendType
	ErrInvalidChannel  = channels.ErrInvalidChannel
	ErrSendBufferFull  = channels.ErrSendBufferFull
)

// ErrNoRightsToApp is returned by New when the rendezvous refuses our
// registration for the AppID: the P2PSessionErrorNoRightsToApp of COMPAT C37.
var ErrNoRightsToApp = errors.New("p2p: no rights to app")

// RefusedError is why the rendezvous refused our registration; New returns
// an error with one in its chain (errors.As). Its Reason is one of the
// Refuse constants.
type RefusedError = rendezvous.RefusedError

// RefuseReason says why a registration was refused.
type RefuseReason = rendezvous.RefuseReason

// The reasons a rendezvous refuses a registration.
const (
	RefuseInvalid       = rendezvous.RefuseInvalid
	RefuseNoRightsToApp = rendezvous.RefuseNoRightsToApp
	RefuseServerFull    = rendezvous.RefuseServerFull
	RefuseTokenMissing  = rendezvous.RefuseTokenMissing  // the server wants a Config.Token
	RefuseTokenInvalid  = rendezvous.RefuseTokenInvalid  // not made under the server's secret
	RefuseTokenExpired  = rendezvous.RefuseTokenExpired  // past its expiry
	RefuseTokenWrongID  = rendezvous.RefuseTokenWrongID  // made for another SteamID
	RefuseTokenWrongApp = rendezvous.RefuseTokenWrongApp // made for another AppID
	// RefuseIDInUse: our SteamID is registered, live, under another key
	// (another instance, or someone else), and the server has no token
	// of ours that says we are the player. A restart with the same
	// Config.PrivateKey is not refused; one with a new key is once the
	// old registration lapses (the server's RegistrationTTL, 30 s by
	// default).
	RefuseIDInUse = rendezvous.RefuseIDInUse
)

// ConfigError is the error New returns for a Config it cannot use: Field
// names the field refused ("ConnectTimeout", "Simulate.FakePacketLagSend"),
// Reason says why, and Config is "p2p.Config". It is the same type as the
// ConfigError of every other package of the module.
type ConfigError = cfgerr.Error

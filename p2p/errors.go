package p2p

import (
	"errors"

	"github.com/p2pcompat/p2pcompat/channels"
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

// ConfigError names the Config field that New rejected.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "p2p: invalid Config." + e.Field + ": " + e.Reason }

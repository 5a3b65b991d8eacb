package session

import (
	"math"
	"net/netip"
	"time"

	"github.com/p2pcompat/p2pcompat/channels"
	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
)

// ConfigError is the error NewManager returns for a Config it refuses:
// Field names the field, Reason says why, and Config is "session.Config".
// It is the same type as the ConfigError of every other package of the
// module.
type ConfigError = cfgerr.Error

// Config tunes a Manager; the zero value of every field but SteamID means
// its default.
type Config struct {
	SteamID SteamID // the local user; required, non-zero
	// PrivateKey is the local user's X25519 identity key, which peers
	// learn from the rendezvous; zero: a new one for this Manager.
	PrivateKey [32]byte
	// Clock is read once in each step the Manager takes under its lock,
	// and is the time of that step; nil means time.Now. Tests give a
	// virtual clock. A clock that goes back is held at the latest time
	// it gave.
	Clock             func() time.Time
	ConnectTimeout    time.Duration // C35/C41; 0 means 20 s
	IdleTimeout       time.Duration // C40; 0 means 3 min
	KeepaliveInterval time.Duration // 0 means min(5 s, ConnectTimeout/4)
	RequestRepeat     time.Duration // C31; 0 means 10 s
	// RequestRate bounds the P2PSessionRequests posted a second, and
	// RequestBurst at once, so that a flood of strangers does not flood
	// the game's callbacks; those over it are posted later, the newest
	// user first. 0 means 50 a second, 100 at once.
	RequestRate  float64
	RequestBurst float64
	MaxSessions  int // C42; 0 means 4096
	// MaxChannels caps the channels open with one user; a peer whose
	// message would open one more is treated as broken and its session
	// closed, so that a peer cannot hold our memory with ever new channel
	// numbers. 0 means 4096.
	MaxChannels int
	// AllowCandidate says whether an address a peer announced, whose
	// address as the rendezvous saw it is peerObserved, may be sent to; nil
	// allows every usable one. Unspecified, multicast and broadcast
	// addresses and ports below 1024 are never used.
	AllowCandidate func(a netip.AddrPort, peerObserved netip.Addr) bool
	// KnownRelay says whether ip is a TURN relay we were handed too (the
	// rendezvous' embedded relay, the operator's, our own): a peer's
	// relayed address there is not held to the amplification bound that
	// a peer's word is (see emitBounded). nil: none is known.
	KnownRelay func(ip netip.Addr) bool
	// OwnNetwork says whether a peer observed at peerObserved that
	// announced ip is on our own network: behind our public address, or
	// ip on one of our subnets. Its addresses are then not held to the
	// amplification bound either. nil: none is.
	OwnNetwork func(ip, peerObserved netip.Addr) bool
	// ForceRelay keeps our address from peers: nothing is sent to a peer
	// from our socket, only through our TURN allocation, and only pairs on
	// it count. Relaying is then allowed whatever AllowP2PPacketRelay says.
	ForceRelay bool
	// DeferWrites is set by an owner that runs a goroutine calling
	// Manager.WriteOutput whenever Manager.Output fires. Data for a
	// session with packets in flight is then left to that goroutine,
	// so that a sender never waits on the socket in the middle of a
	// transfer and what it sends leaves in runs; data on an idle path,
	// where latency is all that matters, is still written at once.
	DeferWrites bool
	Engine      channels.Config
}

func (c Config) validate() error {
	const cfg = "session.Config"
	switch {
	case c.SteamID == 0:
		return cfgerr.New(cfg, "SteamID", "required, must be non-zero")
	case c.ConnectTimeout < 0:
		return cfgerr.Negative(cfg, "ConnectTimeout")
	case c.IdleTimeout < 0:
		return cfgerr.Negative(cfg, "IdleTimeout")
	case c.KeepaliveInterval < 0:
		return cfgerr.Negative(cfg, "KeepaliveInterval")
	case c.RequestRepeat < 0:
		return cfgerr.Negative(cfg, "RequestRepeat")
	case c.RequestRate < 0 || math.IsNaN(c.RequestRate) || math.IsInf(c.RequestRate, 0):
		return cfgerr.New(cfg, "RequestRate", "must be a finite number, not negative")
	case c.RequestBurst < 0 || math.IsNaN(c.RequestBurst) || math.IsInf(c.RequestBurst, 0):
		return cfgerr.New(cfg, "RequestBurst", "must be a finite number, not negative")
	case c.MaxSessions < 0:
		return cfgerr.Negative(cfg, "MaxSessions")
	case c.MaxChannels < 0:
		return cfgerr.Negative(cfg, "MaxChannels")
	}
	if err := c.Engine.Validate(); err != nil {
		ce := err.(*cfgerr.Error)
		return cfgerr.New(cfg, "Engine."+ce.Field, ce.Reason)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 20 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 3 * time.Minute
	}
	if c.KeepaliveInterval <= 0 {
		c.KeepaliveInterval = 5 * time.Second
		if q := c.ConnectTimeout / 4; q < c.KeepaliveInterval {
			c.KeepaliveInterval = q
		}
	}
	if c.RequestRepeat <= 0 {
		c.RequestRepeat = 10 * time.Second
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 4096
	}
	if c.MaxChannels <= 0 {
		c.MaxChannels = 4096
	}
	if c.RequestRate <= 0 {
		c.RequestRate = 50
	}
	if c.RequestBurst < 1 {
		c.RequestBurst = 100
	}
	return c
}

// Handshake pacing: hellos start fast, because on a good path the first
// answer comes within a millisecond, and back off so that a user who never
// accepts costs the network little.
const (
	helloFirst = 50 * time.Millisecond
	helloMax   = time.Second
	lookupMin  = time.Second
	lookupMax  = 4 * time.Second
)

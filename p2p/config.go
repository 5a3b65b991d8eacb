package p2p

import (
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/pion/transport/v2"

	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
	"github.com/p2pcompat/p2pcompat/relayfallback"
)

// Config configures a Networking. The zero value of every field but SteamID
// and RendezvousAddr is a working default; New fills defaults into a copy.
type Config struct {
	SteamID        SteamID // who we are; required, non-zero
	AppID          uint32  // which game; sessions only open within one AppID
	RendezvousAddr string  // host:port of the rendezvous server (UDP); required
	// RendezvousKey pins the rendezvous server's X25519 public key (a
	// server run with a fixed key: p2pcompat-server -server-key-file,
	// which logs it). Zero: the first key the server's address gives is
	// trusted, so whoever answers before the server could pose as it.
	RendezvousKey [32]byte
	// Token is the registration token the game's back end issued for this
	// SteamID and AppID (rendezvous.IssueToken); required by a rendezvous
	// that has a secret, ignored by an open one.
	Token string
	// PrivateKey is this player's X25519 private key (crypto/ecdh's
	// X25519 makes one), its identity toward the rendezvous and its
	// peers. Zero: a new key for every New. Keeping it across restarts
	// (in a file of the player's, say) has two uses: a restarted game
	// gets its registration back at once, where one with a new key is
	// refused until the old registration lapses (RefuseIDInUse, on a
	// server without tokens); and the game's back end can vouch for its
	// public half (Certificate).
	PrivateKey [32]byte
	// Certificate is the back end's certificate of PrivateKey's public
	// half for this SteamID and AppID (rendezvous.IssueCertificate),
	// which the rendezvous passes on to our peers; required when
	// CertificateKey is set.
	Certificate string
	// CertificateKey is the public half of the key the game's back end
	// signs certificates with, shipped with the game. With it, a peer's
	// key is taken only with a certificate that verifies under it, so
	// that a rendezvous that hands out keys of its own, to read or forge
	// sessions, is found out: the session is refused, as for a user not
	// logged on (P2PSessionErrorDestinationNotLoggedOn), and the refusal
	// logged at Warn. nil: peers' keys are the rendezvous' word.
	CertificateKey ed25519.PublicKey
	ListenAddr     string        // local UDP address; "" means ":0", or loopback for a rendezvous on loopback
	ConnectTimeout time.Duration // 0 means 20 s (C35, C41)
	MaxSessions    int           // LRU capacity; 0 means 4096 (C42)
	// MaxChannels caps the channels open with one user. A peer whose
	// message would open one more is treated as broken: its session is
	// closed, as by CloseP2PSessionWithUser but keeping what it sent and
	// we have not read. 0 means 4096.
	MaxChannels int

	// IdleTimeout closes an established session without traffic (C40);
	// 0 means 3 min.
	IdleTimeout time.Duration
	// KeepaliveInterval is how often an otherwise quiet session proves it is
	// alive; 0 means the smaller of 5 s and ConnectTimeout/4.
	KeepaliveInterval time.Duration
	// SessionRequestRepeat is how often P2PSessionRequest is posted again
	// while a user keeps trying and is not accepted (C31); 0 means 10 s.
	SessionRequestRepeat time.Duration
	// SendBufferSize caps the messages waiting to be sent, in full, to one
	// user (C07); 0 means 1 MiB. Bytes sent and awaiting acknowledgement
	// do not count: the peer's receive window bounds those.
	SendBufferSize int
	// RecvBufferSize caps what one user may have waiting unread for us;
	// 0 means 4 MiB, and it is never less than one maximal message.
	RecvBufferSize int
	// NagleDelay is how long ReliableWithBuffering data waits to coalesce
	// (C13); 0 means 200 ms.
	NagleDelay time.Duration
	// RegisterTimeout bounds how long New waits for the rendezvous to
	// confirm the registration; 0 means 10 s.
	RegisterTimeout time.Duration
	// RendezvousRefresh is how often the registration is renewed, which
	// bounds how soon a rendezvous that stopped answering is noticed
	// (SteamServersDisconnected, LoggedOn); 0 means 10 s. It must stay well
	// below the server's registration lifetime (30 s by default).
	RendezvousRefresh time.Duration
	// OpenerTTL is the IP TTL of the first packets toward a peer's public
	// address: enough to pass our own NAT router and create its mapping,
	// too little to reach the peer's router before the peer's own packets
	// do. 0 means 2 (one home router); raise it behind carrier-grade NAT.
	OpenerTTL int
	// Logger receives the library's logs; nil discards them.
	Logger *slog.Logger
	// ForceRelay keeps our IP address from every peer: we are only ever
	// reached through a relay, and the rendezvous shows peers none of our
	// own addresses. Sessions then wait for our relay allocation, and
	// AllowP2PPacketRelay(false) cannot turn relaying off.
	ForceRelay bool
	// Relays are TURN servers of our own, tried before those the rendezvous
	// hands out; sessions use a relay when no direct path opens (C51).
	Relays []relayfallback.Server
	// Net is the network the socket is opened on; nil means the real one.
	// Tests pass a pion vnet to put peers behind simulated NATs.
	Net transport.Net
	// Simulate makes the network worse on purpose, for testing a game
	// under loss, lag, reordering and duplication; the zero value
	// simulates nothing. See Simulation.
	Simulate Simulation
}

func (c Config) withDefaults() Config {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 20 * time.Second
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 4096
	}
	if c.OpenerTTL <= 0 {
		c.OpenerTTL = 2
	}
	if c.RegisterTimeout <= 0 {
		c.RegisterTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.SteamID == 0:
		return cfgerr.New("p2p.Config", "SteamID", "required, must be non-zero")
	case c.RendezvousAddr == "":
		return cfgerr.New("p2p.Config", "RendezvousAddr", "required: host:port of the rendezvous server")
	case c.ConnectTimeout < 0:
		return cfgerr.Negative("p2p.Config", "ConnectTimeout")
	case c.IdleTimeout < 0:
		return cfgerr.Negative("p2p.Config", "IdleTimeout")
	case c.KeepaliveInterval < 0:
		return cfgerr.Negative("p2p.Config", "KeepaliveInterval")
	case c.SessionRequestRepeat < 0:
		return cfgerr.Negative("p2p.Config", "SessionRequestRepeat")
	case c.NagleDelay < 0:
		return cfgerr.Negative("p2p.Config", "NagleDelay")
	case c.RegisterTimeout < 0:
		return cfgerr.Negative("p2p.Config", "RegisterTimeout")
	case c.MaxSessions < 0:
		return cfgerr.Negative("p2p.Config", "MaxSessions")
	case c.MaxChannels < 0:
		return cfgerr.Negative("p2p.Config", "MaxChannels")
	case c.SendBufferSize < 0:
		return cfgerr.Negative("p2p.Config", "SendBufferSize")
	case c.RecvBufferSize < 0:
		return cfgerr.Negative("p2p.Config", "RecvBufferSize")
	case c.RendezvousRefresh < 0:
		return cfgerr.Negative("p2p.Config", "RendezvousRefresh")
	case c.OpenerTTL < 0 || c.OpenerTTL > 255:
		return cfgerr.New("p2p.Config", "OpenerTTL", "must be between 0 and 255")
	case c.CertificateKey != nil && len(c.CertificateKey) != ed25519.PublicKeySize:
		return cfgerr.New("p2p.Config", "CertificateKey", "not an Ed25519 public key")
	case c.CertificateKey != nil && c.Certificate == "":
		return cfgerr.New("p2p.Config", "Certificate", "required with CertificateKey: peers refuse a key without one")
	case c.CertificateKey != nil && c.PrivateKey == [32]byte{}:
		return cfgerr.New("p2p.Config", "PrivateKey", "required with CertificateKey: the certificate vouches for its public half")
	}
	return c.Simulate.validate()
}

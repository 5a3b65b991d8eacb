package p2p

import "net/netip"

// relayClient is the part of a TURN client the Networking uses.
type relayClient interface {
	WriteTo(b []byte, peer netip.AddrPort) error
	Permit(peers ...netip.AddrPort)
	ServerAddr() netip.AddrPort
}

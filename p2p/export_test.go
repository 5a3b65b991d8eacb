package p2p

import (
	"net/netip"
)

// CrashForTest ends n as a crash would: its socket goes first, so that
// nothing, not even the unregistration, reaches the rendezvous.
func CrashForTest(n *Networking) {
	n.conn.Close()
	n.Close()
}

// RelayPeerIPs lists the peer IPs our relay client holds or asks a TURN
// permission for; nil while there is no allocation.
func RelayPeerIPs(n *Networking) []netip.Addr {
	if rc := n.relay.Load(); rc != nil {
		return rc.PeerIPs()
	}
	return nil
}

// HasRelay reports whether n holds a relay allocation.
func HasRelay(n *Networking) bool { return n.relay.Load() != nil }

// ShutDownSessionsForTest shuts n's sessions down as Close begins to,
// leaving n itself not yet marked closed.
func ShutDownSessionsForTest(n *Networking) { n.mgr.Shutdown() }

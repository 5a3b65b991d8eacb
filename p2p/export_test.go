package p2p

// CrashForTest ends n as a crash would: its socket goes first, so that
// nothing, not even the unregistration, reaches the rendezvous.
func CrashForTest(n *Networking) {
	n.conn.Close()
	n.Close()
}

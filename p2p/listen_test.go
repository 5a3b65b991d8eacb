package p2p

import (
	"net"
	"net/netip"
	"testing"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// An empty Config.ListenAddr binds loopback for a rendezvous on loopback
// (peers there are on this machine) and every interface otherwise.
func TestDefaultListen(t *testing.T) {
	for _, c := range []struct{ server, want string }{
		{"127.0.0.1:27015", "127.0.0.1:0"},
		{"[::1]:27015", "[::1]:0"},
		{"203.0.113.7:27015", ":0"},
	} {
		if got := defaultListen(netip.MustParseAddrPort(c.server)); got != c.want {
			t.Errorf("defaultListen(%s) = %q, want %q", c.server, got, c.want)
		}
	}

	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	for _, addr := range []string{srv.Addr().String(), net.JoinHostPort("localhost", port)} {
		n, err := New(Config{SteamID: 1, AppID: 480, RendezvousAddr: addr})
		if err != nil {
			t.Fatal(err)
		}
		local := n.LocalAddr().(*net.UDPAddr)
		n.Close()
		if !local.IP.IsLoopback() {
			t.Errorf("rendezvous at %s: bound %v, want loopback", addr, local)
		}
	}
}

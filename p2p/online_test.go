package p2p_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v2/vnet"

	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// LoggedOn and the two server callbacks follow the rendezvous: a server
// that stops answering is noticed within a refresh and its retries
// (SteamServersDisconnected, LoggedOn false), and one that answers again
// is too (SteamServersConnected, LoggedOn true). Both callbacks run only
// inside RunCallbacks. Run in virtual time.
func TestLoggedOnFollowsTheRendezvous(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vnetlab.Lock()
		wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: vnetlab.QuietLogs()})
		if err != nil {
			t.Fatal(err)
		}
		srvNet, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{labServer}})
		peerNet, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.18.0.20"}})
		wan.AddNet(srvNet)
		wan.AddNet(peerNet)
		vnetlab.Unlock()
		if err := wan.Start(); err != nil {
			t.Fatal(err)
		}
		defer wan.Stop()
		addr := labServer + ":3478"
		srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: addr, Net: srvNet})
		if err != nil {
			t.Fatal(err)
		}
		const refresh = time.Second
		n, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: addr, Net: peerNet, RendezvousRefresh: refresh})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		var events []string
		n.OnSteamServersConnected(func(p2p.SteamServersConnected) { events = append(events, "connected") })
		n.OnSteamServersDisconnected(func(p2p.SteamServersDisconnected) { events = append(events, "disconnected") })
		if !n.LoggedOn() {
			t.Fatal("LoggedOn false after New")
		}
		time.Sleep(5 * refresh)
		synctest.Wait()
		n.RunCallbacks()
		if !n.LoggedOn() || len(events) != 0 {
			t.Fatalf("with the server up: LoggedOn %v, events %v", n.LoggedOn(), events)
		}

		srv.Close()
		// A refresh round is at most eight tries, about 11 s.
		deadline := time.Now().Add(refresh + 15*time.Second)
		for n.LoggedOn() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if n.LoggedOn() {
			t.Fatal("LoggedOn still true 16 s after the server went away")
		}
		synctest.Wait()
		if len(events) != 0 {
			t.Fatalf("events %v ran outside RunCallbacks", events)
		}
		n.RunCallbacks()
		if len(events) != 1 || events[0] != "disconnected" {
			t.Fatalf("events %v, want [disconnected]", events)
		}

		srv, err = rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: addr, Net: srvNet})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		// The next round starts a refresh interval after the lost one.
		deadline = time.Now().Add(refresh + 15*time.Second)
		for !n.LoggedOn() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !n.LoggedOn() {
			t.Fatal("LoggedOn still false after the server came back")
		}
		synctest.Wait()
		n.RunCallbacks()
		if len(events) != 2 || events[1] != "connected" {
			t.Fatalf("events %v, want [disconnected connected]", events)
		}
	})
}

package p2p_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v2/vnet"

	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// A relayed session outlives its relay credentials: before they expire
// the allocation is replaced with one on fresh credentials, and the peers
// carry on over it. Run in virtual time: an hour passes in milliseconds.
func TestRelayedSessionOutlivesCredentials(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		vnetlab.Lock()
		wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: vnetlab.QuietLogs()})
		if err != nil {
			t.Fatal(err)
		}
		srvNet, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{labServer}})
		wan.AddNet(srvNet)
		var nets []*vnet.Net
		for i := 0; i < 2; i++ {
			lan, err := vnet.NewRouter(&vnet.RouterConfig{
				CIDR:          fmt.Sprintf("198.18.%d.0/24", 10*(i+1)),
				StaticIPs:     []string{fmt.Sprintf("198.18.0.%d", 10*(i+1))},
				NATType:       symmetric,
				LoggerFactory: vnetlab.QuietLogs(),
			})
			if err != nil {
				t.Fatal(err)
			}
			nw, _ := vnet.NewNet(&vnet.NetConfig{})
			lan.AddNet(nw)
			wan.AddRouter(lan)
			nets = append(nets, nw)
		}
		vnetlab.Unlock()
		if err := wan.Start(); err != nil {
			t.Fatal(err)
		}
		defer wan.Stop()
		srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: labServer + ":3478", Net: srvNet, RelayIP: labServer, RelayCredentialTTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var peers []*p2p.Networking
		for i, nw := range nets {
			n, err := p2p.New(p2p.Config{SteamID: p2p.SteamID(i + 1), AppID: 480, RendezvousAddr: labServer + ":3478", Net: nw})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			peers = append(peers, n)
		}
		a, b := peers[0], peers[1]
		b.AcceptP2PSessionWithUser(1)
		start := time.Now()
		for round := 0; time.Since(start) < time.Hour; round++ {
			if err := a.Send(2, []byte{byte(round)}, p2p.P2PSendReliable, 0); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			p, err := b.Receive(ctx, 0)
			cancel()
			if err != nil || p.Data[0] != byte(round) {
				st, _ := a.GetP2PSessionState(2)
				t.Fatalf("after %v, round %d: %v (a's state %+v)", time.Since(start), round, err, st)
			}
			if st, _ := a.GetP2PSessionState(2); !st.UsingRelay {
				t.Fatalf("after %v: not relayed: %+v", time.Since(start), st)
			}
			time.Sleep(time.Minute)
		}
	})
}

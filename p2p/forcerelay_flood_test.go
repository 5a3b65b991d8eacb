package p2p_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// strangerIP is the i-th address of a block of loopback addresses
// (127.block.x.y, y never 0 or 255): 2,000 strangers get 2,000 distinct
// IPs per block.
func strangerIP(block byte, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, block, byte(i / 250), byte(i%250 + 1)})
}

// A ForceRelay player, whose peers reach it only through its relay
// allocation, is offered sessions by 2,000 strangers from 2,000 source
// IPs, each announcing a host address and a relayed address on 2,000 IPs
// more of each: 6,000 IPs, where the relay client's permission table holds
// 1,024. Its game accepts none of them. Two friends still get through, one
// the game pre-accepted, one it sends to; the relay client holds no entry
// for a stranger's IP, and the friends' entries go when their sessions
// end. Before strangers were kept from the relay, their offers filled the
// table and the friend got Timeout.
func TestForceRelayFriendGetsThroughTwoThousandStrangers(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 strangers: -short")
	}
	forceRelayFlood(t, rendezvous.ServerConfig{RelayIP: "127.0.0.1"})
}

// The same with coturn as the relay, which the rendezvous hands out.
func TestForceRelayFriendGetsThroughTwoThousandStrangersOnCoturn(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 strangers: -short")
	}
	addr, secret := startCoturn(t)
	forceRelayFlood(t, rendezvous.ServerConfig{TURN: []string{addr}, TURNSecret: secret})
}

func forceRelayFlood(t *testing.T, cfg rendezvous.ServerConfig) {
	cfg.ListenAddr, cfg.RateLimit, cfg.RateBurst = "127.0.0.1:0", 1e6, 1e6
	srv, err := rendezvous.NewServer(cfg)
	require.NoError(t, err)
	// Closed last, after the friends' Cleanups: a client closing after its
	// relay went away waits out the deallocation's retries.
	t.Cleanup(func() { srv.Close() })
	server := srv.Addr().(*net.UDPAddr).AddrPort()

	player, err := p2p.New(p2p.Config{SteamID: 1, AppID: 480, RendezvousAddr: server.String(), ListenAddr: "127.0.0.1:0", ForceRelay: true})
	require.NoError(t, err)
	defer player.Close()
	require.Eventually(t, func() bool { return p2p.HasRelay(player) }, 10*time.Second, 5*time.Millisecond,
		"the player's relay allocation")
	var requests sync.Map // p2p.SteamID -> true
	var requestCount atomic.Int64
	player.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		if _, seen := requests.LoadOrStore(r.SteamIDRemote, true); !seen {
			requestCount.Add(1)
		}
	})
	// The game's frame loop: it runs callbacks and accepts nobody.
	stop := make(chan struct{})
	var loops sync.WaitGroup
	defer loops.Wait()
	defer close(stop)
	loops.Add(1)
	go func() {
		defer loops.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				player.RunCallbacks()
			}
		}
	}()
	const friendA, friendB = p2p.SteamID(2), p2p.SteamID(3)
	player.AcceptP2PSessionWithUser(friendA) // pre-accepted

	// 2,000 strangers; 500 under the race detector, where 2,000 clients
	// in the player's own process starve it of the CPU that, on the
	// internet, they would spend on their own machines.
	n := 2000
	if raceEnabled {
		n = 500
		t.Logf("race detector: %d strangers", n)
	}
	strangerIPs := make(map[netip.Addr]bool, 3*n)
	strangers := make([]*stranger, n)
	for i := range strangers {
		src, host, relayed := strangerIP(16, i), strangerIP(17, i), strangerIP(18, i)
		strangerIPs[src], strangerIPs[host], strangerIPs[relayed] = true, true, true
		strangers[i] = newStrangerAt(t, uint64(1000+i), server, src, []netip.AddrPort{netip.AddrPortFrom(host, 40000)})
		defer strangers[i].close()
		strangers[i].client.SetRelayed([]netip.AddrPort{netip.AddrPortFrom(relayed, 40000)})
	}
	var wg sync.WaitGroup
	for _, s := range strangers {
		wg.Add(1)
		go func(s *stranger) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := s.client.Register(ctx)
			assert.NoError(t, err)
		}(s)
	}
	wg.Wait()
	require.False(t, t.Failed(), "strangers failed to register")
	// The strangers look the player up every 500 ms, each time with a new
	// session ID, until the test ends (bounded: 40 s at most).
	lookUpTwiceASecond(strangers, 1, stop, &loops)
	// The flood is on once the player's game has seen more of them than
	// the request rate's burst (100; 50 a second after it): the rest
	// wait, and the friends come after them all.
	require.Eventually(t, func() bool { return requestCount.Load() >= 150 }, 20*time.Second, 10*time.Millisecond,
		"stranger requests reaching the game")

	mkFriend := func(id p2p.SteamID, ip string) *p2p.Networking {
		f, err := p2p.New(p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: server.String(), ListenAddr: ip + ":0"})
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		f.AcceptP2PSessionWithUser(1)
		return f
	}
	receive := func(n *p2p.Networking) (p2p.Packet, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return n.Receive(ctx, 0)
	}

	// Friend A, whom the game pre-accepted, sends first.
	a := mkFriend(friendA, "127.0.0.2")
	start := time.Now()
	require.NoError(t, a.Send(1, []byte("it's A"), p2p.P2PSendReliable, 0))
	p, err := receive(player)
	require.NoError(t, err, "friend A's message never reached the player")
	tookA := time.Since(start)
	assert.Equal(t, friendA, p.Remote)
	assert.Equal(t, "it's A", string(p.Data))

	// Friend B is one the player sends to.
	b := mkFriend(friendB, "127.0.0.3")
	start = time.Now()
	require.NoError(t, player.Send(friendB, []byte("hello B"), p2p.P2PSendReliable, 0))
	p, err = receive(b)
	require.NoError(t, err, "the player's message never reached friend B")
	tookB := time.Since(start)
	assert.Equal(t, p2p.SteamID(1), p.Remote)
	assert.Equal(t, "hello B", string(p.Data))
	// Figures for the reader, not assertions: speed is for benchmarks.
	t.Logf("with %d strangers offering sessions from %d IPs: friend A's message read %v after its send; the player's to friend B %v",
		n, len(strangerIPs), tookA, tookB)

	for _, f := range []p2p.SteamID{friendA, friendB} {
		st, ok := player.GetP2PSessionState(f)
		require.True(t, ok)
		assert.True(t, st.ConnectionActive && st.UsingRelay, "friend %d: %+v", f, st)
	}
	friendIPs := map[p2p.SteamID]netip.Addr{friendA: netip.MustParseAddr("127.0.0.2"), friendB: netip.MustParseAddr("127.0.0.3")}
	held := p2p.RelayPeerIPs(player)
	var ofStrangers []netip.Addr
	for _, ip := range held {
		if strangerIPs[ip] {
			ofStrangers = append(ofStrangers, ip)
		}
	}
	assert.Empty(t, ofStrangers, "the relay client holds entries for strangers' IPs (%d of %d entries)", len(ofStrangers), len(held))
	assert.Contains(t, held, friendIPs[friendA])
	assert.Contains(t, held, friendIPs[friendB])
	t.Logf("the player's relay client holds %d peer IPs: %v", len(held), held)

	// A session that ends takes its friend's entry with it; the other stays.
	require.True(t, player.CloseP2PSessionWithUser(friendA))
	require.Eventually(t, func() bool {
		held := p2p.RelayPeerIPs(player)
		for _, ip := range held {
			if ip == friendIPs[friendA] {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "friend A's relay entry after its session closed")
	assert.Contains(t, p2p.RelayPeerIPs(player), friendIPs[friendB], "friend B's entry, whose session goes on")
}

// startCoturn runs a turnserver of the test's own on 127.0.0.1, with
// coturn's shared-secret credentials, and returns its address and secret.
// Without coturn the test is skipped, unless P2PCOMPAT_COTURN_REQUIRE=1.
func startCoturn(t *testing.T) (addr, secret string) {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("P2PCOMPAT_COTURN_REQUIRE") == "1" {
			t.Fatalf("coturn is required (P2PCOMPAT_COTURN_REQUIRE=1) but not found: %v", err)
		}
		t.Skipf("needs coturn's turnserver (apt-get install coturn): %v", err)
	}
	// A free port: taken and given back; coturn binds it right after.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, pc.Close())
	addr, secret = net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "coturn test secret"
	dir := t.TempDir()
	cmd := exec.Command(bin, "-n",
		"--listening-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--relay-ip", "127.0.0.1", "--min-port", "49152", "--max-port", "65535",
		"--use-auth-secret", "--static-auth-secret", secret, "--realm", "p2pcompat.test",
		"--fingerprint", "--no-tls", "--no-dtls", "--no-tcp", "--no-tcp-relay", "--no-cli",
		"--allow-loopback-peers", "--no-multicast-peers",
		"--userdb", filepath.Join(dir, "turndb"), "--pidfile", filepath.Join(dir, "turnserver.pid"),
		"--log-file", filepath.Join(dir, "turn.log"), "--simple-log")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Ready once it answers a Binding request.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer probe.Close()
	server := netip.MustParseAddrPort(addr)
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	buf := make([]byte, 1500)
	require.Eventually(t, func() bool {
		if _, err := probe.WriteToUDPAddrPort(req.Raw, server); err != nil {
			return false
		}
		_ = probe.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := probe.ReadFromUDPAddrPort(buf)
		return err == nil && n >= 20
	}, 15*time.Second, 10*time.Millisecond, "coturn answering on %s", addr)
	return addr, secret
}

package p2p_test

import (
	"bytes"
	"context"
	"math/rand"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/vnet"

	"github.com/p2pcompat/p2pcompat/internal/testsupport/vnetlab"
	"github.com/p2pcompat/p2pcompat/p2p"
	"github.com/p2pcompat/p2pcompat/relayfallback"
	"github.com/p2pcompat/p2pcompat/rendezvous"
)

var (
	fullCone       = vnetlab.FullCone
	restrictedCone = vnetlab.RestrictedCone
	portRestricted = vnetlab.PortRestricted
	symmetric      = vnetlab.Symmetric
)

const labServer = vnetlab.ServerIP

// natLab is a vnetlab.Lab that makes peers.
type natLab struct {
	*vnetlab.Lab
	t *testing.T
}

func newNATLab(t *testing.T, relay bool) *natLab {
	return &natLab{vnetlab.New(t, relay, rendezvous.ServerConfig{}), t}
}

func (l *natLab) site(nat *vnet.NATType, n int) []*vnet.Net { return l.Site(nat, n) }

func (l *natLab) peer(id p2p.SteamID, nw *vnet.Net, edit ...func(*p2p.Config)) *p2p.Networking {
	l.t.Helper()
	cfg := p2p.Config{SteamID: id, AppID: 480, RendezvousAddr: vnetlab.ServerAddr, Net: nw, ConnectTimeout: 5 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	n, err := p2p.New(cfg)
	if err != nil {
		l.t.Fatalf("peer %d: %v", id, err)
	}
	l.t.Cleanup(func() { n.Close() })
	return n
}

// exchange opens a session a -> b with an echo and returns a's state once
// both sides are established, or the connect failure a saw.
func exchange(t *testing.T, a, b *p2p.Networking, aID, bID p2p.SteamID) (p2p.P2PSessionState, *p2p.P2PSessionConnectFail) {
	t.Helper()
	b.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) { b.AcceptP2PSessionWithUser(r.SteamIDRemote) })
	var fail *p2p.P2PSessionConnectFail
	a.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) { fail = &f })
	a.SendP2PPacket(bID, []byte("ping"), p2p.P2PSendReliable, 0)
	deadline := time.Now().Add(30 * time.Second)
	echoed := false
	for time.Now().Before(deadline) {
		a.RunCallbacks()
		b.RunCallbacks()
		if fail != nil {
			return p2p.P2PSessionState{}, fail
		}
		if p, ok := tryRead(b); ok {
			b.SendP2PPacket(p.Remote, p.Data, p2p.P2PSendReliable, 0)
		}
		if _, ok := tryRead(a); ok {
			echoed = true
		}
		sa, _ := a.GetP2PSessionState(bID)
		sb, _ := b.GetP2PSessionState(aID)
		if echoed && sa.ConnectionActive && sb.ConnectionActive {
			return sa, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	sa, _ := a.GetP2PSessionState(bID)
	t.Fatalf("no session within 30 s: a's state %+v", sa)
	return sa, nil
}

func tryRead(n *p2p.Networking) (p2p.Packet, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	p, err := n.Receive(ctx, 0)
	return p, err == nil
}

// TestNATMatrix opens a session between every pair of NAT behaviours
// and asserts the path it ends on.
func TestNATMatrix(t *testing.T) {
	cases := []struct {
		name   string
		a, b   *vnet.NATType
		direct bool
	}{
		{"public-public", nil, nil, true},
		{"fullcone-fullcone", fullCone, fullCone, true},
		{"fullcone-restricted", fullCone, restrictedCone, true},
		{"fullcone-portrestricted", fullCone, portRestricted, true},
		{"restricted-restricted", restrictedCone, restrictedCone, true},
		{"restricted-portrestricted", restrictedCone, portRestricted, true},
		{"portrestricted-portrestricted", portRestricted, portRestricted, true},
		{"symmetric-fullcone", symmetric, fullCone, true},
		{"fullcone-symmetric", fullCone, symmetric, true},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := newNATLab(t, false)
				a := l.peer(1, l.site(c.a, 1)[0])
				b := l.peer(2, l.site(c.b, 1)[0])
				st, fail := exchange(t, a, b, 1, 2)
				if fail != nil {
					t.Fatalf("connect failed: %+v", *fail)
				}
				if st.UsingRelay == c.direct {
					t.Fatalf("UsingRelay = %v, want direct = %v (%+v)", st.UsingRelay, c.direct, st)
				}
			})
		})
	}
	t.Run("same LAN behind one NAT", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, false)
			nets := l.site(portRestricted, 2)
			a, b := l.peer(1, nets[0]), l.peer(2, nets[1])
			st, fail := exchange(t, a, b, 1, 2)
			if fail != nil {
				t.Fatalf("connect failed: %+v", *fail)
			}
			if st.UsingRelay || st.RemoteIP>>8 != 198<<16|18<<8|(10+1) {
				t.Fatalf("want a direct LAN path, got %+v", st)
			}
		})
	})
}

// TestNATMatrixRelay covers what only a relay can carry, and what happens
// when it may not or cannot.
func TestNATMatrixRelay(t *testing.T) {
	t.Run("symmetric-symmetric relayed", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, true)
			a := l.peer(1, l.site(symmetric, 1)[0])
			b := l.peer(2, l.site(symmetric, 1)[0])
			st, fail := exchange(t, a, b, 1, 2)
			if fail != nil {
				t.Fatalf("connect failed: %+v", *fail)
			}
			// The relay's address: its server port when we send through our
			// allocation, the peer's allocation port when we send to that.
			if !st.UsingRelay || st.RemoteIP != 198<<24|18<<16|2 {
				t.Fatalf("want a relayed path shown as the relay's address, got %+v", st)
			}
		})
	})
	t.Run("symmetric-portrestricted relayed", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, true)
			a := l.peer(1, l.site(symmetric, 1)[0])
			b := l.peer(2, l.site(portRestricted, 1)[0])
			st, fail := exchange(t, a, b, 1, 2)
			if fail != nil || !st.UsingRelay {
				t.Fatalf("want relayed, got %+v, %v", st, fail)
			}
		})
	})
	t.Run("symmetric-symmetric relay disallowed", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, true)
			noRelay := func(c *p2p.Config) { c.ConnectTimeout = 2 * time.Second }
			a := l.peer(1, l.site(symmetric, 1)[0], noRelay)
			b := l.peer(2, l.site(symmetric, 1)[0], noRelay)
			a.AllowP2PPacketRelay(false)
			b.AllowP2PPacketRelay(false)
			_, fail := exchange(t, a, b, 1, 2)
			if fail == nil || fail.SessionError != p2p.P2PSessionErrorTimeout {
				t.Fatalf("want a Timeout failure, got %+v", fail)
			}
		})
	})
}

// lossyNet wraps a network so that every socket opened on it loses and
// duplicates datagrams in both directions, with a fixed seed.
type lossyNet struct {
	transport.Net
	loss, dup float64
	mu        sync.Mutex
	rng       *rand.Rand
}

func (l *lossyNet) roll(p float64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64() < p
}

func (l *lossyNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := l.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &lossyConn{PacketConn: pc, l: l}, nil
}

type lossyConn struct {
	net.PacketConn
	l *lossyNet
}

func (c *lossyConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.l.roll(c.l.loss) {
		return len(b), nil
	}
	if c.l.roll(c.l.dup) {
		c.PacketConn.WriteTo(b, a)
	}
	return c.PacketConn.WriteTo(b, a)
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.l.roll(c.l.loss) {
			return n, a, err
		}
	}
}

// TestNATMatrixFaults: broken relays and lossy networks.
func TestNATMatrixFaults(t *testing.T) {
	unreachable := func(c *p2p.Config) {
		c.Relays = []relayfallback.Server{{Addr: "198.18.0.99:3478", Username: "u", Password: "p"}}
	}
	t.Run("TURN unreachable: cone pair still direct", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, false)
			a := l.peer(1, l.site(portRestricted, 1)[0], unreachable)
			b := l.peer(2, l.site(fullCone, 1)[0], unreachable)
			st, fail := exchange(t, a, b, 1, 2)
			if fail != nil || st.UsingRelay {
				t.Fatalf("want direct, got %+v, %v", st, fail)
			}
		})
	})
	t.Run("TURN unreachable: symmetric pair times out", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, false)
			short := func(c *p2p.Config) { c.ConnectTimeout = 2 * time.Second }
			a := l.peer(1, l.site(symmetric, 1)[0], unreachable, short)
			b := l.peer(2, l.site(symmetric, 1)[0], unreachable, short)
			_, fail := exchange(t, a, b, 1, 2)
			if fail == nil || fail.SessionError != p2p.P2PSessionErrorTimeout {
				t.Fatalf("want Timeout, got %+v", fail)
			}
		})
	})
	t.Run("wrong TURN password: the rendezvous's relay still serves", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, true)
			wrong := func(c *p2p.Config) {
				c.Relays = []relayfallback.Server{{Addr: labServer + ":3478", Username: "9999999999:1", Password: "wrong"}}
			}
			a := l.peer(1, l.site(symmetric, 1)[0], wrong)
			b := l.peer(2, l.site(symmetric, 1)[0], wrong)
			st, fail := exchange(t, a, b, 1, 2)
			if fail != nil || !st.UsingRelay {
				t.Fatalf("want relayed, got %+v, %v", st, fail)
			}
		})
	})
	t.Run("rendezvous messages lost 30% and duplicated 50%", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, false)
			nets := []*vnet.Net{l.site(portRestricted, 1)[0], l.site(restrictedCone, 1)[0]}
			var peers []*p2p.Networking
			for i, nw := range nets {
				// The peers' sockets carry their rendezvous traffic: make
				// theirs the lossy ones, with a seed each.
				ln := &lossyNet{Net: nw, loss: 0.3, dup: 0.5, rng: rand.New(rand.NewSource(int64(i + 1)))}
				peers = append(peers, l.peer(p2p.SteamID(i+1), nw, func(c *p2p.Config) { c.Net = ln; c.ConnectTimeout = 20 * time.Second }))
			}
			st, fail := exchange(t, peers[0], peers[1], 1, 2)
			if fail != nil || st.UsingRelay {
				t.Fatalf("want direct, got %+v, %v", st, fail)
			}
		})
	})
	t.Run("10% packet loss", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newNATLab(t, false)
			var mu sync.Mutex
			rng := rand.New(rand.NewSource(7))
			l.WAN.AddChunkFilter(func(vnet.Chunk) bool {
				mu.Lock()
				defer mu.Unlock()
				return rng.Float64() >= 0.10
			})
			a := l.peer(1, l.site(fullCone, 1)[0], func(c *p2p.Config) { c.ConnectTimeout = 20 * time.Second })
			b := l.peer(2, l.site(portRestricted, 1)[0], func(c *p2p.Config) { c.ConnectTimeout = 20 * time.Second })
			st, fail := exchange(t, a, b, 1, 2)
			if fail != nil || st.UsingRelay {
				t.Fatalf("want direct, got %+v, %v", st, fail)
			}
			// And a 1 MiB message crosses the lossy path intact.
			big := make([]byte, p2p.MaxReliablePacketSize)
			for i := range big {
				big[i] = byte(i * 7)
			}
			// A maximal message needs an empty queue (C07): wait for the echo's acks.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if st, _ := a.GetP2PSessionState(2); st.BytesQueuedForSend == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("queue never drained")
				}
			}
			if err := a.Send(2, big, p2p.P2PSendReliable, 3); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p, err := b.Receive(ctx, 3)
			if err != nil || !bytes.Equal(p.Data, big) {
				t.Fatalf("1 MiB over 10%% loss: %v, %d bytes", err, len(p.Data))
			}
		})
	})
}

// The socket learns its public address with STUN on the rendezvous port:
// behind a NAT, the NAT's address, not the host's.
func TestMappedAddrThroughNAT(t *testing.T) {
	l := newNATLab(t, false)
	a := l.peer(1, l.site(portRestricted, 1)[0])
	got := a.MappedAddr(5 * time.Second)
	if got.Addr().String() != "198.18.0.10" || got.Port() == 0 {
		t.Fatalf("MappedAddr = %v, want the NAT's public address 198.18.0.10", got)
	}
}

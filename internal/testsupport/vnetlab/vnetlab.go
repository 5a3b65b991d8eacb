// Package vnetlab builds simulated internets for tests: a WAN router with
// the rendezvous server (and its TURN relay) on it, and sites of hosts
// that are public or sit behind NAT routers of a chosen behaviour, all on
// pion's vnet, addressed inside 198.18.0.0/15. Peers are made by the tests
// themselves, with a site's network as their Config.Net. It is test
// support, under internal/testsupport for that: only _test.go files import
// it, which is why it may import the public rendezvous package it starts.
package vnetlab

import (
	"fmt"
	"sync"
	"testing"

	"github.com/pion/logging"
	"github.com/pion/transport/v2/vnet"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// NAT behaviours in RFC 4787 terms: how a router maps and what it lets in.
var (
	FullCone       = &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointIndependent}
	RestrictedCone = &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrDependent}
	PortRestricted = &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
	Symmetric      = &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
)

// ServerIP is the rendezvous server's (and relay's) address; ServerAddr
// its host:port.
const (
	ServerIP   = "198.18.0.2"
	ServerAddr = ServerIP + ":3478"
)

// buildMu serialises building: vnet numbers its interfaces with an
// unguarded package counter. Labs may run in parallel once built.
var buildMu sync.Mutex

// Lock and Unlock bracket a test's own vnet building (see buildMu).
func Lock()   { buildMu.Lock() }
func Unlock() { buildMu.Unlock() }

// QuietLogs is a pion logger factory that logs nothing.
func QuietLogs() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	return lf
}

// Lab is one simulated internet.
type Lab struct {
	t      testing.TB
	WAN    *vnet.Router
	Server *rendezvous.Server
	sites  int
}

// New starts a lab whose rendezvous runs with cfg (ListenAddr and Net are
// filled in); relay makes it a TURN relay too.
func New(t testing.TB, relay bool, cfg rendezvous.ServerConfig) *Lab {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.18.0.0/24", LoggerFactory: QuietLogs()})
	if err != nil {
		t.Fatal(err)
	}
	srvNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ServerIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(srvNet); err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	cfg.ListenAddr, cfg.Net = ServerAddr, srvNet
	if relay {
		cfg.RelayIP = ServerIP
	}
	srv, err := rendezvous.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &Lab{t: t, WAN: wan, Server: srv}
}

// Site returns the networks of n hosts at a new site: on one LAN behind a
// NAT router of the given behaviour, or public (nat nil).
func (l *Lab) Site(nat *vnet.NATType, n int) []*vnet.Net {
	l.t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	l.sites++
	var nets []*vnet.Net
	if nat == nil {
		for i := 0; i < n; i++ {
			nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{fmt.Sprintf("198.18.0.%d", 10*l.sites+i)}})
			if err != nil {
				l.t.Fatal(err)
			}
			if err := l.WAN.AddNet(nw); err != nil {
				l.t.Fatal(err)
			}
			nets = append(nets, nw)
		}
		return nets
	}
	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR:          fmt.Sprintf("198.18.%d.0/24", 10+l.sites),
		StaticIPs:     []string{fmt.Sprintf("198.18.0.%d", 10*l.sites)},
		NATType:       nat,
		LoggerFactory: QuietLogs(),
	})
	if err != nil {
		l.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		nw, err := vnet.NewNet(&vnet.NetConfig{})
		if err != nil {
			l.t.Fatal(err)
		}
		if err := lan.AddNet(nw); err != nil {
			l.t.Fatal(err)
		}
		nets = append(nets, nw)
	}
	if err := l.WAN.AddRouter(lan); err != nil {
		l.t.Fatal(err)
	}
	if err := lan.Start(); err != nil {
		l.t.Fatal(err)
	}
	// No Stop of its own: the WAN's Stop stops its children, and gives up
	// (leaving its own goroutine running) at a child already stopped.
	return nets
}

// SiteLAN is the private /24 of the n-th site made (1-based), for tests
// that check which address a session took.
func SiteLAN(n int) string { return fmt.Sprintf("198.18.%d.0/24", 10+n) }

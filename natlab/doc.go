// Package natlab is the real-kernel NAT lab: a test that builds an internet
// in network namespaces (a core router with per-link delays, a public side
// with the rendezvous server and coturn, two home routers doing iptables NAT
// and a host behind each) and checks which path p2pcompat sessions take
// across it. Everything in it is test code and lab programs (labpeer,
// labprobe); nothing here is part of the library. See NATLAB.md.
//
// It needs root and iproute2, iptables, conntrack and coturn; without them it
// skips, saying what is missing (under CI=true or NATLAB_REQUIRE=1 a missing
// tool fails instead). All of its traffic stays inside the namespaces it
// makes, addressed inside 198.18.0.0/15.
package natlab

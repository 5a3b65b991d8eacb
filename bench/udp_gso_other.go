//go:build !linux

package main

import (
	"net"
	"net/netip"
	"time"
)

func gsoSupported(*net.UDPConn) bool { return false }

func gsoSegments(size int) int { return batch }

func sendGSO(*net.UDPConn, netip.AddrPort, int, int, time.Time) error { return errGSOUnsupported }

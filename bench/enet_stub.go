//go:build !cgo || noenet

package main

import (
	"errors"
	"time"
)

// Without cgo, or with -tags noenet, the bench has no ENet peer (enet.go):
// its cells read "n/a".

const enetAvailable = false

var errNoENet = errors.New("ENet left out of this build (no cgo, or -tags noenet)")

func enetVersion() string { return "" }

func enetSetupNote() string {
	return "ENet is not in this build (no cgo, or -tags noenet): its cells read n/a"
}

func enetThroughput(size, count int, reliable bool, limit time.Duration) (tput, error) {
	return tput{}, errNoENet
}

func enetRTT(size, warmup, count int, reliable, spin bool, limit time.Duration) ([]time.Duration, error) {
	return nil, errNoENet
}

//go:build !linux

package main

import "errors"

func runDelay([]string) error { return errors.New("delay: NFQUEUE needs Linux") }

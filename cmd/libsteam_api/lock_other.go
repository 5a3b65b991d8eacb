//go:build !unix

package main

import "os"

// lockIdentity opens the identity file; without flock, two copies of a game
// share the key (see lock_unix.go).
func lockIdentity(path string) (*os.File, error) { return os.Open(path) }

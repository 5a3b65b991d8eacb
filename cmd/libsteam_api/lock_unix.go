//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// lockIdentity takes an exclusive lock on the identity file at path, held
// while the returned file stays open; nil, with no error, if another
// process (another copy of the game, with the same SteamID) holds it.
func lockIdentity(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

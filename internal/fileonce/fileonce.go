// Package fileonce keeps a value in a file made once: the first of several
// processes to start writes it, and every one, that one included, reads
// the same back.
package fileonce

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Keep returns the content of the file at path, after making it, with
// make's content, if there is none: made mode 0600 in its directory (made
// 0700 if missing), written in full under another name and linked into
// place, which fails if the file appeared meanwhile, so that of two
// processes starting at once the first to link wins and both read the
// winner's. make is called only when the file is missing.
func Keep(path string, make func() ([]byte, error)) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	content, err := make()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*") // 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(content)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		if werr = os.Link(tmp.Name(), path); errors.Is(werr, os.ErrExist) {
			werr = nil
		}
	}
	if werr != nil {
		return nil, werr
	}
	return os.ReadFile(path)
}

// KeepKey is Keep for an X25519 private key in hex, made with crypto/rand
// if the file is missing; what is not such a key is an error naming path.
func KeepKey(path string) ([32]byte, error) {
	var key [32]byte
	b, err := Keep(path, func() ([]byte, error) {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, "%x\n", k.Bytes()), nil
	})
	if err != nil {
		return key, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != len(key) {
		return key, fmt.Errorf("%s does not hold an X25519 key (64 hex digits): delete it for a new one", path)
	}
	if _, err := ecdh.X25519().NewPrivateKey(k); err != nil {
		return key, fmt.Errorf("%s: %w", path, err)
	}
	copy(key[:], k)
	return key, nil
}

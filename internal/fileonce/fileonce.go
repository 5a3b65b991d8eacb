// Package fileonce keeps a value in a file made once: the first of several
// processes to start writes it, and every one, that one included, reads
// the same back.
package fileonce

import (
	"errors"
	"os"
	"path/filepath"
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

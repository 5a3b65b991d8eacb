package fileonce

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Of many processes (here goroutines) keeping a value at once, one wins,
// every one reads its value, the file is 0600, and a later call reads it
// without making anything.
func TestKeepOneWinner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "value")
	var wg sync.WaitGroup
	got := make([]string, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := Keep(path, func() ([]byte, error) { return []byte(fmt.Sprint(i)), nil })
			if err != nil {
				t.Error(err)
			}
			got[i] = string(b)
		}()
	}
	wg.Wait()
	for i, g := range got {
		if g != got[0] {
			t.Fatalf("call %d read %q, call 0 %q", i, g, got[0])
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file %v, mode %v", err, st.Mode())
	}
	b, err := Keep(path, func() ([]byte, error) { t.Fatal("made again"); return nil, nil })
	if err != nil || string(b) != got[0] {
		t.Fatalf("later: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("%d files left in the directory", len(entries))
	}
}

//go:build !cgo

package main

import (
	"fmt"
	"os"
)

// Without cgo there is no C ABI to export; say how to build it instead of
// failing to compile.
func main() {
	fmt.Fprintln(os.Stderr, "libsteam_api is a C shared library: build it with cgo (a C compiler, CGO_ENABLED=1):")
	fmt.Fprintln(os.Stderr, "  go build -buildmode=c-shared -o libsteam_api.so ./cmd/libsteam_api")
	os.Exit(2)
}

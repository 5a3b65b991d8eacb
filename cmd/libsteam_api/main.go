// Command libsteam_api is the drop-in libsteam_api.so: the Steam C and
// C++ ABI of the deprecated session-less P2P API (ISteamNetworking through
// its vtables, the flat API and the SDK <= 1.36 accessors), callbacks by
// classic and manual dispatch, and the rest of a game's startup, over the
// p2p package. A game that links libsteam_api.so runs unchanged over the
// internet, with a rendezvous server in place of Steam.
//
// Build it as a C shared library:
//
//	go build -buildmode=c-shared -o libsteam_api.so ./cmd/libsteam_api
//
// The vtables, the callback registry and the calls into game code are C
// (dispatch.c, interfaces.c, lifetime.c); this package's Go files are the
// bridge to p2p (bridge.go) and the player's settings (settings.go). The
// game's memory is never kept by Go, and Go memory is never handed to the
// game: payloads the game reads live in C memory.
package main

/*
#cgo CFLAGS: -O2 -Wall -Wno-unused-function
// exports.map.so is a linker script (VERSION), not a library: ld reads any
// input it cannot recognise as an object as a script, and cgo's flag
// allow-list accepts a path ending in .so where it refuses
// -Wl,--version-script. It keeps the dynamic symbols to the Steam names.
#cgo LDFLAGS: ${SRCDIR}/exports.map.so -ldl
*/
import "C"

// main is never called: the package is built as a shared library.
func main() {}

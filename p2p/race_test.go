//go:build race

package p2p_test

// raceEnabled: the test binary runs under the race detector, which makes
// everything several times slower and the flood tests, whose 2,000
// strangers share the process with the player, slower still.
const raceEnabled = true

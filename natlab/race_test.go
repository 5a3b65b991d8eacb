//go:build race

package natlab

// raceEnabled: the lab programs are built with -race when the test is.
const raceEnabled = true

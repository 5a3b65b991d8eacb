package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// An unregister from another thread waits for the object's running
// handler, so the object may be freed as soon as it returns.
func TestUnregisterWaitsForRunningHandler(t *testing.T) {
	t.Parallel()
	needTool(t, "g++")
	prog := program(t, "unregister", "testdata/unregister.cpp")
	cmd := exec.Command(prog)
	cmd.Env = gameEnv(t, startRendezvous(t, rendezvous.ServerConfig{}), individualBase+900, 480)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "state after unregister returned: 2") {
		t.Fatalf("%v\n%s", err, out)
	}
}

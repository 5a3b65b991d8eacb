// Command labprobe is the NAT lab's multi-tool. The lab test runs it inside
// its network namespaces to check the topology before any p2pcompat peer
// runs:
//
//	labprobe echo  -listen A,B,...        UDP echo that reports the source it saw
//	labprobe map   -to A,B,... [-cross N] one socket, one ping per target: the
//	                                      public mapping each target observed
//	labprobe turn  -server A -secret S -realm R -peer E
//	                                      a TURN allocation (coturn's shared-secret
//	                                      credentials) and one echo through it
//	labprobe delay -q NUM:DUR ...         hold NFQUEUE packets for DUR: the
//	                                      lab's link delay where tc netem is missing
//
// Every mode but echo and delay prints one JSON line on stdout and exits.
// It is a lab program, not part of the library.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "echo":
		err = runEcho(args)
	case "map":
		err = runMap(args)
	case "turn":
		err = runTURN(args)
	case "delay":
		err = runDelay(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labprobe:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: labprobe echo|map|turn|delay [flags]")
	os.Exit(2)
}

package main

import (
	"os"
	"strconv"
	"strings"
)

// udpCounters are the kernel's UDP counters of /proc/net/snmp. They count
// for the whole network namespace, so another program's traffic can blur
// them; they tell how many datagrams a stack used per message and whether
// the kernel dropped any for a full receive buffer.
type udpCounters struct {
	ok                  bool
	in, out, rcvbufErrs uint64
}

func readUDPCounters() udpCounters {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return udpCounters{}
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		c := udpCounters{ok: true}
		for i, v := range f[1:] {
			if i >= len(names) {
				break
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch names[i] {
			case "InDatagrams":
				c.in = n
			case "OutDatagrams":
				c.out = n
			case "RcvbufErrors":
				c.rcvbufErrs = n
			}
		}
		return c
	}
	return udpCounters{}
}

// sub is c minus an earlier snapshot.
func (c udpCounters) sub(earlier udpCounters) udpCounters {
	if !c.ok || !earlier.ok {
		return udpCounters{}
	}
	return udpCounters{ok: true, in: c.in - earlier.in, out: c.out - earlier.out, rcvbufErrs: c.rcvbufErrs - earlier.rcvbufErrs}
}

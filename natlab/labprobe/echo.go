package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The echo protocol, one datagram each way, text:
//
//	"ping TOKEN"        -> "pong TOKEN SEEN" from the socket that received it
//	"cross N TOKEN"     -> "pong TOKEN SEEN" from listening socket N instead,
//	                       a packet the client's NAT has never seen a flow for
//
// SEEN is the source address as the echo saw it: the client's public mapping.

func runEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	listen := fs.String("listen", "", "comma-separated UDP `addresses` to serve on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var conns []*net.UDPConn
	for _, a := range strings.Split(*listen, ",") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("-listen: %w", err)
		}
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	if len(conns) == 0 {
		return errors.New("-listen: no addresses")
	}
	for _, c := range conns {
		go serveEcho(c, conns)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

func serveEcho(c *net.UDPConn, all []*net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		f := strings.Fields(string(buf[:n]))
		out := c
		var token string
		switch {
		case len(f) == 2 && f[0] == "ping":
			token = f[1]
		case len(f) == 3 && f[0] == "cross":
			i, err := strconv.Atoi(f[1])
			if err != nil || i < 0 || i >= len(all) {
				continue
			}
			out, token = all[i], f[2]
		default:
			continue
		}
		out.WriteToUDPAddrPort([]byte("pong "+token+" "+from.String()), from)
	}
}

type mapTarget struct {
	To    string  `json:"to"`
	Seen  string  `json:"seen,omitempty"`
	RTTms float64 `json:"rtt_ms,omitempty"` // the smallest of -count pings
	Error string  `json:"error,omitempty"`
}

type mapResult struct {
	Local   string      `json:"local"`
	Targets []mapTarget `json:"targets"`
	// Cross: after the pings, targets[0] was asked to answer from listening
	// socket -cross; CrossAnswered says whether that answer got through.
	Cross         int  `json:"cross"`
	CrossAnswered bool `json:"cross_answered"`
	// CrossThen: after the unsolicited packet, a ping from the same socket
	// to the address it came from (-cross-ping), and the mapping that
	// address saw.
	CrossThen *mapTarget `json:"cross_then,omitempty"`
}

func runMap(args []string) error {
	fs := flag.NewFlagSet("map", flag.ContinueOnError)
	to := fs.String("to", "", "comma-separated echo `addresses`, pinged in order from one socket")
	count := fs.Int("count", 3, "pings per target")
	cross := fs.Int("cross", -1, "ask the first target to answer from its listening socket `N` (-1: no)")
	crossPing := fs.String("cross-ping", "", "after -cross, ping this `address` (the socket that sent the unsolicited packet)")
	wait := fs.Duration("wait", 2*time.Second, "how long to wait for each answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return err
	}
	defer c.Close()
	res := mapResult{Local: c.LocalAddr().String(), Cross: *cross}
	seq := 0
	var first netip.AddrPort
	for i, a := range strings.Split(*to, ",") {
		tgt := mapTarget{To: strings.TrimSpace(a)}
		ap, err := netip.ParseAddrPort(tgt.To)
		if err != nil {
			return fmt.Errorf("-to: %w", err)
		}
		if i == 0 {
			first = ap
		}
		for k := 0; k < *count; k++ {
			seq++
			token := strconv.Itoa(seq)
			start := time.Now()
			if _, err := c.WriteToUDPAddrPort([]byte("ping "+token), ap); err != nil {
				tgt.Error = err.Error()
				break
			}
			seen, err := awaitPong(c, token, *wait)
			if err != nil {
				tgt.Error = err.Error()
				continue
			}
			rtt := float64(time.Since(start).Microseconds()) / 1000
			if tgt.RTTms == 0 || rtt < tgt.RTTms {
				tgt.RTTms = rtt
			}
			tgt.Seen, tgt.Error = seen, ""
		}
		res.Targets = append(res.Targets, tgt)
	}
	if *cross >= 0 && first.IsValid() {
		seq++
		token := strconv.Itoa(seq)
		if _, err := c.WriteToUDPAddrPort([]byte(fmt.Sprintf("cross %d %s", *cross, token)), first); err == nil {
			if _, err := awaitPong(c, token, *wait); err == nil {
				res.CrossAnswered = true
			}
		}
	}
	if *crossPing != "" {
		tgt := &mapTarget{To: *crossPing}
		ap, err := netip.ParseAddrPort(*crossPing)
		if err != nil {
			return fmt.Errorf("-cross-ping: %w", err)
		}
		seq++
		token := strconv.Itoa(seq)
		start := time.Now()
		if _, err := c.WriteToUDPAddrPort([]byte("ping "+token), ap); err != nil {
			tgt.Error = err.Error()
		} else if seen, err := awaitPong(c, token, *wait); err != nil {
			tgt.Error = err.Error()
		} else {
			tgt.Seen, tgt.RTTms = seen, float64(time.Since(start).Microseconds())/1000
		}
		res.CrossThen = tgt
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// awaitPong reads until the pong for token arrives or wait runs out, and
// returns the address the echo saw.
func awaitPong(c *net.UDPConn, token string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return "", err
		}
		f := strings.Fields(string(buf[:n]))
		if len(f) == 3 && f[0] == "pong" && f[1] == token {
			return f[2], nil
		}
	}
}

package main

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pion/turn/v2"
)

type turnResult struct {
	OK       bool    `json:"ok"`
	Error    string  `json:"error,omitempty"`
	Mapped   string  `json:"mapped,omitempty"`    // our address as the TURN server saw it
	Relay    string  `json:"relay,omitempty"`     // the allocated relay address
	EchoSeen string  `json:"echo_seen,omitempty"` // our address as the echo saw it: the relay's
	EchoFrom string  `json:"echo_from,omitempty"` // where the relayed answer came from
	RTTms    float64 `json:"rtt_ms,omitempty"`
}

// runTURN allocates on a TURN server with coturn's shared-secret (REST)
// credentials, sends a ping through the relay to an echo and waits for the
// answer to come back the same way.
func runTURN(args []string) error {
	fs := flag.NewFlagSet("turn", flag.ContinueOnError)
	server := fs.String("server", "", "TURN server `address` (UDP)")
	secret := fs.String("secret", "", "coturn static-auth-secret")
	realm := fs.String("realm", "p2pcompat", "TURN realm")
	peer := fs.String("peer", "", "echo `address` to reach through the relay")
	timeout := fs.Duration("timeout", 10*time.Second, "overall time limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res := turnResult{}
	err := allocateAndEcho(&res, *server, *secret, *realm, *peer, *timeout)
	if err != nil {
		res.Error = err.Error()
	}
	res.OK = err == nil
	return json.NewEncoder(os.Stdout).Encode(res)
}

func allocateAndEcho(res *turnResult, server, secret, realm, peer string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	peerAddr, err := net.ResolveUDPAddr("udp4", peer)
	if err != nil {
		return fmt.Errorf("-peer: %w", err)
	}
	conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	// coturn's --use-auth-secret scheme: username "expiry:name", password
	// base64(HMAC-SHA1(secret, username)).
	user := fmt.Sprintf("%d:labprobe", time.Now().Add(time.Hour).Unix())
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(user))
	pass := base64.StdEncoding.EncodeToString(mac.Sum(nil))

	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Conn:           conn,
		Username:       user,
		Password:       pass,
		Realm:          realm,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return err
	}
	mapped, err := c.SendBindingRequest()
	if err != nil {
		return fmt.Errorf("binding request: %w", err)
	}
	res.Mapped = mapped.String()
	relay, err := c.Allocate()
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	defer relay.Close()
	res.Relay = relay.LocalAddr().String()

	start := time.Now()
	// The first write creates the permission; the echo may be lost while
	// it is being installed, so ping a few times.
	buf := make([]byte, 2048)
	for attempt := 1; time.Now().Before(deadline); attempt++ {
		token := fmt.Sprintf("t%d", attempt)
		if _, err := relay.WriteTo([]byte("ping "+token), peerAddr); err != nil {
			return fmt.Errorf("send through relay: %w", err)
		}
		relay.SetReadDeadline(minTime(deadline, time.Now().Add(time.Second)))
		for {
			n, from, err := relay.ReadFrom(buf)
			if err != nil {
				break
			}
			f := strings.Fields(string(buf[:n]))
			if len(f) == 3 && f[0] == "pong" && f[1] == token {
				res.EchoSeen, res.EchoFrom = f[2], from.String()
				res.RTTms = float64(time.Since(start).Microseconds()) / 1000
				return nil
			}
		}
		start = time.Now()
	}
	return fmt.Errorf("no echo from %s through the relay within %v", peer, timeout)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

package p2p

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The text forms of SessionInfo: pure functions of their input, so that
// golden files pin them down.

// writeTable writes ss as DumpSessions does: a header and one aligned
// line per session, or "no sessions".
func writeTable(w io.Writer, ss []SessionInfo) error {
	if len(ss) == 0 {
		_, err := io.WriteString(w, "no sessions\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEAMID\tSTATE\tPATH\tREMOTE\tRTT\tLOSS\tQUEUED\tIN/S\tOUT/S\tCHANNELS\tAGE\tIDLE\tERROR")
	for _, s := range ss {
		in, out := "-", "-"
		if s.RateWindow > 0 {
			in, out = fmtBytes(s.InRate), fmtBytes(s.OutRate)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			uint64(s.Remote), s.State, orDash(s.Path), fmtAddr(s.RemoteAddr), fmtRTT(s.RTT),
			fmtLoss(s), fmtBytes(float64(s.QueuedBytes)), in, out, fmtChannels(s.Channels),
			fmtAge(s.Age), fmtAge(s.Idle), fmtError(s, "-"))
	}
	return tw.Flush()
}

// writeDetail writes one session as DetailedStatus does: every field of
// s, labelled, one per line; the candidates and pairs one per line each.
func writeDetail(w io.Writer, s SessionInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(tw, label+":\t"+format+"\n", args...)
	}
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	bytes := func(n uint64) string {
		if n < 1024 {
			return fmt.Sprintf("%d B", n)
		}
		return fmt.Sprintf("%d B (%s)", n, fmtBytes(float64(n)))
	}
	rate := func(r float64) string {
		if s.RateWindow <= 0 {
			return "-"
		}
		return fmtBytes(r) + "/s"
	}
	line("Session", "%d", uint64(s.Remote))
	line("State", "%s", s.State)
	line("Path", "%s", orDash(s.Path))
	line("Local address", "%s", fmtAddr(s.LocalAddr))
	line("Remote address", "%s", fmtAddr(s.RemoteAddr))
	line("Relay server", "%s", fmtAddr(s.RelayServer))
	line("Accepted by us", "%s", yesNo(s.Accepted))
	line("Accepted by peer", "%s", yesNo(s.RemoteAccepted))
	line("Age", "%s", fmtAge(s.Age))
	line("Idle", "%s", fmtAge(s.Idle))
	line("RTT (smoothed)", "%s", fmtRTT(s.RTT))
	line("RTT variation", "%s", fmtRTT(s.RTTVar))
	line("Min RTT", "%s", fmtRTT(s.MinRTT))
	line("Loss", "%s", fmtLoss(s))
	line("Packets sent", "%d", s.PacketsSent)
	line("Packets lost", "%d", s.PacketsLost)
	line("Packets received", "%d", s.PacketsRecv)
	line("Bytes sent", "%s", bytes(s.BytesSent))
	line("Bytes received", "%s", bytes(s.BytesRecv))
	line("Queued bytes", "%s", bytes(uint64(max(0, s.QueuedBytes))))
	line("Queued packets", "%d", s.QueuedPackets)
	line("Congestion window", "%s", bytes(uint64(max(0, s.Cwnd))))
	line("Bytes in flight", "%s", bytes(uint64(max(0, s.BytesInFlight))))
	line("In rate", "%s", rate(s.InRate))
	line("Out rate", "%s", rate(s.OutRate))
	if s.RateWindow > 0 {
		line("Rate window", "%s", fmtAge(s.RateWindow))
	} else {
		line("Rate window", "-")
	}
	line("Channels", "%s", fmtChannels(s.Channels))
	line("Last error", "%s", fmtError(s, "none"))
	if len(s.Candidates) == 0 {
		line("Candidates", "-")
	}
	for i, c := range s.Candidates {
		label := "Candidates"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(tw, "%s\t%s %s\n", colon(label), c.Kind, fmtAddr(c.Addr))
	}
	if len(s.Pairs) == 0 {
		line("Pairs", "-")
	}
	for i, p := range s.Pairs {
		label := "Pairs"
		if i > 0 {
			label = ""
		}
		active := ""
		if p.Active {
			active = ", the path"
		}
		fmt.Fprintf(tw, "%s\t%s -> %s %s, heard %s ago%s\n", colon(label), p.Via, p.Kind, fmtAddr(p.Addr), fmtAge(p.Heard), active)
	}
	return tw.Flush()
}

func colon(label string) string {
	if label == "" {
		return ""
	}
	return label + ":"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtAddr(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// fmtRTT writes a round trip to three significant digits or so: µs below
// a millisecond, ms below a second; "-" for 0, which means no sample.
func fmtRTT(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Round(time.Microsecond)/time.Microsecond)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtAge rounds a duration to what a person reads: milliseconds below a
// second, tenths below a minute, seconds above.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Second:
		d = d.Round(time.Millisecond)
	case d < time.Minute:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Second)
	}
	return d.String()
}

// fmtBytes writes a byte count (or rate) in B, KiB, MiB or GiB.
func fmtBytes(n float64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%.0f B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", n/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", n/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", n/(k*k*k))
}

// fmtLoss writes the loss as a percentage, "-" before anything was sent.
func fmtLoss(s SessionInfo) string {
	switch {
	case s.PacketsSent == 0:
		return "-"
	case s.Loss == 0:
		return "0%"
	case s.Loss < 0.01:
		return fmt.Sprintf("%.2f%%", 100*s.Loss)
	}
	return fmt.Sprintf("%.1f%%", 100*s.Loss)
}

func fmtChannels(chs []int) string {
	if len(chs) == 0 {
		return "-"
	}
	parts := make([]string, len(chs))
	for i, c := range chs {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

func fmtError(s SessionInfo, none string) string {
	if s.LastError == P2PSessionErrorNone {
		return none
	}
	name := s.LastErrorName
	if name == "" {
		name = s.LastError.String()
	}
	return fmt.Sprintf("%s (%d)", name, uint8(s.LastError))
}

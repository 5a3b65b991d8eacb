package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

// The admin listener: an HTTP server for the operator's health checks and
// metrics scrapes, apart from the players' UDP port.

// metricsContentType is the content type of the Prometheus text
// exposition format, version 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// adminHandler serves /healthz, which answers 200 while serving is set
// and 503 once it is not, and /metrics, the server's counters from stats
// in the Prometheus text format. start is when the server started.
func adminHandler(serving *atomic.Bool, stats func() rendezvous.ServerStats, start time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "stopping\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		writeMetrics(&b, stats(), start)
		w.Header().Set("Content-Type", metricsContentType)
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b.Bytes())
	})
	return mux
}

// metrics writes families of the Prometheus text exposition format.
type metrics struct{ b *bytes.Buffer }

// family starts a metric family: its HELP and TYPE lines.
func (m metrics) family(name, typ, help string) {
	fmt.Fprintf(m.b, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// sample writes one sample of name; labels are name and value pairs.
func (m metrics) sample(name string, value string, labels ...string) {
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b.WriteByte(',')
			}
			fmt.Fprintf(m.b, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		m.b.WriteByte('}')
	}
	m.b.WriteByte(' ')
	m.b.WriteString(value)
	m.b.WriteByte('\n')
}

// counter writes a family of one counter sample.
func (m metrics) counter(name, help string, v uint64) {
	m.family(name, "counter", help)
	m.sample(name, strconv.FormatUint(v, 10))
}

// gauge writes a family of one gauge sample.
func (m metrics) gauge(name, help string, v int64) {
	m.family(name, "gauge", help)
	m.sample(name, strconv.FormatInt(v, 10))
}

// labelled writes a counter family with one sample per label value, in
// the order given.
func (m metrics) labelled(name, help, label string, values []string, counts []uint64) {
	m.family(name, "counter", help)
	for i, v := range values {
		m.sample(name, strconv.FormatUint(counts[i], 10), label, v)
	}
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// refuseLabel is the reason label of a refusal.
func refuseLabel(r rendezvous.RefuseReason) string {
	switch r {
	case rendezvous.RefuseInvalid:
		return "invalid"
	case rendezvous.RefuseNoRightsToApp:
		return "app_not_allowed"
	case rendezvous.RefuseServerFull:
		return "server_full"
	case rendezvous.RefuseTokenMissing:
		return "token_missing"
	case rendezvous.RefuseTokenInvalid:
		return "token_invalid"
	case rendezvous.RefuseTokenExpired:
		return "token_expired"
	case rendezvous.RefuseTokenWrongID:
		return "token_wrong_steamid"
	case rendezvous.RefuseTokenWrongApp:
		return "token_wrong_appid"
	case rendezvous.RefuseIDInUse:
		return "steamid_in_use"
	}
	return "reason_" + strconv.Itoa(int(r))
}

// writeMetrics writes st, and the start time, in the Prometheus text
// exposition format (version 0.0.4): every family with its HELP and TYPE,
// counters named *_total.
func writeMetrics(b *bytes.Buffer, st rendezvous.ServerStats, start time.Time) {
	m := metrics{b}

	m.family("p2pcompat_start_time_seconds", "gauge", "When the server started, in seconds since the Unix epoch.")
	m.sample("p2pcompat_start_time_seconds", strconv.FormatFloat(float64(start.UnixMicro())/1e6, 'f', -1, 64))

	m.counter("p2pcompat_udp_received_datagrams_total", "Datagrams read from the UDP socket, of every kind.", st.DatagramsIn)
	m.counter("p2pcompat_udp_received_bytes_total", "Bytes of the datagrams read from the UDP socket.", st.BytesIn)
	m.counter("p2pcompat_udp_sent_datagrams_total", "Datagrams written to the UDP socket: answers, offers, STUN answers and relay traffic to clients.", st.DatagramsOut)
	m.counter("p2pcompat_udp_sent_bytes_total", "Bytes of the datagrams written to the UDP socket.", st.BytesOut)
	m.counter("p2pcompat_udp_read_errors_total", "Failed reads on the UDP socket.", st.ReadErrors)
	m.counter("p2pcompat_udp_write_errors_total", "Failed writes on the UDP socket.", st.WriteErrors)

	m.labelled("p2pcompat_dropped_datagrams_total",
		"Datagrams dropped, by reason: rate_limited (source over its rate limit), malformed (did not decode), "+
			"unrecognized (no protocol the server speaks), bad_mac (MAC did not verify), "+
			"unauthorized (sender not registered there, or MAC missing, or a replay), relay_queue_full (embedded relay behind).",
		"reason",
		[]string{"rate_limited", "malformed", "unrecognized", "bad_mac", "unauthorized", "relay_queue_full"},
		[]uint64{st.RateLimited, st.Malformed, st.Unrecognized, st.BadMAC, st.Unauthorized, st.RelayQueueFull})

	m.counter("p2pcompat_registrations_total", "Registrations accepted: new ones, refreshes and moves.", st.Registrations)
	m.counter("p2pcompat_registration_challenges_total", "Registrations answered with a cookie challenge: without a valid cookie where one is needed, or with a bad MAC.", st.Challenges)
	reasons := slices.Sorted(maps.Keys(st.Refused))
	labels := make([]string, len(reasons))
	counts := make([]uint64, len(reasons))
	for i, r := range reasons {
		labels[i], counts[i] = refuseLabel(r), st.Refused[r]
	}
	m.labelled("p2pcompat_registrations_refused_total", "Registrations refused, by the reason given.", "reason", labels, counts)
	m.counter("p2pcompat_unregistrations_total", "Registrations that their users ended.", st.Unregistrations)
	m.counter("p2pcompat_registrations_expired_total", "Registrations that lapsed without a refresh.", st.Expirations)

	m.labelled("p2pcompat_lookups_total",
		"Lookups, by answer: found, not_online, other_app (online in another game), "+
			"hidden (offline or in another game, left unanswered under -hide-presence).",
		"result",
		[]string{"found", "not_online", "other_app", "hidden"},
		[]uint64{st.LookupsFound, st.LookupsNotOnline, st.LookupsOtherApp, st.LookupsHidden})
	m.counter("p2pcompat_offers_total", "Offers forwarded to the targets of lookups.", st.Offers)
	m.counter("p2pcompat_deliveries_total", "Receipts for offers passed on to the requesters.", st.Deliveries)
	m.counter("p2pcompat_stun_bindings_total", "STUN Binding requests answered.", st.STUNBindings)

	m.gauge("p2pcompat_online_users", "Users registered now.", st.Online)
	if st.OnlineByApp != nil {
		name := "p2pcompat_app_online_users"
		m.family(name, "gauge", "Users registered now, by AppID (with -apps only).")
		for _, app := range slices.Sorted(maps.Keys(st.OnlineByApp)) {
			m.sample(name, strconv.FormatInt(st.OnlineByApp[app], 10), "app", strconv.FormatUint(uint64(app), 10))
		}
	}

	m.counter("p2pcompat_relay_allocations_total", "Allocations made on the embedded TURN relay.", st.RelayAllocations)
	m.counter("p2pcompat_relay_allocations_refused_total", "Allocations refused by the embedded TURN relay because its cap was reached.", st.RelayAllocationsRefused)
	m.gauge("p2pcompat_relay_allocations", "Allocations open on the embedded TURN relay now.", st.RelayAllocationsOpen)
	directions := []string{"to_peers", "from_peers"}
	m.labelled("p2pcompat_relay_datagrams_total",
		"Datagrams the embedded relay's allocations sent to peers, and received from them (those no permission lets through included).",
		"direction", directions, []uint64{st.RelayDatagramsToPeers, st.RelayDatagramsFromPeers})
	m.labelled("p2pcompat_relay_bytes_total",
		"Payload bytes the embedded relay's allocations sent to peers, and received from them.",
		"direction", directions, []uint64{st.RelayBytesToPeers, st.RelayBytesFromPeers})
}

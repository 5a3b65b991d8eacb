//go:build cgo && !noenet

package main

// ENet (libenet, the reliable UDP library many games ship) as a comparison
// peer, through cgo. It needs libenet-dev (Debian: apt-get install
// libenet-dev; 1.3.17 here) and a C compiler; `go build -tags noenet`, or a
// build without cgo, leaves it out (enet_stub.go), and its cells then read
// "n/a".
//
// What was chosen, and why:
//
//   - Each run is one C call per side: the sender's loop (queue, service,
//     wait) and the receiver's loop (service, count, destroy) are C
//     functions below, as is the whole round-trip loop with its clock, so
//     that no cgo call sits on a hot path and what is measured is ENet's
//     cost, not cgo's. The two sides run on two goroutines, each inside
//     one C call on a host of its own (an ENet host is not thread-safe;
//     two hosts are independent).
//   - Set up for speed as ENet's documentation suggests: no bandwidth
//     limits (0, 0 to enet_host_create, which also gives the largest
//     reliable window, 64 KiB in transit), the packet throttle pinned at
//     its maximum (enet_peer_throttle_configure with no deceleration: no
//     congestion control, as kcp-go's turbo mode), 4 MiB socket buffers as
//     every other stack here (ENet's own default is 256 KiB), two channels.
//   - Waiting: enet_host_service with a timeout of 1 ms, which returns as
//     soon as a datagram arrives (ENet polls its socket), then
//     enet_host_check_events to drain what that datagram completed without
//     more system calls. Neither side spins in the figures that the goals
//     compare, since every other stack blocks too; workload 3 also reports,
//     for reference, round trips with both sides calling enet_host_service
//     with a timeout of 0 in a tight loop, which keeps both cores busy.
//   - The sender respects backpressure the way a game must with ENet,
//     which queues whatever it is given: it keeps at most enetSendCap bytes
//     handed to enet_peer_send and not yet acknowledged (a packet's free
//     callback runs when its last fragment is acknowledged), and services
//     the host after every enetBatch packets.
//   - Reliable workloads use ENET_PACKET_FLAG_RELIABLE, unreliable ones
//     ENET_PACKET_FLAG_UNSEQUENCED; the packet data is copied by
//     enet_packet_create, which is how ENet is normally used.

/*
#cgo LDFLAGS: -lenet
#include <enet/enet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t benet_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// benet is one connected pair of hosts on 127.0.0.1. The sender's fields
// and the receiver's are written by one thread each, on cache lines of
// their own; start_ns, last_ns and send_done are read across threads with
// atomics.
typedef struct {
	ENetHost *cli, *srv;
	ENetPeer *cli_peer, *srv_peer;
	char pad0[64];
	int64_t queued, freed, start_ns; // sender
	char pad1[64];
	int64_t rbytes, rmsgs, last_ns; // receiver
	char pad2[64];
	int send_done, stop;
} benet;

static void benet_freed(ENetPacket *p) {
	benet *b = (benet *)p->userData;
	if (b != NULL) b->freed += (int64_t)p->dataLength;
}

static void benet_buffers(ENetHost *h, int size) {
	enet_socket_set_option(h->socket, ENET_SOCKOPT_RCVBUF, size);
	enet_socket_set_option(h->socket, ENET_SOCKOPT_SNDBUF, size);
}

// benet_open connects a client host to a server host, both on 127.0.0.1
// with an ephemeral port, within 5 s. It answers 0 or a negative step.
static int benet_open(benet *b, int channels, int sockbuf) {
	ENetAddress a;
	ENetEvent ev;
	memset(&a, 0, sizeof a);
	if (enet_address_set_host_ip(&a, "127.0.0.1") != 0) return -1;
	a.port = 0;
	b->srv = enet_host_create(&a, 1, channels, 0, 0);
	if (b->srv == NULL) return -2;
	b->cli = enet_host_create(&a, 1, channels, 0, 0);
	if (b->cli == NULL) return -3;
	benet_buffers(b->srv, sockbuf);
	benet_buffers(b->cli, sockbuf);
	ENetAddress to = b->srv->address;
	if (enet_address_set_host_ip(&to, "127.0.0.1") != 0) return -1;
	b->cli_peer = enet_host_connect(b->cli, &to, channels, 0);
	if (b->cli_peer == NULL) return -4;
	int cli_ok = 0;
	int64_t deadline = benet_now() + 5000000000LL;
	while ((!cli_ok || b->srv_peer == NULL) && benet_now() < deadline) {
		if (enet_host_service(b->cli, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT) cli_ok = 1;
		if (enet_host_service(b->srv, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT) b->srv_peer = ev.peer;
	}
	if (!cli_ok || b->srv_peer == NULL) return -5;
	// The throttle at its maximum and never lowered: no congestion control.
	enet_peer_throttle_configure(b->cli_peer, ENET_PEER_PACKET_THROTTLE_INTERVAL, ENET_PEER_PACKET_THROTTLE_SCALE, 0);
	enet_peer_throttle_configure(b->srv_peer, ENET_PEER_PACKET_THROTTLE_INTERVAL, ENET_PEER_PACKET_THROTTLE_SCALE, 0);
	// Deliver the configuration both ways (bounded: 20 rounds of 1 ms).
	for (int i = 0; i < 20; i++) {
		while (enet_host_service(b->cli, &ev, 0) > 0) {}
		while (enet_host_service(b->srv, &ev, 1) > 0) {}
	}
	return 0;
}

static void benet_close(benet *b) {
	if (b->cli_peer != NULL) enet_peer_reset(b->cli_peer);
	if (b->srv_peer != NULL) enet_peer_reset(b->srv_peer);
	if (b->cli != NULL) enet_host_destroy(b->cli);
	if (b->srv != NULL) enet_host_destroy(b->srv);
	b->cli = b->srv = NULL;
}

// benet_send hands count packets of size bytes to the client peer on
// channel 0, at most cap bytes unacknowledged at once (0: no cap), servicing
// the host after every batch packets; then, for reliable packets, services
// until all are acknowledged. It answers the packets sent, or a negative
// error.
static int benet_send(benet *b, const void *msg, int size, int count, enet_uint32 flags, int64_t cap, int batch, int64_t deadline) {
	ENetEvent ev;
	int sent = 0, r = 0;
	__atomic_store_n(&b->start_ns, benet_now(), __ATOMIC_RELEASE);
	while (sent < count) {
		if (benet_now() > deadline) goto done;
		int queued = 0;
		while (sent < count && queued < batch &&
		       (cap <= 0 || b->queued == b->freed || b->queued - b->freed + size <= cap)) {
			ENetPacket *p = enet_packet_create(msg, (size_t)size, flags);
			if (p == NULL) { r = -10; goto done; }
			p->freeCallback = benet_freed;
			p->userData = b;
			if (enet_peer_send(b->cli_peer, 0, p) < 0) {
				enet_packet_destroy(p);
				r = -11;
				goto done;
			}
			b->queued += size;
			sent++;
			queued++;
		}
		r = enet_host_service(b->cli, &ev, 0);
		if (r < 0) { r = -12; goto done; }
		if (r > 0 && ev.type == ENET_EVENT_TYPE_DISCONNECT) { r = -13; goto done; }
		if (queued == 0) {
			// At the cap: wait (at most 1 ms) for acknowledgements.
			enet_uint32 cond = ENET_SOCKET_WAIT_RECEIVE;
			enet_socket_wait(b->cli->socket, &cond, 1);
		}
	}
	// What is still queued goes out; reliable packets until acknowledged.
	while (b->freed < b->queued && benet_now() < deadline) {
		r = enet_host_service(b->cli, &ev, 1);
		if (r < 0) { r = -12; goto done; }
		if (r > 0 && ev.type == ENET_EVENT_TYPE_DISCONNECT) { r = -13; goto done; }
	}
	r = 0;
done:
	enet_host_flush(b->cli);
	__atomic_store_n(&b->send_done, 1, __ATOMIC_RELEASE);
	return r < 0 ? r : sent;
}

// benet_recv counts what the server host receives until want bytes came,
// the deadline passes, or (unreliable runs) the sender is done and nothing
// came for quiet ns. It answers 0 or a negative error.
static int benet_recv(benet *b, int64_t want, int64_t deadline, int64_t quiet) {
	ENetEvent ev;
	int64_t last = benet_now();
	while (b->rbytes < want) {
		int r = enet_host_service(b->srv, &ev, 1);
		for (; r > 0; r = enet_host_check_events(b->srv, &ev)) {
			switch (ev.type) {
			case ENET_EVENT_TYPE_RECEIVE:
				b->rbytes += (int64_t)ev.packet->dataLength;
				b->rmsgs++;
				last = benet_now();
				enet_packet_destroy(ev.packet);
				break;
			case ENET_EVENT_TYPE_DISCONNECT:
				return -13;
			default:
				break;
			}
		}
		if (r < 0) return -12;
		int64_t now = benet_now();
		if (now > deadline) break;
		if (quiet > 0 && __atomic_load_n(&b->send_done, __ATOMIC_ACQUIRE) && now - last > quiet) break;
	}
	__atomic_store_n(&b->last_ns, last, __ATOMIC_RELEASE);
	return 0;
}

// benet_echo sends every packet the server host receives back on its
// channel with flags, flushing at once, until stop is set or the deadline.
// It waits in enet_host_service for up to timeout ms (0: spins).
static int benet_echo(benet *b, enet_uint32 flags, int timeout, int64_t deadline) {
	ENetEvent ev;
	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE) && benet_now() < deadline) {
		int r = enet_host_service(b->srv, &ev, (enet_uint32)timeout);
		for (; r > 0; r = enet_host_check_events(b->srv, &ev)) {
			if (ev.type == ENET_EVENT_TYPE_DISCONNECT) return -13;
			if (ev.type != ENET_EVENT_TYPE_RECEIVE) continue;
			ENetPacket *p = enet_packet_create(ev.packet->data, ev.packet->dataLength, flags);
			if (p == NULL || enet_peer_send(ev.peer, ev.channelID, p) < 0) {
				if (p != NULL) enet_packet_destroy(p);
				enet_packet_destroy(ev.packet);
				return -11;
			}
			enet_packet_destroy(ev.packet);
			enet_host_flush(b->srv);
		}
		if (r < 0) return -12;
	}
	return 0;
}

// benet_rtt times warmup+count round trips of size bytes from the client
// host, writing the last count into out (ns). It answers the samples
// written, or a negative error; a reply that has not come by the deadline
// ends the series. It waits as benet_echo does.
static int benet_rtt(benet *b, const void *msg, int size, int warmup, int count, enet_uint32 flags, int timeout, int64_t deadline, int64_t *out) {
	ENetEvent ev;
	int n = 0;
	for (int i = 0; i < warmup + count; i++) {
		int64_t t0 = benet_now();
		if (t0 > deadline) break;
		ENetPacket *p = enet_packet_create(msg, (size_t)size, flags);
		if (p == NULL) return -10;
		if (enet_peer_send(b->cli_peer, 0, p) < 0) { enet_packet_destroy(p); return -11; }
		enet_host_flush(b->cli);
		int got = 0;
		while (!got) {
			int r = enet_host_service(b->cli, &ev, (enet_uint32)timeout);
			for (; r > 0; r = enet_host_check_events(b->cli, &ev)) {
				if (ev.type == ENET_EVENT_TYPE_DISCONNECT) return -13;
				if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
					got = 1;
					enet_packet_destroy(ev.packet);
				}
			}
			if (r < 0) return -12;
			if (!got && benet_now() > deadline) return n;
		}
		int64_t t1 = benet_now();
		if (i >= warmup) out[n++] = t1 - t0;
	}
	return n;
}

static void benet_stop(benet *b) { __atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE); }

static int benet_version_major(void) { return ENET_VERSION_GET_MAJOR(enet_linked_version()); }
static int benet_version_minor(void) { return ENET_VERSION_GET_MINOR(enet_linked_version()); }
static int benet_version_patch(void) { return ENET_VERSION_GET_PATCH(enet_linked_version()); }
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"
)

const enetAvailable = true

const (
	// enetSendCap is how many bytes the sender keeps handed to ENet and
	// not yet acknowledged, or two messages where they are larger (1 MiB
	// messages: one queued while the other is in flight). ENet's own
	// window keeps 64 KiB in transit; the rest waits in its outgoing
	// queue, which ENet walks on every service, so a queue much longer
	// than the window costs it time. Measured with 3 runs each of 150,000
	// × 1200 B: 64 KiB 46-49 MB/s, 128 KiB 157-196, 256 KiB 264-274, 512
	// KiB 146-202, 1 MiB 132-230, 4 MiB 89-102; and of 150 × 1 MiB: caps
	// of 1, 2 and 4 MiB 135-143, 143-168 and 140-144 MB/s.
	enetSendCap = 256 << 10
	// enetBatch is how many packets the sender queues between two
	// services of its host (8, 32, 64 and 256 measured alike, within the
	// runs' spread).
	enetBatch = 64
	// enetChannels: channel 0 carries the workloads; ENet wants at least
	// one, and a second costs nothing.
	enetChannels = 2
)

var enetInit = sync.OnceValue(func() error {
	if C.enet_initialize() != 0 {
		return errors.New("enet_initialize failed")
	}
	return nil
})

// enetSetupNote says in the report how ENet is set up.
func enetSetupNote() string {
	return fmt.Sprintf("ENet %s through cgo (enet.go): no bandwidth limits, the packet throttle pinned at its maximum (no congestion control), %d MiB socket buffers; reliable packets for workloads 1-3 and unsequenced ones for workload 3's unreliable row and workload 4; the sender keeps at most %d KiB unacknowledged (two messages of 1 MiB), servicing its host every %d packets; each side waits in enet_host_service (1 ms) and drains with enet_host_check_events; every run is one C call per side, its clock in C", enetVersion(), socketBuffer>>20, enetSendCap>>10, enetBatch)
}

// enetVersion is the linked libenet's version, e.g. "1.3.17".
func enetVersion() string {
	return fmt.Sprintf("%d.%d.%d", C.benet_version_major(), C.benet_version_minor(), C.benet_version_patch())
}

type enetPair struct{ b *C.benet }

func newENetPair() (*enetPair, error) {
	if err := enetInit(); err != nil {
		return nil, err
	}
	b := (*C.benet)(C.calloc(1, C.size_t(unsafe.Sizeof(C.benet{}))))
	if b == nil {
		return nil, errors.New("enet: out of memory")
	}
	p := &enetPair{b: b}
	if r := C.benet_open(b, enetChannels, socketBuffer); r != 0 {
		p.close()
		return nil, fmt.Errorf("enet: connecting on 127.0.0.1 failed (step %d)", int(r))
	}
	return p, nil
}

func (p *enetPair) close() {
	C.benet_close(p.b)
	C.free(unsafe.Pointer(p.b))
	p.b = nil
}

func enetFlags(reliable bool) C.enet_uint32 {
	if reliable {
		return C.ENET_PACKET_FLAG_RELIABLE
	}
	return C.ENET_PACKET_FLAG_UNSEQUENCED
}

func enetErr(what string, r C.int) error {
	if r >= 0 {
		return nil
	}
	return fmt.Errorf("enet %s: error %d", what, int(r))
}

// deadlineNS converts a wall-clock deadline to the C side's
// CLOCK_MONOTONIC nanoseconds.
func deadlineNS(d time.Time) C.int64_t {
	return C.benet_now() + C.int64_t(time.Until(d))
}

// enetThroughput sends count packets of size bytes one way, reliable or
// unsequenced, and counts what arrives. Its Mallocs stay 0: ENet allocates
// with malloc (a packet and a command per message), which Go's counters do
// not see, so it has no figure in workload 6.
func enetThroughput(size, count int, reliable bool, limit time.Duration) (tput, error) {
	p, err := newENetPair()
	if err != nil {
		return tput{}, err
	}
	defer p.close()
	b := p.b
	deadline := time.Now().Add(limit)
	msg := C.malloc(C.size_t(size))
	defer C.free(msg)
	C.memset(msg, 0, C.size_t(size))

	var quiet C.int64_t
	if !reliable {
		quiet = C.int64_t(100 * time.Millisecond)
	}
	want := C.int64_t(size) * C.int64_t(count)
	var rres C.int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rres = C.benet_recv(b, want, deadlineNS(deadline.Add(time.Second)), quiet)
	}()
	sendCap := C.int64_t(max(enetSendCap, 2*size))
	if !reliable {
		sendCap = 0 // unsequenced packets leave at the next service and are freed
	}
	sres := C.benet_send(b, msg, C.int(size), C.int(count), enetFlags(reliable), sendCap, enetBatch, deadlineNS(deadline))
	wg.Wait()
	capped := time.Now().After(deadline)
	t := tput{Bytes: int64(b.rbytes), Msgs: int64(b.rmsgs), Capped: capped}
	if last, start := int64(b.last_ns), int64(b.start_ns); b.rmsgs > 0 && last > start {
		t.Elapsed = time.Duration(last - start)
	}
	err = errors.Join(enetErr("send", sres), enetErr("receive", rres))
	if err == nil && reliable && t.Msgs < int64(count) && !capped {
		err = fmt.Errorf("enet: received %d of %d reliable messages", t.Msgs, count)
	}
	return t, err
}

// enetRTT measures round trips of size-byte packets echoed by the other
// host, reliable or unsequenced. Both sides wait in enet_host_service for
// up to 1 ms, woken by the datagram, as every other stack here blocks; with
// spin they call it with a timeout of 0 in a tight loop instead, which keeps
// both cores of a 2-core machine busy.
func enetRTT(size, warmup, count int, reliable, spin bool, limit time.Duration) ([]time.Duration, error) {
	p, err := newENetPair()
	if err != nil {
		return nil, err
	}
	defer p.close()
	b := p.b
	deadline := time.Now().Add(limit)
	timeout := C.int(1)
	if spin {
		timeout = 0
	}
	var eres C.int
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		eres = C.benet_echo(b, enetFlags(reliable), timeout, deadlineNS(deadline.Add(time.Second)))
	}()
	msg := C.malloc(C.size_t(size))
	defer C.free(msg)
	C.memset(msg, 0, C.size_t(size))
	out := (*C.int64_t)(C.malloc(C.size_t(max(count, 1)) * 8))
	defer C.free(unsafe.Pointer(out))
	n := C.benet_rtt(b, msg, C.int(size), C.int(warmup), C.int(count), enetFlags(reliable), timeout, deadlineNS(deadline), out)
	C.benet_stop(b)
	<-echoDone
	if n < 0 {
		return nil, errors.Join(enetErr("round trip", n), enetErr("echo", eres))
	}
	samples := unsafe.Slice((*int64)(unsafe.Pointer(out)), int(n))
	rtts := make([]time.Duration, len(samples))
	for i, s := range samples {
		rtts[i] = time.Duration(s)
	}
	return rtts, enetErr("echo", eres)
}

/*
 * cabi_bench: p2pcompat's session-less P2P API timed through the C ABI of
 * the drop-in libsteam_api.so, the way a C or C++ game reaches it.
 *
 * Two processes, each its own player (P2PCOMPAT_STEAMID and the other
 * library settings come from the environment):
 *
 *   cabi_bench -role echo -peer TIMER_ID [-rtt N] [-warmup W] [-msgs M] [-cap S]
 *   cabi_bench -role time -peer ECHO_ID  [-rtt N] [-warmup W] [-msgs M] [-cap S]
 *
 * Start the echo side first and wait for its "ready" line on stdout. Both
 * sides must be given the same -rtt, -warmup and -msgs. The timing side then
 * opens the session (the echo side accepts it from its P2PSessionRequest_t
 * callback, as a game does), and measures:
 *
 *   1. W + N round trips of a 64-byte reliable packet on channel 2, echoed
 *      by the other side; the last N are timed with clock_gettime
 *      (CLOCK_MONOTONIC) and reported as median, p99, min and max;
 *   2. M reliable 1200-byte packets one way on channel 0, the sender
 *      retrying SendP2PPacket after a 50 us pause whenever it answers false
 *      (its send buffer for that user is full); throughput is payload bytes
 *      from the first send to the last receive (the receiver's clock, which
 *      on one machine is the same CLOCK_MONOTONIC), in MB/s (10^6 bytes).
 *
 * Reading is polling, as a game's frame loop does it: IsP2PPacketAvailable,
 * then ReadP2PPacket, and between empty polls -idle spin (nothing), yield
 * (sched_yield, the default) or sleep (nanosleep of 1 us, timer slack set
 * to 1 ns). While it waits, each side calls SteamAPI_RunCallbacks every
 * 16 ms, as a frame loop would. Calls go through the
 * flat API (-api flat, the default) or through the ISteamNetworking vtable
 * (-api vtable); both are plain C here.
 *
 * The timing side prints one line per measurement, "key value" pairs after
 * the first two words:
 *
 *   result rtt64 samples N p50_us X p99_us X min_us X max_us X
 *   result tput1200 msgs M bytes B seconds X mbps X send_false K
 *
 * Every loop is bounded in count and by -cap seconds (default 30) per
 * phase. Exit status 0 on success, 1 on any failure (with a message on
 * stderr).
 */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <sys/prctl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- The Steam API, as far as used here (Linux x86-64). --- */

#pragma pack(push, 4)
typedef struct {
	uint8_t m_bConnectionActive;
	uint8_t m_bConnecting;
	uint8_t m_eP2PSessionError;
	uint8_t m_bUsingRelay;
	int32_t m_nBytesQueuedForSend;
	int32_t m_nPacketsQueuedForSend;
	uint32_t m_nRemoteIP;
	uint16_t m_nRemotePort;
} P2PSessionState_t;
#pragma pack(pop)

enum { k_EP2PSendReliable = 2 };
enum { k_iP2PSessionRequest = 1202, k_iP2PSessionConnectFail = 1203 };

bool SteamAPI_Init(void);
void SteamAPI_Shutdown(void);
void SteamAPI_RunCallbacks(void);
void SteamAPI_RegisterCallback(void *callback, int id);
void SteamAPI_UnregisterCallback(void *callback);
void *SteamAPI_SteamNetworking_v006(void);
bool SteamAPI_ISteamNetworking_SendP2PPacket(void *self, uint64_t remote, const void *data, uint32_t size, int type, int channel);
bool SteamAPI_ISteamNetworking_IsP2PPacketAvailable(void *self, uint32_t *size, int channel);
bool SteamAPI_ISteamNetworking_ReadP2PPacket(void *self, void *dest, uint32_t cap, uint32_t *size, uint64_t *remote, int channel);
bool SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(void *self, uint64_t remote);
bool SteamAPI_ISteamNetworking_GetP2PSessionState(void *self, uint64_t remote, P2PSessionState_t *state);

/*
 * A flat function takes the interface pointer first and a SteamID as a
 * uint64, exactly as a vtable slot takes `this` and a CSteamID: one
 * signature serves both ways of calling.
 */
typedef bool (*send_fn)(void *, uint64_t, const void *, uint32_t, int, int);
typedef bool (*avail_fn)(void *, uint32_t *, int);
typedef bool (*read_fn)(void *, void *, uint32_t, uint32_t *, uint64_t *, int);
typedef bool (*accept_fn)(void *, uint64_t);
typedef bool (*state_fn)(void *, uint64_t, P2PSessionState_t *);

static void *net;
static send_fn send_p2p;
static avail_fn avail_p2p;
static read_fn read_p2p;
static accept_fn accept_p2p;
static state_fn state_p2p;

/*
 * A CCallbackBase object built in C: vtable pointer at 0, flags at 8,
 * callback ID at 12. Slot 0 is Run(param), slot 1 Run(param, ioFailure,
 * call), slot 2 GetCallbackSizeBytes().
 */
typedef struct {
	const void *const *vtable;
	uint8_t flags;
	int32_t id;
} callback_t;

static uint64_t peer;
static int session_requests, connect_fails;

static void on_request(callback_t *self, void *param) {
	(void)self;
	uint64_t from;
	memcpy(&from, param, 8);
	session_requests++;
	if (from == peer)
		accept_p2p(net, from);
}

static void on_connect_fail(callback_t *self, void *param) {
	(void)self;
	uint8_t err = ((uint8_t *)param)[8];
	connect_fails++;
	fprintf(stderr, "cabi_bench: P2PSessionConnectFail_t, error %d\n", err);
}

static void run_ignored(callback_t *self, void *param, bool io, uint64_t call) { (void)self, (void)param, (void)io, (void)call; }
static int size_request(callback_t *self) { (void)self; return 8; }
static int size_connect_fail(callback_t *self) { (void)self; return 9; }

static const void *const request_vtable[] = {(const void *)on_request, (const void *)run_ignored, (const void *)size_request};
static const void *const connect_fail_vtable[] = {(const void *)on_connect_fail, (const void *)run_ignored, (const void *)size_connect_fail};
static callback_t request_cb = {request_vtable, 0, 0};
static callback_t connect_fail_cb = {connect_fail_vtable, 0, 0};

/* --- Clock, polling, callbacks. --- */

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

enum idle_mode { IDLE_SPIN, IDLE_YIELD, IDLE_SLEEP };
static enum idle_mode idle_mode = IDLE_YIELD;

static void idle(void) {
	switch (idle_mode) {
	case IDLE_SPIN:
		break;
	case IDLE_YIELD:
		sched_yield();
		break;
	case IDLE_SLEEP: {
		struct timespec ts = {0, 1000};
		nanosleep(&ts, NULL);
		break;
	}
	}
}

static int64_t next_callbacks;

/* frame runs the callbacks when 16 ms have passed since the last time. */
static void frame(int64_t now) {
	if (now >= next_callbacks) {
		SteamAPI_RunCallbacks();
		next_callbacks = now + 16000000;
	}
}

static void die(const char *what) {
	fprintf(stderr, "cabi_bench: %s\n", what);
	exit(1);
}

/*
 * poll_read polls channel ch until a packet arrives or the deadline passes.
 * It returns the packet's size, or -1 at the deadline.
 */
static int64_t poll_read(void *buf, uint32_t cap, int ch, uint64_t *from, int64_t deadline) {
	for (;;) {
		uint32_t size;
		if (avail_p2p(net, &size, ch)) {
			if (read_p2p(net, buf, cap, &size, from, ch))
				return size;
		}
		int64_t now = now_ns();
		if (now > deadline)
			return -1;
		frame(now);
		idle();
	}
}

static void send_control(const char *msg) {
	if (!send_p2p(net, peer, msg, (uint32_t)strlen(msg), k_EP2PSendReliable, 9))
		die("SendP2PPacket of a control message answered false");
}

/* read_control waits for a control message on channel 9 into buf (NUL-terminated). */
static bool read_control(char *buf, uint32_t cap, int64_t deadline) {
	uint64_t from;
	int64_t n = poll_read(buf, cap - 1, 9, &from, deadline);
	if (n < 0)
		return false;
	buf[n] = 0;
	return true;
}

/* flush waits, at most 2 s, until the peer has acknowledged all we sent. */
static void flush(void) {
	int64_t deadline = now_ns() + 2000000000LL;
	while (now_ns() < deadline) {
		P2PSessionState_t st;
		if (!state_p2p(net, peer, &st) || st.m_nBytesQueuedForSend == 0)
			return;
		frame(now_ns());
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

static int cmp_i64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* pct is the p-th percentile of sorted xs: the ceil(p/100*n)-th smallest. */
static double pct_us(const int64_t *xs, long n, double p) {
	long i = (long)ceil(p / 100.0 * (double)n) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return (double)xs[i] / 1000.0;
}

/* --- The two roles. --- */

static long rtt_count = 20000, rtt_warmup = 1000, msgs = 150000;
static int64_t cap_ns = 30 * 1000000000LL;

static int run_echo(void) {
	char ctl[256];
	static char buf[2048];
	uint64_t from;
	printf("ready\n");
	fflush(stdout);

	/* The session request arrives with the first packet; the callback accepts. */
	int64_t deadline = now_ns() + cap_ns;
	while (!read_control(ctl, sizeof ctl, deadline))
		die("no open message from the timing side");
	if (strcmp(ctl, "open") != 0)
		die("unexpected control message instead of open");
	send_control("ready");

	deadline = now_ns() + cap_ns;
	for (long i = 0; i < rtt_warmup + rtt_count; i++) {
		int64_t n = poll_read(buf, sizeof buf, 2, &from, deadline);
		if (n < 0)
			die("round trips: the timing side stopped sending");
		if (!send_p2p(net, from, buf, (uint32_t)n, k_EP2PSendReliable, 2))
			die("round trips: SendP2PPacket of the echo answered false");
	}

	deadline = now_ns() + cap_ns;
	int64_t first = 0, last = 0;
	for (long got = 0; got < msgs;) {
		int64_t n = poll_read(buf, sizeof buf, 0, &from, deadline);
		if (n < 0)
			die("throughput: not every message arrived in time");
		last = now_ns();
		if (got == 0)
			first = last;
		got++;
	}
	snprintf(ctl, sizeof ctl, "done %lld %lld", (long long)first, (long long)last);
	send_control(ctl);

	deadline = now_ns() + cap_ns;
	if (!read_control(ctl, sizeof ctl, deadline) || strcmp(ctl, "bye") != 0)
		die("no bye from the timing side");
	return 0;
}

static int run_time(void) {
	char ctl[256];
	static char buf[2048];
	uint64_t from;

	send_control("open");
	if (!read_control(ctl, sizeof ctl, now_ns() + cap_ns) || strcmp(ctl, "ready") != 0)
		die(connect_fails ? "the session failed (P2PSessionConnectFail_t)" : "no ready from the echo side");

	/* 1. Round trips. */
	int64_t *rtts = calloc((size_t)rtt_count, sizeof *rtts);
	if (!rtts)
		die("out of memory");
	char msg[64];
	memset(msg, 0x5a, sizeof msg);
	int64_t deadline = now_ns() + cap_ns;
	long samples = 0;
	for (long i = 0; i < rtt_warmup + rtt_count; i++) {
		int64_t t0 = now_ns();
		if (!send_p2p(net, peer, msg, sizeof msg, k_EP2PSendReliable, 2))
			die("round trips: SendP2PPacket answered false");
		int64_t n = poll_read(buf, sizeof buf, 2, &from, deadline);
		int64_t t1 = now_ns();
		if (n < 0)
			die("round trips: an echo did not come back in time");
		if (n != (int64_t)sizeof msg || from != peer)
			die("round trips: the echo is not the packet sent");
		if (i >= rtt_warmup)
			rtts[samples++] = t1 - t0;
	}
	qsort(rtts, (size_t)samples, sizeof *rtts, cmp_i64);
	printf("result rtt64 samples %ld p50_us %.2f p99_us %.2f min_us %.2f max_us %.2f\n", samples,
	       pct_us(rtts, samples, 50), pct_us(rtts, samples, 99), pct_us(rtts, samples, 0), pct_us(rtts, samples, 100));
	fflush(stdout);
	free(rtts);

	/* 2. Throughput, the sender respecting backpressure. */
	static char big[1200];
	memset(big, 0xa5, sizeof big);
	long send_false = 0;
	int64_t t0 = now_ns();
	deadline = t0 + cap_ns;
	for (long i = 0; i < msgs; i++) {
		while (!send_p2p(net, peer, big, sizeof big, k_EP2PSendReliable, 0)) {
			send_false++;
			int64_t now = now_ns();
			if (now > deadline)
				die("throughput: the send buffer did not drain in time");
			frame(now);
			struct timespec ts = {0, 50000};
			nanosleep(&ts, NULL);
		}
	}
	if (!read_control(ctl, sizeof ctl, now_ns() + cap_ns))
		die("throughput: no done from the echo side");
	long long first, last;
	if (sscanf(ctl, "done %lld %lld", &first, &last) != 2)
		die("throughput: unexpected control message instead of done");
	double secs = (double)(last - t0) / 1e9;
	printf("result tput1200 msgs %ld bytes %lld seconds %.6f mbps %.1f send_false %ld\n", msgs,
	       (long long)msgs * 1200, secs, (double)msgs * 1200 / secs / 1e6, send_false);
	fflush(stdout);

	send_control("bye");
	flush();
	return 0;
}

static void usage(void) {
	fprintf(stderr, "usage: cabi_bench -role echo|time -peer STEAMID [-rtt N] [-warmup W] [-msgs M] [-cap SECONDS]\n"
	                "                  [-idle spin|yield|sleep] [-api flat|vtable]\n");
	exit(2);
}

int main(int argc, char **argv) {
	const char *role = NULL, *api = "flat";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "-role"))
			role = v;
		else if (!strcmp(a, "-peer"))
			peer = strtoull(v, NULL, 10);
		else if (!strcmp(a, "-rtt"))
			rtt_count = atol(v);
		else if (!strcmp(a, "-warmup"))
			rtt_warmup = atol(v);
		else if (!strcmp(a, "-msgs"))
			msgs = atol(v);
		else if (!strcmp(a, "-cap"))
			cap_ns = (int64_t)(atof(v) * 1e9);
		else if (!strcmp(a, "-api"))
			api = v;
		else if (!strcmp(a, "-idle")) {
			if (!strcmp(v, "spin"))
				idle_mode = IDLE_SPIN;
			else if (!strcmp(v, "yield"))
				idle_mode = IDLE_YIELD;
			else if (!strcmp(v, "sleep")) {
				idle_mode = IDLE_SLEEP;
				/* Without this, Linux stretches each 1 us sleep to about 50 us. */
				prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
			}
			else
				usage();
		} else
			usage();
	}
	if (!role || peer == 0 || rtt_count < 1 || rtt_warmup < 0 || msgs < 1 || cap_ns <= 0)
		usage();

	SteamAPI_RegisterCallback(&request_cb, k_iP2PSessionRequest);
	SteamAPI_RegisterCallback(&connect_fail_cb, k_iP2PSessionConnectFail);
	if (!SteamAPI_Init())
		die("SteamAPI_Init failed");
	net = SteamAPI_SteamNetworking_v006();
	if (!net)
		die("SteamAPI_SteamNetworking_v006 returned NULL");
	if (!strcmp(api, "flat")) {
		send_p2p = SteamAPI_ISteamNetworking_SendP2PPacket;
		avail_p2p = SteamAPI_ISteamNetworking_IsP2PPacketAvailable;
		read_p2p = SteamAPI_ISteamNetworking_ReadP2PPacket;
		accept_p2p = SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser;
		state_p2p = SteamAPI_ISteamNetworking_GetP2PSessionState;
	} else if (!strcmp(api, "vtable")) {
		void *const *vt = *(void *const *const *)net;
		send_p2p = (send_fn)vt[0];
		avail_p2p = (avail_fn)vt[1];
		read_p2p = (read_fn)vt[2];
		accept_p2p = (accept_fn)vt[3];
		state_p2p = (state_fn)vt[6];
	} else
		usage();

	int rc = !strcmp(role, "echo") ? run_echo() : !strcmp(role, "time") ? run_time() : (usage(), 2);
	SteamAPI_UnregisterCallback(&request_cb);
	SteamAPI_UnregisterCallback(&connect_fail_cb);
	SteamAPI_Shutdown();
	return rc;
}

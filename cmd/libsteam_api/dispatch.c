/*
 * dispatch.c: callbacks as games receive them. The registry of callback
 * objects lives here, in C, because games register before init (C++
 * statics, GodotSteam at load). Events come from the Go side only while
 * a game thread pumps (SteamAPI_RunCallbacks, ManualDispatch_RunFrame),
 * so game code never runs on a library thread (COMPAT C60).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"
#include "p2pc.h"

#define P2PC_MAX_PAYLOAD 64
/* Slack after every payload handed to a game, zeroed: a game that reads
 * a struct of a newer SDK than the event reads zeros, not our heap. */
#define P2PC_PAYLOAD_SLACK 64
/* Bounds the network can fill: events wait here between a pump and their
 * dispatch. As many as the Go side's queue holds (callbacks.DefaultLimit),
 * so that one pump never brings more than fits; the rings grow to it. */
#define P2PC_QUEUE_CAP 65536
#define P2PC_MAX_REGISTERED 65536

typedef struct {
	int id;
	int size;
	uint8_t payload[P2PC_MAX_PAYLOAD];
} event;

typedef struct {
	event *ev;
	int head, len, cap;
} ring;

typedef struct {
	void *cb;
	uint64_t call; /* 0 for a callback, the handle for a call result */
} registration;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
/* The object whose handler runs now, and on which thread: an unregister
 * from another thread waits for that handler to return, so that the game
 * may free the object once SteamAPI_UnregisterCallback returns (the .NET
 * wrappers unregister from their finalizer thread). */
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static void *in_flight;
static pthread_t in_flight_thread;
static registration *regs;
static int nregs, capregs;

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static ring classic_q, manual_q;
static int manual_enabled;
static int pending_requests; /* 1202 events waiting in either queue */
static uint8_t *manual_current; /* the payload of the last GetNextCallback */

/* Held while a thread dispatches classic callbacks: a re-entrant or
 * concurrent SteamAPI_RunCallbacks returns at once. */
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;

/* The CCallbackBase fields: vtable at 0, flags at 8, id at 12. */
#define CB_FLAGS(cb) (((uint8_t *)(cb))[8])
#define CB_ID(cb) (*(int32_t *)((uint8_t *)(cb) + 12))
#define CB_REGISTERED 0x01
#define CB_GAMESERVER 0x02

typedef void (*run_fn)(void *self, void *param);
typedef void (*run_result_fn)(void *self, void *param, int io_failure, uint64_t call);

static int ring_push(ring *r, const event *e) {
	if (r->len == r->cap) {
		if (r->cap == P2PC_QUEUE_CAP) return 0;
		int n = r->cap ? r->cap * 2 : 64;
		event *ev = malloc((size_t)n * sizeof *ev);
		if (ev == NULL) return 0;
		for (int i = 0; i < r->len; i++) ev[i] = r->ev[(r->head + i) % r->cap];
		free(r->ev);
		r->ev = ev;
		r->head = 0;
		r->cap = n;
	}
	r->ev[(r->head + r->len) % r->cap] = *e;
	r->len++;
	return 1;
}

static int ring_pop(ring *r, event *e) {
	if (r->len == 0) return 0;
	*e = r->ev[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return 1;
}

static uint64_t payload_steam_id(const event *e) {
	uint64_t id;
	memcpy(&id, e->payload, 8);
	return id;
}

/* ring_drop_requests removes the 1202 events for remote, keeping order. */
static int ring_drop_requests(ring *r, uint64_t remote) {
	int kept = 0, dropped = 0;
	for (int i = 0; i < r->len; i++) {
		event *e = &r->ev[(r->head + i) % r->cap];
		if (e->id == P2PC_CB_SESSION_REQUEST && payload_steam_id(e) == remote) {
			dropped++;
			continue;
		}
		if (kept != i) r->ev[(r->head + kept) % r->cap] = *e;
		kept++;
	}
	r->len = kept;
	return dropped;
}

static int registered_for(int id, int gameserver) {
	for (int i = 0; i < nregs; i++) {
		void *cb = regs[i].cb;
		if (regs[i].call == 0 && CB_ID(cb) == id && ((CB_FLAGS(cb) & CB_GAMESERVER) != 0) == gameserver)
			return 1;
	}
	return 0;
}

void p2pc_post(int id, const void *payload, int size) {
	if (size < 0 || size > P2PC_MAX_PAYLOAD) return;
	event e = {.id = id, .size = size};
	memcpy(e.payload, payload, (size_t)size);
	pthread_mutex_lock(&reg_mu);
	int classic = registered_for(id, 0);
	pthread_mutex_unlock(&reg_mu);
	pthread_mutex_lock(&q_mu);
	/* Classic dispatch takes an event only if an object waits for it, so
	 * a game that dispatches manually does not fill the classic queue;
	 * manual dispatch takes every event. */
	int queued = 0;
	if (classic) queued |= ring_push(&classic_q, &e);
	if (manual_enabled) queued |= ring_push(&manual_q, &e) << 1;
	if (id == P2PC_CB_SESSION_REQUEST)
		__atomic_add_fetch(&pending_requests, (queued & 1) + (queued >> 1), __ATOMIC_RELAXED);
	pthread_mutex_unlock(&q_mu);
}

/* COMPAT C33: a request still undispatched when the game sends to that
 * user is dropped. The Go side drops those it holds; these are the ones
 * already handed to this side. */
void p2pc_drop_requests_from(uint64_t remote) {
	if (__atomic_load_n(&pending_requests, __ATOMIC_RELAXED) == 0) return;
	pthread_mutex_lock(&q_mu);
	int dropped = ring_drop_requests(&classic_q, remote) + ring_drop_requests(&manual_q, remote);
	__atomic_sub_fetch(&pending_requests, dropped, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&q_mu);
}

/* p2pc_dispatch_reset drops what waits at shutdown: events of a session
 * that is gone. Registrations stay, as they do in Steam. */
void p2pc_dispatch_reset(void) {
	pthread_mutex_lock(&q_mu);
	classic_q.head = classic_q.len = 0;
	manual_q.head = manual_q.len = 0;
	__atomic_store_n(&pending_requests, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&q_mu);
}

static int find_registration(void *cb, uint64_t call) {
	for (int i = 0; i < nregs; i++)
		if (regs[i].cb == cb && regs[i].call == call) return i;
	return -1;
}

static void add_registration(void *cb, uint64_t call) {
	if (find_registration(cb, call) >= 0) return;
	if (nregs == capregs) {
		if (capregs >= P2PC_MAX_REGISTERED) return;
		int n = capregs ? capregs * 2 : 256;
		registration *r = realloc(regs, (size_t)n * sizeof *r);
		if (r == NULL) return;
		regs = r;
		capregs = n;
	}
	regs[nregs++] = (registration){cb, call};
}

static void remove_registration(int i) {
	memmove(&regs[i], &regs[i + 1], (size_t)(nregs - i - 1) * sizeof *regs);
	nregs--;
}

void SteamAPI_RegisterCallback(void *cb, int id) {
	if (cb == NULL) return;
	pthread_mutex_lock(&reg_mu);
	CB_ID(cb) = id;
	CB_FLAGS(cb) |= CB_REGISTERED;
	add_registration(cb, 0);
	pthread_mutex_unlock(&reg_mu);
}

/* wait_not_in_flight waits, with reg_mu held, until cb's handler is not
 * running on another thread. */
static void wait_not_in_flight(void *cb) {
	while (in_flight == cb && !pthread_equal(in_flight_thread, pthread_self())) pthread_cond_wait(&reg_cond, &reg_mu);
}

void SteamAPI_UnregisterCallback(void *cb) {
	if (cb == NULL) return;
	pthread_mutex_lock(&reg_mu);
	wait_not_in_flight(cb);
	if (CB_FLAGS(cb) & CB_REGISTERED) {
		CB_FLAGS(cb) &= (uint8_t)~CB_REGISTERED;
		int i = find_registration(cb, 0);
		if (i >= 0) remove_registration(i);
	}
	pthread_mutex_unlock(&reg_mu);
}

/* Call results are kept by handle. Nothing in this library starts an
 * asynchronous call yet, so none completes; the registry keeps games that
 * register one (and unregister it in a destructor) working. */
void SteamAPI_RegisterCallResult(void *cb, uint64_t call) {
	if (cb == NULL || call == 0) return;
	pthread_mutex_lock(&reg_mu);
	CB_FLAGS(cb) |= CB_REGISTERED;
	add_registration(cb, call);
	pthread_mutex_unlock(&reg_mu);
}

void SteamAPI_UnregisterCallResult(void *cb, uint64_t call) {
	if (cb == NULL || call == 0) return;
	pthread_mutex_lock(&reg_mu);
	wait_not_in_flight(cb);
	int i = find_registration(cb, call);
	if (i >= 0) {
		remove_registration(i);
		CB_FLAGS(cb) &= (uint8_t)~CB_REGISTERED;
	}
	pthread_mutex_unlock(&reg_mu);
}

/* dispatch calls slot 0 of every object registered for e's id in that
 * mode. The objects are snapshotted and called with no lock held, since a
 * handler may call back in (accept, unregister, send); each is checked to
 * be still registered right before its call, since an earlier handler may
 * have unregistered and freed it. */
static void dispatch(const event *e, int gameserver) {
	void *stack[32];
	void **snap = stack;
	int n = 0, cap = 32;
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < nregs; i++) {
		void *cb = regs[i].cb;
		if (regs[i].call != 0 || CB_ID(cb) != e->id || ((CB_FLAGS(cb) & CB_GAMESERVER) != 0) != gameserver)
			continue;
		if (n == cap) {
			void **bigger = malloc((size_t)cap * 2 * sizeof *bigger);
			if (bigger == NULL) break;
			memcpy(bigger, snap, (size_t)n * sizeof *snap);
			if (snap != stack) free(snap);
			snap = bigger;
			cap *= 2;
		}
		snap[n++] = cb;
	}
	pthread_mutex_unlock(&reg_mu);

	uint8_t param[P2PC_MAX_PAYLOAD + P2PC_PAYLOAD_SLACK] = {0};
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&reg_mu);
		run_fn run = NULL;
		if (find_registration(snap[i], 0) >= 0 && CB_ID(snap[i]) == e->id) {
			/* Read under the lock: an unregister on another thread
			 * now waits until this handler has returned. */
			run = (run_fn)(*(void ***)snap[i])[0];
			in_flight = snap[i];
			in_flight_thread = pthread_self();
		}
		pthread_mutex_unlock(&reg_mu);
		if (run == NULL) continue;
		/* A fresh copy for each handler: one may write into its param. */
		memset(param, 0, sizeof param);
		memcpy(param, e->payload, (size_t)e->size);
		run(snap[i], param);
		pthread_mutex_lock(&reg_mu);
		in_flight = NULL;
		pthread_cond_broadcast(&reg_cond);
		pthread_mutex_unlock(&reg_mu);
	}
	if (snap != stack) free(snap);
}

static void run_callbacks(int gameserver) {
	if (pthread_mutex_trylock(&run_mu) != 0) return;
	if (!gameserver) p2pc_pump();
	event e;
	for (;;) {
		pthread_mutex_lock(&q_mu);
		int got = gameserver ? 0 : ring_pop(&classic_q, &e);
		if (got && e.id == P2PC_CB_SESSION_REQUEST) __atomic_sub_fetch(&pending_requests, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&q_mu);
		if (!got) break;
		dispatch(&e, gameserver);
	}
	pthread_mutex_unlock(&run_mu);
}

void SteamAPI_RunCallbacks(void) { run_callbacks(0); }

/* Nothing this library does posts game-server callbacks. */
void SteamGameServer_RunCallbacks(void) { run_callbacks(1); }

/* Manual dispatch (Steamworks.NET >= 15, Facepunch). One pipe. */

void SteamAPI_ManualDispatch_Init(void) {
	pthread_mutex_lock(&q_mu);
	manual_enabled = 1;
	pthread_mutex_unlock(&q_mu);
}

void SteamAPI_ManualDispatch_RunFrame(int32_t pipe) {
	(void)pipe;
	p2pc_pump();
}

uint32_t SteamAPI_ManualDispatch_GetNextCallback(int32_t pipe, p2pc_callback_msg *msg) {
	(void)pipe;
	if (msg == NULL) return 0;
	pthread_mutex_lock(&q_mu);
	free(manual_current);
	manual_current = NULL;
	event e;
	if (!ring_pop(&manual_q, &e)) {
		pthread_mutex_unlock(&q_mu);
		return 0;
	}
	if (e.id == P2PC_CB_SESSION_REQUEST) __atomic_sub_fetch(&pending_requests, 1, __ATOMIC_RELAXED);
	/* The payload stays valid until FreeLastCallback, in C memory. */
	manual_current = calloc(1, (size_t)e.size + P2PC_PAYLOAD_SLACK);
	if (manual_current == NULL) {
		pthread_mutex_unlock(&q_mu);
		return 0;
	}
	memcpy(manual_current, e.payload, (size_t)e.size);
	msg->user = P2PC_USER;
	msg->id = e.id;
	msg->param = manual_current;
	msg->size = e.size;
	pthread_mutex_unlock(&q_mu);
	return 1;
}

void SteamAPI_ManualDispatch_FreeLastCallback(int32_t pipe) {
	(void)pipe;
	pthread_mutex_lock(&q_mu);
	free(manual_current);
	manual_current = NULL;
	pthread_mutex_unlock(&q_mu);
}

uint32_t SteamAPI_ManualDispatch_GetAPICallResult(int32_t pipe, uint64_t call, void *out, int size,
                                                  int expected, uint8_t *failed) {
	(void)pipe, (void)call, (void)out, (void)size, (void)expected;
	/* No asynchronous call of this library is ever pending or complete. */
	if (failed != NULL) *failed = 1;
	return 0;
}

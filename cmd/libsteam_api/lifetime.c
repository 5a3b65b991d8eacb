/*
 * lifetime.c: init in every form a game uses, shutdown, the context that
 * SDK >= 1.43 headers fill through SteamInternal_ContextInit, and the
 * small exports of a game's startup.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"
#include "p2pc.h"

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_initialised;
static uint32_t g_restart_app_id;
/* Changes at every init and every shutdown, so that every context a game
 * filled is filled again (SteamInternal_ContextInit). 0 until the first
 * init: a context filled before init holds NULL interfaces. */
static uintptr_t g_generation;

static int g_connected_pending;

void p2pc_pump(void) {
	if (!p2pc_initialised()) return;
	if (__atomic_exchange_n(&g_connected_pending, 0, __ATOMIC_ACQ_REL)) {
		uint8_t empty = 0;
		p2pc_post(P2PC_CB_SERVERS_CONNECTED, &empty, 1);
	}
	p2pcGoPump();
}

int p2pc_initialised(void) { return __atomic_load_n(&g_initialised, __ATOMIC_ACQUIRE); }

uint32_t p2pc_restart_app_id(void) { return __atomic_load_n(&g_restart_app_id, __ATOMIC_RELAXED); }

/* The library's path, made absolute when it is loaded: a game loaded
 * through LD_LIBRARY_PATH=. may change directory before init. */
static char g_library_path[4096];

__attribute__((constructor)) static void find_library_path(void) {
	Dl_info info;
	if (dladdr((void *)find_library_path, &info) == 0 || info.dli_fname == NULL) return;
	if (realpath(info.dli_fname, g_library_path) == NULL)
		snprintf(g_library_path, sizeof g_library_path, "%s", info.dli_fname);
}

void p2pc_library_dir(char *buf, int cap) {
	if (cap <= 0) return;
	buf[0] = 0;
	if (g_library_path[0] == 0) return;
	snprintf(buf, (size_t)cap, "%s", g_library_path);
	char *slash = strrchr(buf, '/');
	if (slash == NULL)
		snprintf(buf, (size_t)cap, ".");
	else if (slash == buf)
		buf[1] = 0;
	else
		*slash = 0;
}

static void set_env_once(const char *name, uint32_t app) {
	char v[16];
	if (getenv(name) != NULL) return;
	snprintf(v, sizeof v, "%u", app);
	setenv(name, v, 0);
}

/* init_locked starts the library; err gets a NUL-terminated message,
 * empty on success. */
static int init_locked(char *err, int cap) {
	if (g_initialised) {
		if (err) err[0] = 0;
		return P2PC_INIT_OK;
	}
	char buf[1024] = "";
	char persona[128] = "";
	uint64_t steam_id = 0;
	uint32_t app_id = 0;
	int rc = p2pcGoInit(buf, sizeof buf, persona, sizeof persona, &steam_id, &app_id);
	if (err) snprintf(err, (size_t)cap, "%s", rc == P2PC_INIT_OK ? "" : buf);
	if (rc != P2PC_INIT_OK) return rc;
	p2pc_identity_set(steam_id, app_id, persona);
	/* Once, early, under the init lock: setenv is not thread-safe. */
	set_env_once("SteamAppId", app_id);
	set_env_once("SteamGameId", app_id);
	__atomic_store_n(&g_initialised, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&g_generation, 1, __ATOMIC_ACQ_REL);
	/* SteamServersConnected_t goes out at the first pump, by whichever
	 * dispatch: Steamworks.NET enables manual dispatch only after init. */
	__atomic_store_n(&g_connected_pending, 1, __ATOMIC_RELEASE);
	return P2PC_INIT_OK;
}

static int init(char *err, int cap) {
	pthread_mutex_lock(&init_mu);
	int rc = init_locked(err, cap);
	pthread_mutex_unlock(&init_mu);
	return rc;
}

uint32_t SteamAPI_Init(void) { return init(NULL, 0) == P2PC_INIT_OK; }
uint32_t SteamAPI_InitSafe(void) { return SteamAPI_Init(); }
uint32_t SteamAPI_InitAnonymousUser(void) { return SteamAPI_Init(); }

/* versions: NUL-separated interface versions, ending in an empty string.
 * Every version gets an object (unknown ones answer 0 everywhere), so the
 * list only tells what the game will ask for; they are made now. */
int SteamInternal_SteamAPI_Init(const char *versions, char *err) {
	int rc = init(err, 1024);
	if (rc == P2PC_INIT_OK && versions != NULL) {
		const char *v = versions;
		for (int i = 0; i < 256 && *v; i++) {
			p2pc_interface(v);
			v += strnlen(v, 256) + 1;
		}
	}
	return rc;
}

int SteamAPI_InitFlat(char *err) { return init(err, 1024); }

void SteamAPI_Shutdown(void) {
	pthread_mutex_lock(&init_mu);
	if (g_initialised) {
		__atomic_store_n(&g_initialised, 0, __ATOMIC_RELEASE);
		__atomic_add_fetch(&g_generation, 1, __ATOMIC_ACQ_REL);
		__atomic_store_n(&g_connected_pending, 0, __ATOMIC_RELEASE);
		p2pcGoShutdown();
		p2pc_dispatch_reset();
	}
	pthread_mutex_unlock(&init_mu);
}

uint32_t SteamAPI_RestartAppIfNecessary(uint32_t app) {
	__atomic_store_n(&g_restart_app_id, app, __ATOMIC_RELAXED);
	return 0;
}

uint32_t SteamAPI_IsSteamRunning(void) { return 1; }

int32_t SteamAPI_GetHSteamUser(void) { return p2pc_initialised() ? P2PC_USER : 0; }
int32_t SteamAPI_GetHSteamPipe(void) { return p2pc_initialised() ? P2PC_PIPE : 0; }
int32_t GetHSteamUser(void) { return SteamAPI_GetHSteamUser(); }
int32_t GetHSteamPipe(void) { return SteamAPI_GetHSteamPipe(); }
int32_t SteamGameServer_GetHSteamUser(void) { return SteamAPI_GetHSteamUser(); }
int32_t SteamGameServer_GetHSteamPipe(void) { return SteamAPI_GetHSteamPipe(); }

void SteamAPI_ReleaseCurrentThreadMemory(void) {}
void SteamAPI_SetTryCatchCallbacks(uint32_t enable) { (void)enable; }
void SteamAPI_WriteMiniDump(uint32_t code, void *info, uint32_t build) { (void)code, (void)info, (void)build; }
void SteamAPI_SetMiniDumpComment(const char *comment) { (void)comment; }

/* There is no Steam installation: the library's own directory stands in,
 * a valid path that exists. */
static char install_dir[1024];
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static void find_install_dir(void) { p2pc_library_dir(install_dir, sizeof install_dir); }

const char *SteamAPI_GetSteamInstallPath(void) {
	pthread_once(&install_once, find_install_dir);
	return install_dir;
}

/* SteamInternal_ContextInit: block is {void (*init)(void *ctx); uintptr
 * counter; context...}. The game's init function fills the context by
 * asking for interfaces; it runs again whenever the generation moved. */
static pthread_mutex_t ctx_mu;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_mu_init(void) {
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	/* Recursive: an init function may itself use an accessor. */
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ctx_mu, &a);
	pthread_mutexattr_destroy(&a);
}

void *SteamInternal_ContextInit(void *block) {
	if (block == NULL) return NULL;
	uintptr_t *b = block;
	uintptr_t gen = __atomic_load_n(&g_generation, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&b[1], __ATOMIC_ACQUIRE) != gen) {
		pthread_once(&ctx_once, ctx_mu_init);
		pthread_mutex_lock(&ctx_mu);
		gen = __atomic_load_n(&g_generation, __ATOMIC_ACQUIRE);
		if (b[1] != gen) {
			void (*fn)(void *) = (void (*)(void *))b[0];
			if (fn != NULL) fn(&b[2]);
			__atomic_store_n(&b[1], gen, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&ctx_mu);
	}
	return &b[2];
}

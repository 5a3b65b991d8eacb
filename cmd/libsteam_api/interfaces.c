/*
 * interfaces.c: the interface objects games call through vtables, and the
 * exports that hand them out. A vtable is laid out as the Itanium C++ ABI
 * lays out a class without a virtual destructor: two words (offset to
 * top, type info) and then the slots, the object's first word pointing at
 * slot 0. ISteamNetworking, ISteamUser, ISteamFriends, ISteamUtils and
 * ISteamClient have working slots; every other interface a game asks for
 * is an object whose every method answers 0, and whose string methods we
 * know answer "" (never NULL: games print them).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "_cgo_export.h"
#include "p2pc.h"

#define STUB_SLOTS 256
#define MAX_OBJECTS 256
#define MAX_VERSION 96

typedef struct {
	const void *const *vptr;
} object;

static uint64_t stub_zero(void) { return 0; }
static const char *stub_empty(void) { return ""; }

/* Identity, set at init from the Go side. */
static pthread_mutex_t id_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_steam_id;
static uint32_t g_app_id;
static char g_persona[128];

void p2pc_identity_set(uint64_t steam_id, uint32_t app_id, const char *persona) {
	static int persona_set;
	pthread_mutex_lock(&id_mu);
	__atomic_store_n(&g_steam_id, steam_id, __ATOMIC_RELAXED);
	__atomic_store_n(&g_app_id, app_id, __ATOMIC_RELAXED);
	/* GetPersonaName hands this buffer to the game for keeps, so it is
	 * written once, at the first init, and never while a game may read it. */
	if (!persona_set) snprintf(g_persona, sizeof g_persona, "%s", persona ? persona : "");
	persona_set = 1;
	pthread_mutex_unlock(&id_mu);
}

uint64_t p2pc_steam_id(void) { return p2pc_initialised() ? __atomic_load_n(&g_steam_id, __ATOMIC_RELAXED) : 0; }
uint32_t p2pc_app_id(void) { return __atomic_load_n(&g_app_id, __ATOMIC_RELAXED); }

/* ---- ISteamNetworking (SteamNetworking005/006) ---- */

/* A CSteamID argument arrives in a general register like a uint64; a bool
 * argument is only its low byte. */
static uint32_t net_send(void *self, uint64_t to, const void *data, uint32_t size, int type, int channel) {
	(void)self;
	if (data == NULL && size > 0) return 0;
	p2pc_drop_requests_from(to);
	return (uint32_t)p2pcGoSend(to, (void *)data, size, type, channel);
}

static uint32_t net_available(void *self, uint32_t *size, int channel) {
	(void)self;
	if (size == NULL) return 0;
	return (uint32_t)p2pcGoIsAvailable(size, channel);
}

static uint32_t net_read(void *self, void *dest, uint32_t cap, uint32_t *size, void *from, int channel) {
	(void)self;
	if (size != NULL) *size = 0;
	if (size == NULL || from == NULL || (dest == NULL && cap > 0)) return 0;
	uint64_t remote = 0;
	uint32_t ok = (uint32_t)p2pcGoRead(dest, cap, size, &remote, channel);
	memcpy(from, &remote, 8); /* CSteamID: alignment 1 */
	return ok;
}

static uint32_t net_accept(void *self, uint64_t remote) {
	(void)self;
	return (uint32_t)p2pcGoAccept(remote);
}

static uint32_t net_close(void *self, uint64_t remote) {
	(void)self;
	return (uint32_t)p2pcGoCloseSession(remote);
}

static uint32_t net_close_channel(void *self, uint64_t remote, int channel) {
	(void)self;
	return (uint32_t)p2pcGoCloseChannel(remote, channel);
}

static uint32_t net_state(void *self, uint64_t remote, p2pc_session_state *st) {
	(void)self;
	if (st == NULL) return 0;
	p2pc_session_state s = {0};
	uint32_t ok = (uint32_t)p2pcGoGetState(remote, &s);
	*st = s;
	return ok;
}

static uint32_t net_allow_relay(void *self, uint32_t allow) {
	(void)self;
	return (uint32_t)p2pcGoAllowRelay((int)(allow & 0xff));
}

/* Slots 8-21, the socket calls, answer 0 / false through stub_zero. */
static const void *const net_vtbl[2 + 22] = {
    0, 0, net_send, net_available, net_read, net_accept, net_close, net_close_channel, net_state,
    net_allow_relay, stub_zero, stub_zero, stub_zero, stub_zero, stub_zero, stub_zero, stub_zero,
    stub_zero, stub_zero, stub_zero, stub_zero, stub_zero, stub_zero, stub_zero,
};

/* ---- ISteamUser (SteamUser008-023) ---- */

static int32_t user_hsteamuser(void *self) {
	(void)self;
	return p2pc_initialised() ? P2PC_USER : 0;
}
static uint32_t user_logged_on(void *self) {
	(void)self;
	return (uint32_t)p2pcGoLoggedOn();
}
static uint64_t user_steam_id(void *self) {
	(void)self;
	return p2pc_steam_id();
}
static uint32_t user_voice_rate(void *self) {
	(void)self;
	return 48000;
}

/* ---- ISteamFriends (014-018) ---- */

static const char *friends_persona(void *self) {
	(void)self;
	/* The buffer is written at init only, before any game thread can
	 * ask, and stays valid and NUL-terminated for the library's life. */
	return g_persona;
}

/* ---- ISteamUtils ---- */

static uint32_t utils_app_id(void *self) {
	(void)self;
	return p2pc_app_id();
}
static int utils_universe(void *self) {
	(void)self;
	return 1; /* k_EUniversePublic */
}
static uint32_t utils_server_time(void *self) {
	(void)self;
	return (uint32_t)time(NULL);
}
static int utils_call_failure(void *self, uint64_t call) {
	(void)self, (void)call;
	return 2; /* k_ESteamAPICallFailureInvalidHandle: no call of ours exists */
}
static void utils_warning_hook(void *self, void *fn) { (void)self, (void)fn; }
/* IsAPICallCompleted and GetAPICallResult: no call of ours exists, and
 * exactly one byte of *failed is written. */
static uint32_t utils_call_completed(void *self, uint64_t call, uint8_t *failed) {
	(void)self, (void)call;
	if (failed != NULL) *failed = 1;
	return 0;
}
static uint32_t utils_call_result(void *self, uint64_t call, void *out, int size, int expected, uint8_t *failed) {
	(void)out, (void)size, (void)expected;
	return utils_call_completed(self, call, failed);
}

/* ---- ISteamApps ---- */

static uint32_t apps_true(void *self) {
	(void)self;
	return 1;
}
static const char *apps_language(void *self) {
	(void)self;
	return "english";
}

/* ---- ISteamClient ---- */

static int32_t client_create_pipe(void *self) {
	(void)self;
	return P2PC_PIPE;
}
static uint32_t client_release_pipe(void *self, int32_t pipe) {
	(void)self, (void)pipe;
	return 1;
}
static int32_t client_global_user(void *self, int32_t pipe) {
	(void)self, (void)pipe;
	return P2PC_USER;
}
static int32_t client_local_user(void *self, int32_t *pipe, int type) {
	(void)self, (void)type;
	if (pipe != NULL) *pipe = P2PC_PIPE;
	return P2PC_USER;
}
static void client_release_user(void *self, int32_t pipe, int32_t user) { (void)self, (void)pipe, (void)user; }
static void *client_get(void *self, int32_t user, int32_t pipe, const char *version) {
	(void)self, (void)user, (void)pipe;
	return p2pc_interface(version);
}
static void *client_get_utils(void *self, int32_t pipe, const char *version) {
	(void)self, (void)pipe;
	return p2pc_interface(version);
}
static void client_set_ip_binding(void *self, const void *ip, uint16_t port) { (void)self, (void)ip, (void)port; }
/* From slot 19 on, the slots of ISteamClient move between versions
 * (GetISteamGameSearch inserted, RunFrame and others removed), and mix
 * getters (user, pipe, version) with SetWarningMessageHook(fn),
 * GetIPCCallCount(), BShutdownIfAllPipesClosed() and DestroyAllInterfaces().
 * A getter is called with the handles this library gave out; anything
 * else answers 0, which is right for every one of the others. */
static void *client_later_slot(void *self, int64_t user, int64_t pipe, const char *version) {
	(void)self;
	if ((int32_t)user == P2PC_USER && (int32_t)pipe == P2PC_PIPE && version != NULL) return p2pc_interface(version);
	return NULL;
}

#define S(f) (const void *)(f)
static const void *client_vtbl[2 + 64];
static const void *user_vtbl[2 + STUB_SLOTS];
static const void *friends_vtbl[2 + STUB_SLOTS];
static const void *friends018_vtbl[2 + STUB_SLOTS];
static const void *utils_vtbl[2 + STUB_SLOTS];    /* SteamUtils005-010 */
static const void *utils011_vtbl[2 + STUB_SLOTS]; /* SteamUtils011 */
static const void *apps_vtbl[2 + STUB_SLOTS];
static const void *mm_vtbl[2 + STUB_SLOTS];    /* SteamMatchMaking009 */
static const void *mm008_vtbl[2 + STUB_SLOTS]; /* 008: one slot less from 11 */
static const void *mm007_vtbl[2 + STUB_SLOTS]; /* 007 and older: three less from 12 */
static const void *stub_vtbl[2 + STUB_SLOTS];

static void fill(const void **vt, int slots, const void *fn) {
	for (int i = 0; i < slots; i++) vt[2 + i] = fn;
}

/* ISteamFriends: SteamFriends018 dropped SetPersonaName (slot 1), so from
 * there on its slots are one lower than 014-017's. */
static void build_friends(const void **vt, int lower) {
	fill(vt, STUB_SLOTS, S(stub_zero));
	vt[2 + 0] = S(friends_persona);
	vt[2 + 7 - lower] = S(stub_empty); /* GetFriendPersonaName */
}

/* ISteamUtils: slots 0-7 agree in every version; SteamUtils011 dropped
 * GetCSERIPPort (slot 7), so from GetAppID on it is one lower. */
static void build_utils(const void **vt, int lower) {
	fill(vt, STUB_SLOTS, S(stub_zero));
	vt[2 + 2] = S(utils_universe);
	vt[2 + 3] = S(utils_server_time);
	vt[2 + 4] = S(stub_empty); /* GetIPCountry */
	vt[2 + 9 - lower] = S(utils_app_id);
	vt[2 + 11 - lower] = S(utils_call_completed);
	vt[2 + 12 - lower] = S(utils_call_failure);
	vt[2 + 13 - lower] = S(utils_call_result);
	vt[2 + 16 - lower] = S(utils_warning_hook);
}

/* ISteamMatchmaking: the string slots GetLobbyData and GetLobbyMemberData,
 * 19 and 24 in SteamMatchMaking009; 008 lacks slot 11 (one lower), 007
 * also two filters (three lower). */
static void build_matchmaking(const void **vt, int lower) {
	fill(vt, STUB_SLOTS, S(stub_zero));
	vt[2 + 19 - lower] = S(stub_empty);
	vt[2 + 24 - lower] = S(stub_empty);
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
	fill(stub_vtbl, STUB_SLOTS, S(stub_zero));

	fill(user_vtbl, STUB_SLOTS, S(stub_zero));
	user_vtbl[2 + 0] = S(user_hsteamuser);
	user_vtbl[2 + 1] = S(user_logged_on);
	user_vtbl[2 + 2] = S(user_steam_id);
	user_vtbl[2 + 12] = S(user_voice_rate);

	build_friends(friends_vtbl, 0);
	build_friends(friends018_vtbl, 1);
	build_utils(utils_vtbl, 0);
	build_utils(utils011_vtbl, 1);

	fill(apps_vtbl, STUB_SLOTS, S(stub_zero));
	apps_vtbl[2 + 0] = S(apps_true);     /* BIsSubscribed */
	apps_vtbl[2 + 4] = S(apps_language); /* GetCurrentGameLanguage */
	apps_vtbl[2 + 5] = S(apps_language); /* GetAvailableGameLanguages */
	apps_vtbl[2 + 6] = S(apps_true);     /* BIsSubscribedApp */

	build_matchmaking(mm_vtbl, 0);
	build_matchmaking(mm008_vtbl, 1);
	build_matchmaking(mm007_vtbl, 3);

	const void *c[] = {
	    S(client_create_pipe), S(client_release_pipe), S(client_global_user), S(client_local_user),
	    S(client_release_user), S(client_get), S(client_get), S(client_set_ip_binding), S(client_get),
	    S(client_get_utils), S(client_get), S(client_get), S(client_get), S(client_get), S(client_get),
	    S(client_get), S(client_get), S(client_get), S(client_get),
	};
	int n = (int)(sizeof c / sizeof c[0]);
	for (int i = 0; i < 64; i++) client_vtbl[2 + i] = i < n ? c[i] : S(client_later_slot);
}

/* ---- Objects by version string ---- */

static object client_object = {&client_vtbl[2]};

typedef struct {
	char version[MAX_VERSION];
	object obj;
} entry;

static pthread_mutex_t obj_mu = PTHREAD_MUTEX_INITIALIZER;
static entry objects[MAX_OBJECTS];
static int nobjects;
static object overflow_object = {&stub_vtbl[2]};

/* family splits "SteamUser023" into "SteamUser" and 23. */
static int family(const char *v, const char *name) {
	size_t n = strlen(name);
	if (strncmp(v, name, n) != 0) return -1;
	int num = 0, digits = 0;
	for (const char *p = v + n; *p; p++, digits++) {
		if (*p < '0' || *p > '9' || digits > 4) return -1;
		num = num * 10 + (*p - '0');
	}
	return digits ? num : -1;
}

static const void *const *vtable_for(const char *v) {
	int n;
	if (family(v, "SteamClient") >= 0) return &client_vtbl[2];
	if (family(v, "SteamNetworking") >= 0) return &net_vtbl[2];
	if (family(v, "SteamUser") >= 0) return &user_vtbl[2];
	if ((n = family(v, "SteamFriends")) >= 0) return n >= 18 ? &friends018_vtbl[2] : &friends_vtbl[2];
	if ((n = family(v, "SteamUtils")) >= 0) return n >= 11 ? &utils011_vtbl[2] : &utils_vtbl[2];
	if ((n = family(v, "SteamMatchMaking")) >= 0) return n >= 9 ? &mm_vtbl[2] : n == 8 ? &mm008_vtbl[2] : &mm007_vtbl[2];
	if (family(v, "STEAMAPPS_INTERFACE_VERSION") >= 0) return &apps_vtbl[2];
	return &stub_vtbl[2];
}

/* p2pc_interface is the object for exactly that version string, made on
 * first request; the same string always gets the same object. */
void *p2pc_interface(const char *version) {
	pthread_once(&tables_once, build_tables);
	if (version == NULL) return NULL;
	size_t len = strnlen(version, MAX_VERSION);
	if (len == 0 || len == MAX_VERSION) return &overflow_object;
	if (family(version, "SteamClient") >= 0) return &client_object;
	pthread_mutex_lock(&obj_mu);
	void *found = NULL;
	for (int i = 0; i < nobjects && !found; i++)
		if (strcmp(objects[i].version, version) == 0) found = &objects[i].obj;
	if (!found && nobjects < MAX_OBJECTS) {
		entry *e = &objects[nobjects++];
		memcpy(e->version, version, len + 1);
		e->obj.vptr = vtable_for(version);
		found = &e->obj;
	}
	pthread_mutex_unlock(&obj_mu);
	return found ? found : &overflow_object;
}

void *SteamInternal_FindOrCreateUserInterface(int32_t user, const char *version) {
	(void)user;
	return p2pc_initialised() ? p2pc_interface(version) : NULL;
}

void *SteamInternal_FindOrCreateGameServerInterface(int32_t user, const char *version) {
	(void)user;
	return p2pc_initialised() ? p2pc_interface(version) : NULL;
}

void *SteamInternal_CreateInterface(const char *version) { return p2pc_interface(version); }

void *SteamClient(void) {
	pthread_once(&tables_once, build_tables);
	return &client_object;
}

/* SDK <= 1.36 exported accessors: NULL before init, as the context they
 * read was then empty. */
#define ACCESSOR(name, version) \
	void *name(void) { return p2pc_initialised() ? p2pc_interface(version) : NULL; }
ACCESSOR(SteamUser, "SteamUser019")
ACCESSOR(SteamFriends, "SteamFriends015")
ACCESSOR(SteamUtils, "SteamUtils007")
ACCESSOR(SteamMatchmaking, "SteamMatchMaking009")
ACCESSOR(SteamMatchmakingServers, "SteamMatchMakingServers002")
ACCESSOR(SteamUserStats, "STEAMUSERSTATS_INTERFACE_VERSION011")
ACCESSOR(SteamApps, "STEAMAPPS_INTERFACE_VERSION007")
ACCESSOR(SteamNetworking, "SteamNetworking005")
ACCESSOR(SteamRemoteStorage, "STEAMREMOTESTORAGE_INTERFACE_VERSION013")
ACCESSOR(SteamScreenshots, "STEAMSCREENSHOTS_INTERFACE_VERSION002")
ACCESSOR(SteamHTTP, "STEAMHTTP_INTERFACE_VERSION002")
ACCESSOR(SteamUnifiedMessages, "STEAMUNIFIEDMESSAGES_INTERFACE_VERSION001")
ACCESSOR(SteamController, "SteamController003")
ACCESSOR(SteamUGC, "STEAMUGC_INTERFACE_VERSION007")
ACCESSOR(SteamAppList, "STEAMAPPLIST_INTERFACE_VERSION001")
ACCESSOR(SteamMusic, "STEAMMUSIC_INTERFACE_VERSION001")
ACCESSOR(SteamMusicRemote, "STEAMMUSICREMOTE_INTERFACE_VERSION001")
ACCESSOR(SteamHTMLSurface, "STEAMHTMLSURFACE_INTERFACE_VERSION_003")
ACCESSOR(SteamInventory, "STEAMINVENTORY_INTERFACE_V001")
ACCESSOR(SteamVideo, "STEAMVIDEO_INTERFACE_V001")
ACCESSOR(SteamGameServer, "SteamGameServer012")
ACCESSOR(SteamGameServerNetworking, "SteamNetworking005")
ACCESSOR(SteamGameServerUtils, "SteamUtils007")
ACCESSOR(SteamGameServerStats, "SteamGameServerStats001")
ACCESSOR(SteamGameServerHTTP, "STEAMHTTP_INTERFACE_VERSION002")

/* Flat accessors (SDK 1.48+). */
ACCESSOR(SteamAPI_SteamNetworking_v006, "SteamNetworking006")
ACCESSOR(SteamAPI_SteamUser_v020, "SteamUser020")
ACCESSOR(SteamAPI_SteamUser_v021, "SteamUser021")
ACCESSOR(SteamAPI_SteamUser_v022, "SteamUser022")
ACCESSOR(SteamAPI_SteamUser_v023, "SteamUser023")
ACCESSOR(SteamAPI_SteamUtils_v009, "SteamUtils009")
ACCESSOR(SteamAPI_SteamUtils_v010, "SteamUtils010")
ACCESSOR(SteamAPI_SteamUtils_v011, "SteamUtils011")
ACCESSOR(SteamAPI_SteamFriends_v017, "SteamFriends017")
ACCESSOR(SteamAPI_SteamFriends_v018, "SteamFriends018")
ACCESSOR(SteamAPI_SteamMatchmaking_v009, "SteamMatchMaking009")
ACCESSOR(SteamAPI_SteamApps_v008, "STEAMAPPS_INTERFACE_VERSION008")
ACCESSOR(SteamAPI_SteamInput_v006, "SteamInput006")
ACCESSOR(SteamAPI_SteamInventory_v003, "STEAMINVENTORY_INTERFACE_V003")
ACCESSOR(SteamAPI_SteamMatchmakingServers_v002, "SteamMatchMakingServers002")
ACCESSOR(SteamAPI_SteamMusic_v001, "STEAMMUSIC_INTERFACE_VERSION001")
ACCESSOR(SteamAPI_SteamNetworkingSockets_v012, "SteamNetworkingSockets012")
ACCESSOR(SteamAPI_SteamNetworkingUtils_v004, "SteamNetworkingUtils004")
ACCESSOR(SteamAPI_SteamParentalSettings_v001, "STEAMPARENTALSETTINGS_INTERFACE_VERSION001")
ACCESSOR(SteamAPI_SteamParties_v002, "SteamParties002")
ACCESSOR(SteamAPI_SteamRemoteStorage_v016, "STEAMREMOTESTORAGE_INTERFACE_VERSION016")
ACCESSOR(SteamAPI_SteamScreenshots_v003, "STEAMSCREENSHOTS_INTERFACE_VERSION003")
ACCESSOR(SteamAPI_SteamUGC_v020, "STEAMUGC_INTERFACE_VERSION020")
ACCESSOR(SteamAPI_SteamUserStats_v013, "STEAMUSERSTATS_INTERFACE_VERSION013")
ACCESSOR(SteamAPI_SteamVideo_v007, "STEAMVIDEO_INTERFACE_V007")
ACCESSOR(SteamAPI_SteamRemotePlay_v002, "STEAMREMOTEPLAY_INTERFACE_VERSION002")
ACCESSOR(SteamAPI_SteamTimeline_v004, "SteamTimeline004")

/* Flat ISteamNetworking: SteamIDs as uint64 by value, otherwise the same
 * arguments. They never dispatch through self's vtable: a game may pass
 * any version's object. */
uint32_t SteamAPI_ISteamNetworking_SendP2PPacket(void *self, uint64_t to, const void *data, uint32_t size,
                                                 int type, int channel) {
	return net_send(self, to, data, size, type, channel);
}
uint32_t SteamAPI_ISteamNetworking_IsP2PPacketAvailable(void *self, uint32_t *size, int channel) {
	return net_available(self, size, channel);
}
uint32_t SteamAPI_ISteamNetworking_ReadP2PPacket(void *self, void *dest, uint32_t cap, uint32_t *size,
                                                 uint64_t *from, int channel) {
	return net_read(self, dest, cap, size, from, channel);
}
uint32_t SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(void *self, uint64_t remote) {
	return net_accept(self, remote);
}
uint32_t SteamAPI_ISteamNetworking_CloseP2PSessionWithUser(void *self, uint64_t remote) {
	return net_close(self, remote);
}
uint32_t SteamAPI_ISteamNetworking_CloseP2PChannelWithUser(void *self, uint64_t remote, int channel) {
	return net_close_channel(self, remote, channel);
}
uint32_t SteamAPI_ISteamNetworking_GetP2PSessionState(void *self, uint64_t remote, p2pc_session_state *st) {
	return net_state(self, remote, st);
}
uint32_t SteamAPI_ISteamNetworking_AllowP2PPacketRelay(void *self, uint32_t allow) {
	return net_allow_relay(self, allow);
}

/* The socket calls of the flat API fail cleanly, as their slots do. */
#define FLAT_ZERO(name) \
	uint64_t SteamAPI_ISteamNetworking_##name(void) { return 0; }
FLAT_ZERO(CreateListenSocket)
FLAT_ZERO(CreateP2PConnectionSocket)
FLAT_ZERO(CreateConnectionSocket)
FLAT_ZERO(DestroySocket)
FLAT_ZERO(DestroyListenSocket)
FLAT_ZERO(SendDataOnSocket)
FLAT_ZERO(IsDataAvailableOnSocket)
FLAT_ZERO(RetrieveDataFromSocket)
FLAT_ZERO(IsDataAvailable)
FLAT_ZERO(RetrieveData)
FLAT_ZERO(GetSocketInfo)
FLAT_ZERO(GetListenSocketInfo)
FLAT_ZERO(GetSocketConnectionType)
FLAT_ZERO(GetMaxPacketSize)

/* Flat ISteamUser, ISteamFriends, ISteamUtils, ISteamApps: what Facepunch
 * and Steamworks.NET call at startup. */
int32_t SteamAPI_ISteamUser_GetHSteamUser(void *self) { return user_hsteamuser(self); }
uint32_t SteamAPI_ISteamUser_BLoggedOn(void *self) { return user_logged_on(self); }
uint64_t SteamAPI_ISteamUser_GetSteamID(void *self) { return user_steam_id(self); }
uint32_t SteamAPI_ISteamUser_GetVoiceOptimalSampleRate(void *self) { return user_voice_rate(self); }
const char *SteamAPI_ISteamFriends_GetPersonaName(void *self) { return friends_persona(self); }
const char *SteamAPI_ISteamFriends_GetFriendPersonaName(void *self, uint64_t id) {
	(void)self, (void)id;
	return "";
}
uint32_t SteamAPI_ISteamUtils_GetAppID(void *self) { return utils_app_id(self); }
const char *SteamAPI_ISteamUtils_GetIPCountry(void *self) {
	(void)self;
	return "";
}
int SteamAPI_ISteamUtils_GetConnectedUniverse(void *self) { return utils_universe(self); }
uint32_t SteamAPI_ISteamUtils_GetServerRealTime(void *self) { return utils_server_time(self); }
void SteamAPI_ISteamUtils_SetWarningMessageHook(void *self, void *fn) { utils_warning_hook(self, fn); }
uint32_t SteamAPI_ISteamUtils_IsAPICallCompleted(void *self, uint64_t call, uint8_t *failed) {
	return utils_call_completed(self, call, failed);
}
int SteamAPI_ISteamUtils_GetAPICallFailureReason(void *self, uint64_t call) { return utils_call_failure(self, call); }
uint32_t SteamAPI_ISteamUtils_GetAPICallResult(void *self, uint64_t call, void *out, int size, int expected,
                                               uint8_t *failed) {
	return utils_call_result(self, call, out, size, expected, failed);
}
uint32_t SteamAPI_ISteamApps_BIsSubscribed(void *self) { return apps_true(self); }
uint32_t SteamAPI_ISteamApps_BIsSubscribedApp(void *self, uint32_t app) {
	(void)app;
	return apps_true(self);
}
const char *SteamAPI_ISteamApps_GetCurrentGameLanguage(void *self) { return apps_language(self); }
const char *SteamAPI_ISteamApps_GetAvailableGameLanguages(void *self) { return apps_language(self); }

/* Flat ISteamClient. */
int32_t SteamAPI_ISteamClient_CreateSteamPipe(void *self) { return client_create_pipe(self); }
uint32_t SteamAPI_ISteamClient_BReleaseSteamPipe(void *self, int32_t pipe) { return client_release_pipe(self, pipe); }
int32_t SteamAPI_ISteamClient_ConnectToGlobalUser(void *self, int32_t pipe) { return client_global_user(self, pipe); }
int32_t SteamAPI_ISteamClient_CreateLocalUser(void *self, int32_t *pipe, int type) {
	return client_local_user(self, pipe, type);
}
void SteamAPI_ISteamClient_ReleaseUser(void *self, int32_t pipe, int32_t user) { client_release_user(self, pipe, user); }
void SteamAPI_ISteamClient_SetLocalIPBinding(void *self, const void *ip, uint16_t port) {
	client_set_ip_binding(self, ip, port);
}
uint32_t SteamAPI_ISteamClient_GetIPCCallCount(void *self) {
	(void)self;
	return 0;
}
void SteamAPI_ISteamClient_SetWarningMessageHook(void *self, void *fn) { (void)self, (void)fn; }
uint32_t SteamAPI_ISteamClient_BShutdownIfAllPipesClosed(void *self) {
	(void)self;
	return 0;
}
void *SteamAPI_ISteamClient_GetISteamUtils(void *self, int32_t pipe, const char *version) {
	return client_get_utils(self, pipe, version);
}
#define FLAT_GETTER(name) \
	void *SteamAPI_ISteamClient_##name(void *self, int32_t user, int32_t pipe, const char *version) { \
		return client_get(self, user, pipe, version); \
	}
FLAT_GETTER(GetISteamUser)
FLAT_GETTER(GetISteamGameServer)
FLAT_GETTER(GetISteamFriends)
FLAT_GETTER(GetISteamMatchmaking)
FLAT_GETTER(GetISteamMatchmakingServers)
FLAT_GETTER(GetISteamGenericInterface)
FLAT_GETTER(GetISteamUserStats)
FLAT_GETTER(GetISteamGameServerStats)
FLAT_GETTER(GetISteamApps)
FLAT_GETTER(GetISteamNetworking)
FLAT_GETTER(GetISteamRemoteStorage)
FLAT_GETTER(GetISteamScreenshots)
FLAT_GETTER(GetISteamGameSearch)
FLAT_GETTER(GetISteamHTTP)
FLAT_GETTER(GetISteamController)
FLAT_GETTER(GetISteamUGC)
FLAT_GETTER(GetISteamAppList)
FLAT_GETTER(GetISteamMusic)
FLAT_GETTER(GetISteamMusicRemote)
FLAT_GETTER(GetISteamHTMLSurface)
FLAT_GETTER(GetISteamInventory)
FLAT_GETTER(GetISteamVideo)
FLAT_GETTER(GetISteamParentalSettings)
FLAT_GETTER(GetISteamInput)
FLAT_GETTER(GetISteamParties)
FLAT_GETTER(GetISteamRemotePlay)

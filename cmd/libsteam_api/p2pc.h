/*
 * p2pc.h: the C half of the drop-in libsteam_api.so, shared by its C files
 * and its Go bridge. The Steam types are declared here from the ABI facts
 * (Linux x86-64, pack(4) structs, CSteamID with alignment 1); the Go side
 * sees only plain integers and pointers.
 */
#ifndef P2PC_H
#define P2PC_H

#include <stddef.h>
#include <stdint.h>

/* The handles the library gives out once initialised. Distinctive values,
 * so that the ISteamClient slots whose meaning moves between versions can
 * tell a getter's (user, pipe, version) arguments from anything else. */
#define P2PC_PIPE 0x5350 /* "PS" */
#define P2PC_USER 0x5355 /* "US" */

/* Callback ids. */
#define P2PC_CB_SERVERS_CONNECTED 101
#define P2PC_CB_SERVERS_DISCONNECTED 103
#define P2PC_CB_CALL_COMPLETED 703
#define P2PC_CB_SESSION_REQUEST 1202
#define P2PC_CB_CONNECT_FAIL 1203

/* ESteamAPIInitResult. */
#define P2PC_INIT_OK 0
#define P2PC_INIT_FAILED_GENERIC 1
#define P2PC_INIT_NO_STEAM_CLIENT 2

/* EResult values that callbacks carry. */
#define P2PC_ERESULT_NO_CONNECTION 3

#pragma pack(push, 4)
/* P2PSessionState_t. */
typedef struct {
	uint8_t active;
	uint8_t connecting;
	uint8_t error;
	uint8_t using_relay;
	int32_t bytes_queued;
	int32_t packets_queued;
	uint32_t remote_ip;
	uint16_t remote_port;
} p2pc_session_state;

/* CallbackMsg_t: 20 bytes, not 24. */
typedef struct {
	int32_t user;
	int32_t id;
	uint8_t *param;
	int32_t size;
} p2pc_callback_msg;

/* SteamAPICallCompleted_t. */
typedef struct {
	uint64_t call;
	int32_t id;
	uint32_t size;
} p2pc_call_completed;

/* P2PSessionConnectFail_t: a CSteamID (alignment 1) and a byte. */
typedef struct {
	uint8_t steam_id[8];
	uint8_t error;
} p2pc_connect_fail;
#pragma pack(pop)

_Static_assert(sizeof(p2pc_session_state) == 20, "P2PSessionState_t is 20 bytes");
_Static_assert(offsetof(p2pc_session_state, bytes_queued) == 4, "P2PSessionState_t layout");
_Static_assert(offsetof(p2pc_session_state, remote_port) == 16, "P2PSessionState_t layout");
_Static_assert(sizeof(p2pc_callback_msg) == 20, "CallbackMsg_t is 20 bytes");
_Static_assert(offsetof(p2pc_callback_msg, param) == 8, "CallbackMsg_t layout");
_Static_assert(offsetof(p2pc_callback_msg, size) == 16, "CallbackMsg_t layout");
_Static_assert(sizeof(p2pc_call_completed) == 16, "SteamAPICallCompleted_t is 16 bytes");
_Static_assert(sizeof(p2pc_connect_fail) == 9, "P2PSessionConnectFail_t is 9 bytes");

/* Called by the Go side while it pumps (on the pumping thread): queues a
 * callback for classic and manual dispatch. size <= P2PC_MAX_PAYLOAD. */
void p2pc_post(int id, const void *payload, int size);

/* The directory of the library file, for its settings and steam_appid.txt;
 * writes "" when it cannot be found. */
void p2pc_library_dir(char *buf, int cap);

/* The AppID the game gave SteamAPI_RestartAppIfNecessary, or 0. */
uint32_t p2pc_restart_app_id(void);

/* Brings the events the Go side holds over to the dispatch queues; called
 * by the game's thread from SteamAPI_RunCallbacks and RunFrame. */
void p2pc_pump(void);

/* Whether the library is initialised (1) or not (0). */
int p2pc_initialised(void);

/* Dispatch (dispatch.c). */
void p2pc_dispatch_reset(void);
void p2pc_drop_requests_from(uint64_t remote);

/* Interfaces (interfaces.c). */
void *p2pc_interface(const char *version);
void p2pc_identity_set(uint64_t steam_id, uint32_t app_id, const char *persona);
uint64_t p2pc_steam_id(void);
uint32_t p2pc_app_id(void);

#endif

/*
 * layout.c prints the size and field offsets of the ABI's structs twice:
 * as the library's C side declares them (p2pc.h) and as a game does
 * (steam_abi.h). The test compares both with the contract's table.
 */
#include <stddef.h>
#include <stdio.h>

#include "../p2pc.h"
#include "steam_abi.h"

#define LINE(side, name, type, ...) print(side, name, sizeof(type), (size_t[]){__VA_ARGS__, (size_t)-1})

static void print(const char *side, const char *name, size_t size, const size_t *off) {
	printf("%s %s %zu", side, name, size);
	for (; *off != (size_t)-1; off++) printf(" %zu", *off);
	printf("\n");
}

int main(void) {
	LINE("lib", "P2PSessionState_t", p2pc_session_state, offsetof(p2pc_session_state, active),
	     offsetof(p2pc_session_state, connecting), offsetof(p2pc_session_state, error),
	     offsetof(p2pc_session_state, using_relay), offsetof(p2pc_session_state, bytes_queued),
	     offsetof(p2pc_session_state, packets_queued), offsetof(p2pc_session_state, remote_ip),
	     offsetof(p2pc_session_state, remote_port));
	LINE("lib", "CallbackMsg_t", p2pc_callback_msg, offsetof(p2pc_callback_msg, user),
	     offsetof(p2pc_callback_msg, id), offsetof(p2pc_callback_msg, param), offsetof(p2pc_callback_msg, size));
	LINE("lib", "SteamAPICallCompleted_t", p2pc_call_completed, offsetof(p2pc_call_completed, call),
	     offsetof(p2pc_call_completed, id), offsetof(p2pc_call_completed, size));
	LINE("lib", "P2PSessionConnectFail_t", p2pc_connect_fail, offsetof(p2pc_connect_fail, steam_id),
	     offsetof(p2pc_connect_fail, error));

	LINE("game", "P2PSessionState_t", P2PSessionState_t, offsetof(P2PSessionState_t, m_bConnectionActive),
	     offsetof(P2PSessionState_t, m_bConnecting), offsetof(P2PSessionState_t, m_eP2PSessionError),
	     offsetof(P2PSessionState_t, m_bUsingRelay), offsetof(P2PSessionState_t, m_nBytesQueuedForSend),
	     offsetof(P2PSessionState_t, m_nPacketsQueuedForSend), offsetof(P2PSessionState_t, m_nRemoteIP),
	     offsetof(P2PSessionState_t, m_nRemotePort));
	LINE("game", "CallbackMsg_t", CallbackMsg_t, offsetof(CallbackMsg_t, m_hSteamUser),
	     offsetof(CallbackMsg_t, m_iCallback), offsetof(CallbackMsg_t, m_pubParam),
	     offsetof(CallbackMsg_t, m_cubParam));
	LINE("game", "SteamAPICallCompleted_t", SteamAPICallCompleted_t, offsetof(SteamAPICallCompleted_t, m_hAsyncCall),
	     offsetof(SteamAPICallCompleted_t, m_iCallback), offsetof(SteamAPICallCompleted_t, m_cubParam));
	LINE("game", "P2PSessionConnectFail_t", P2PSessionConnectFail_t,
	     offsetof(P2PSessionConnectFail_t, steamIDRemote), offsetof(P2PSessionConnectFail_t, eP2PSessionError));
	LINE("game", "P2PSessionRequest_t", P2PSessionRequest_t, offsetof(P2PSessionRequest_t, steamIDRemote));
	LINE("game", "SteamServersDisconnected_t", SteamServersDisconnected_t,
	     offsetof(SteamServersDisconnected_t, m_eResult));
	return 0;
}

/*
 * steam_abi.h: the Steam ABI as a legacy game sees it, declared from the
 * facts of the project's C ABI contract (Linux x86-64), for the project's
 * own test programs. Interfaces are declared by slot order, twice: as C
 * vtables of function pointers (for C programs and for calling a slot by
 * number) and, for C++, as classes with virtual methods, the way a game
 * compiled against the SDK calls them.
 */
#ifndef P2PCOMPAT_TEST_STEAM_ABI_H
#define P2PCOMPAT_TEST_STEAM_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t HSteamUser;
typedef int32_t HSteamPipe;
typedef uint64_t SteamAPICall_t;
typedef uint64_t uint64_steamid;
typedef uint32_t AppId_t;
typedef char SteamErrMsg[1024];

enum { k_ESteamAPIInitResult_OK = 0, k_ESteamAPIInitResult_FailedGeneric = 1,
       k_ESteamAPIInitResult_NoSteamClient = 2, k_ESteamAPIInitResult_VersionMismatch = 3 };

enum { k_EP2PSendUnreliable = 0, k_EP2PSendUnreliableNoDelay = 1,
       k_EP2PSendReliable = 2, k_EP2PSendReliableWithBuffering = 3 };

enum { k_EP2PSessionErrorNone = 0, k_EP2PSessionErrorNotRunningApp = 1,
       k_EP2PSessionErrorNoRightsToApp = 2, k_EP2PSessionErrorDestinationNotLoggedIn = 3,
       k_EP2PSessionErrorTimeout = 4 };

enum { k_iSteamServersConnected = 101, k_iSteamServersDisconnected = 103,
       k_iSteamAPICallCompleted = 703, k_iP2PSessionRequest = 1202,
       k_iP2PSessionConnectFail = 1203 };

#pragma pack(push, 4)
typedef struct { uint8_t steamIDRemote[8]; } P2PSessionRequest_t;
typedef struct { uint8_t steamIDRemote[8]; uint8_t eP2PSessionError; } P2PSessionConnectFail_t;
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
typedef struct {
	HSteamUser m_hSteamUser;
	int m_iCallback;
	uint8_t *m_pubParam;
	int m_cubParam;
} CallbackMsg_t;
typedef struct { uint64_t m_hAsyncCall; int m_iCallback; uint32_t m_cubParam; } SteamAPICallCompleted_t;
typedef struct { int32_t m_eResult; } SteamServersDisconnected_t;
#pragma pack(pop)

/* Reads the SteamID of a callback payload (alignment 1). */
static inline uint64_t steam_id_of(const uint8_t b[8]) {
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
	return v;
}

/* Every bool result is read as the whole 32-bit register, as some games do. */
typedef uint32_t sbool;

/* Init and lifetime. */
sbool SteamAPI_Init(void);
sbool SteamAPI_InitSafe(void);
sbool SteamAPI_InitAnonymousUser(void);
int SteamInternal_SteamAPI_Init(const char *versions, SteamErrMsg *err);
int SteamAPI_InitFlat(SteamErrMsg *err);
void SteamAPI_Shutdown(void);
sbool SteamAPI_RestartAppIfNecessary(uint32_t appID);
sbool SteamAPI_IsSteamRunning(void);
HSteamUser SteamAPI_GetHSteamUser(void);
HSteamPipe SteamAPI_GetHSteamPipe(void);
HSteamUser GetHSteamUser(void);
HSteamPipe GetHSteamPipe(void);
void SteamAPI_ReleaseCurrentThreadMemory(void);
const char *SteamAPI_GetSteamInstallPath(void);

/* Classic dispatch. */
void SteamAPI_RegisterCallback(void *cb, int id);
void SteamAPI_UnregisterCallback(void *cb);
void SteamAPI_RegisterCallResult(void *cb, SteamAPICall_t call);
void SteamAPI_UnregisterCallResult(void *cb, SteamAPICall_t call);
void SteamAPI_RunCallbacks(void);
void SteamGameServer_RunCallbacks(void);

/* Manual dispatch. */
void SteamAPI_ManualDispatch_Init(void);
void SteamAPI_ManualDispatch_RunFrame(HSteamPipe pipe);
sbool SteamAPI_ManualDispatch_GetNextCallback(HSteamPipe pipe, CallbackMsg_t *msg);
void SteamAPI_ManualDispatch_FreeLastCallback(HSteamPipe pipe);
sbool SteamAPI_ManualDispatch_GetAPICallResult(HSteamPipe pipe, SteamAPICall_t call, void *out,
                                               int size, int expectedID, uint8_t *failed);

/* Interfaces. */
void *SteamInternal_ContextInit(void *block);
void *SteamInternal_FindOrCreateUserInterface(HSteamUser user, const char *version);
void *SteamInternal_FindOrCreateGameServerInterface(HSteamUser user, const char *version);
void *SteamInternal_CreateInterface(const char *version);
void *SteamClient(void);

/* SDK <= 1.36 exported accessors. */
void *SteamUser(void);
void *SteamNetworking(void);
void *SteamUtils(void);
void *SteamFriends(void);
void *SteamMatchmaking(void);
void *SteamUserStats(void);
void *SteamApps(void);
void *SteamRemoteStorage(void);

/* Flat accessors and methods. */
void *SteamAPI_SteamNetworking_v006(void);
void *SteamAPI_SteamUser_v023(void);
void *SteamAPI_SteamUtils_v010(void);
void *SteamAPI_SteamFriends_v017(void);
sbool SteamAPI_ISteamNetworking_SendP2PPacket(void *self, uint64_steamid to, const void *data,
                                              uint32_t size, int type, int channel);
sbool SteamAPI_ISteamNetworking_IsP2PPacketAvailable(void *self, uint32_t *size, int channel);
sbool SteamAPI_ISteamNetworking_ReadP2PPacket(void *self, void *dest, uint32_t cap, uint32_t *size,
                                              uint64_steamid *from, int channel);
sbool SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(void *self, uint64_steamid remote);
sbool SteamAPI_ISteamNetworking_CloseP2PSessionWithUser(void *self, uint64_steamid remote);
sbool SteamAPI_ISteamNetworking_CloseP2PChannelWithUser(void *self, uint64_steamid remote, int channel);
sbool SteamAPI_ISteamNetworking_GetP2PSessionState(void *self, uint64_steamid remote,
                                                   P2PSessionState_t *state);
sbool SteamAPI_ISteamNetworking_AllowP2PPacketRelay(void *self, int allow);
uint64_steamid SteamAPI_ISteamUser_GetSteamID(void *self);
sbool SteamAPI_ISteamUser_BLoggedOn(void *self);
uint32_t SteamAPI_ISteamUtils_GetAppID(void *self);
const char *SteamAPI_ISteamFriends_GetPersonaName(void *self);

/* ISteamNetworking (SteamNetworking005/006) as a C vtable: slot i is
 * vtbl[i], called with the object first. */
typedef struct {
	sbool (*SendP2PPacket)(void *self, uint64_t to, const void *data, uint32_t size, int type, int channel);
	sbool (*IsP2PPacketAvailable)(void *self, uint32_t *size, int channel);
	sbool (*ReadP2PPacket)(void *self, void *dest, uint32_t cap, uint32_t *size, uint64_t *from, int channel);
	sbool (*AcceptP2PSessionWithUser)(void *self, uint64_t remote);
	sbool (*CloseP2PSessionWithUser)(void *self, uint64_t remote);
	sbool (*CloseP2PChannelWithUser)(void *self, uint64_t remote, int channel);
	sbool (*GetP2PSessionState)(void *self, uint64_t remote, P2PSessionState_t *state);
	sbool (*AllowP2PPacketRelay)(void *self, int allow);
} SteamNetworkingVtbl;

typedef struct { const SteamNetworkingVtbl *vtbl; } SteamNetworkingObj;

#ifdef __cplusplus
}

/* CSteamID: 8 bytes, alignment 1, trivially copyable: passed like a uint64. */
#pragma pack(push, 1)
class CSteamID {
public:
	CSteamID() : m_id(0) {}
	explicit CSteamID(uint64_t id) : m_id(id) {}
	uint64_t ConvertToUint64() const { return m_id; }
	bool operator==(const CSteamID &o) const { return m_id == o.m_id; }
private:
	uint64_t m_id;
};
#pragma pack(pop)
static_assert(sizeof(CSteamID) == 8, "CSteamID is 8 bytes");

/* The interfaces, by slot order (no virtual destructors). */
class ISteamNetworking {
public:
	virtual bool SendP2PPacket(CSteamID to, const void *data, uint32_t size, int type, int channel = 0) = 0;
	virtual bool IsP2PPacketAvailable(uint32_t *size, int channel = 0) = 0;
	virtual bool ReadP2PPacket(void *dest, uint32_t cap, uint32_t *size, CSteamID *from, int channel = 0) = 0;
	virtual bool AcceptP2PSessionWithUser(CSteamID remote) = 0;
	virtual bool CloseP2PSessionWithUser(CSteamID remote) = 0;
	virtual bool CloseP2PChannelWithUser(CSteamID remote, int channel) = 0;
	virtual bool GetP2PSessionState(CSteamID remote, P2PSessionState_t *state) = 0;
	virtual bool AllowP2PPacketRelay(bool allow) = 0;
	virtual uint32_t CreateListenSocket(int port, uint32_t ip, uint16_t p, bool relay) = 0;
	virtual uint32_t CreateP2PConnectionSocket(CSteamID target, int port, int timeout, bool relay) = 0;
	virtual uint32_t CreateConnectionSocket(uint32_t ip, uint16_t port, int timeout) = 0;
	virtual bool DestroySocket(uint32_t socket, bool notify) = 0;
	virtual bool DestroyListenSocket(uint32_t socket, bool notify) = 0;
	virtual bool SendDataOnSocket(uint32_t socket, void *data, uint32_t size, bool reliable) = 0;
	virtual bool IsDataAvailableOnSocket(uint32_t socket, uint32_t *size) = 0;
	virtual bool RetrieveDataFromSocket(uint32_t socket, void *dest, uint32_t cap, uint32_t *size) = 0;
	virtual bool IsDataAvailable(uint32_t listen, uint32_t *size, uint32_t *socket) = 0;
	virtual bool RetrieveData(uint32_t listen, void *dest, uint32_t cap, uint32_t *size, uint32_t *socket) = 0;
	virtual bool GetSocketInfo(uint32_t socket, CSteamID *remote, int *status, uint32_t *ip, uint16_t *port) = 0;
	virtual bool GetListenSocketInfo(uint32_t listen, uint32_t *ip, uint16_t *port) = 0;
	virtual int GetSocketConnectionType(uint32_t socket) = 0;
	virtual int GetMaxPacketSize(uint32_t socket) = 0;
};

class ISteamUser {
public:
	virtual HSteamUser GetHSteamUser() = 0;
	virtual bool BLoggedOn() = 0;
	virtual CSteamID GetSteamID() = 0;
};

class ISteamFriends {
public:
	virtual const char *GetPersonaName() = 0;
};

/* ISteamUtils up to GetAppID (slot 9 in SteamUtils005-010). */
class ISteamUtils010 {
public:
	virtual uint32_t GetSecondsSinceAppActive() = 0;
	virtual uint32_t GetSecondsSinceComputerActive() = 0;
	virtual int GetConnectedUniverse() = 0;
	virtual uint32_t GetServerRealTime() = 0;
	virtual const char *GetIPCountry() = 0;
	virtual bool GetImageSize(int image, uint32_t *w, uint32_t *h) = 0;
	virtual bool GetImageRGBA(int image, uint8_t *dest, int size) = 0;
	virtual bool GetCSERIPPort(uint32_t *ip, uint16_t *port) = 0;
	virtual uint8_t GetCurrentBatteryPower() = 0;
	virtual uint32_t GetAppID() = 0;
};

/* ISteamClient slots 0-18 (stable from 012 to 023). */
class ISteamClient {
public:
	virtual HSteamPipe CreateSteamPipe() = 0;
	virtual bool BReleaseSteamPipe(HSteamPipe pipe) = 0;
	virtual HSteamUser ConnectToGlobalUser(HSteamPipe pipe) = 0;
	virtual HSteamUser CreateLocalUser(HSteamPipe *pipe, int accountType) = 0;
	virtual void ReleaseUser(HSteamPipe pipe, HSteamUser user) = 0;
	virtual void *GetISteamUser(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamGameServer(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void SetLocalIPBinding(const void *ip, uint16_t port) = 0;
	virtual void *GetISteamFriends(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamUtils(HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamMatchmaking(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamMatchmakingServers(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamGenericInterface(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamUserStats(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamGameServerStats(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamApps(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamNetworking(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamRemoteStorage(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
	virtual void *GetISteamScreenshots(HSteamUser user, HSteamPipe pipe, const char *version) = 0;
};

/* CCallbackBase: vtable at 0, flags at 8, callback id at 12; 16 bytes. */
class CCallbackBase {
public:
	CCallbackBase() : m_nCallbackFlags(0), m_iCallback(0) {}
	virtual void Run(void *param) = 0;
	virtual void Run(void *param, bool ioFailure, SteamAPICall_t call) = 0;
	virtual int GetCallbackSizeBytes() = 0;
	enum { k_ECallbackFlagsRegistered = 0x01, k_ECallbackFlagsGameServer = 0x02 };
	uint8_t m_nCallbackFlags;
	int m_iCallback;
};
static_assert(sizeof(CCallbackBase) == 16, "CCallbackBase is 16 bytes");
static_assert(offsetof(CCallbackBase, m_nCallbackFlags) == 8, "flags at 8");
static_assert(offsetof(CCallbackBase, m_iCallback) == 12, "id at 12");
#endif

#endif

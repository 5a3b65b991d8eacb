// steam_p2p.h: the few Steam API declarations a game needs for session-less
// P2P networking (ISteamNetworking), written out for Linux x86-64 so that the
// example builds against libsteam_api.so without any SDK header.
//
// Everything here follows the ABI a game compiled against the Steamworks SDK
// uses: plain extern "C" functions, interfaces reached through an exported
// accessor and called through their vtable slots, callbacks delivered to
// CCallbackBase objects from SteamAPI_RunCallbacks.
#ifndef STEAM_P2P_H
#define STEAM_P2P_H

#include <stdint.h>

typedef int32_t HSteamUser;
typedef int32_t HSteamPipe;
typedef uint64_t SteamAPICall_t;

// A user's 64-bit ID. Eight bytes, alignment 1, trivially copyable, so it is
// passed and returned exactly like a uint64_t.
#pragma pack(push, 1)
class CSteamID {
public:
	CSteamID() : m_id(0) {}
	explicit CSteamID(uint64_t id) : m_id(id) {}
	uint64_t ConvertToUint64() const { return m_id; }
	bool IsValid() const { return m_id != 0; }
	bool operator==(const CSteamID &o) const { return m_id == o.m_id; }
	bool operator!=(const CSteamID &o) const { return m_id != o.m_id; }

private:
	uint64_t m_id;
};
#pragma pack(pop)

enum EP2PSend {
	k_EP2PSendUnreliable = 0,
	k_EP2PSendUnreliableNoDelay = 1,
	k_EP2PSendReliable = 2,
	k_EP2PSendReliableWithBuffering = 3,
};

enum EP2PSessionError {
	k_EP2PSessionErrorNone = 0,
	k_EP2PSessionErrorNotRunningApp = 1,
	k_EP2PSessionErrorNoRightsToApp = 2,
	k_EP2PSessionErrorDestinationNotLoggedIn = 3,
	k_EP2PSessionErrorTimeout = 4,
};

// Callback payloads and structs are packed to 4 bytes on Linux.
#pragma pack(push, 4)

// Someone sent us a packet and we have no session with them yet: accept it
// with AcceptP2PSessionWithUser, or ignore it to refuse.
struct P2PSessionRequest_t {
	enum { k_iCallback = 1202 };
	CSteamID m_steamIDRemote;
};

// A session we opened (by sending) could not be established, or was lost.
struct P2PSessionConnectFail_t {
	enum { k_iCallback = 1203 };
	CSteamID m_steamIDRemote;
	uint8_t m_eP2PSessionError; // EP2PSessionError
};

struct P2PSessionState_t {
	uint8_t m_bConnectionActive;
	uint8_t m_bConnecting;
	uint8_t m_eP2PSessionError;
	uint8_t m_bUsingRelay;
	int32_t m_nBytesQueuedForSend;
	int32_t m_nPacketsQueuedForSend;
	uint32_t m_nRemoteIP;
	uint16_t m_nRemotePort;
};

#pragma pack(pop)

// ISteamNetworking, slots 0-7 (SteamNetworking005 and 006 agree on them).
// Steam interfaces have no virtual destructor: slot 0 is the first method.
class ISteamNetworking {
public:
	virtual bool SendP2PPacket(CSteamID remote, const void *data, uint32_t size, EP2PSend type, int channel) = 0;
	virtual bool IsP2PPacketAvailable(uint32_t *size, int channel) = 0;
	virtual bool ReadP2PPacket(void *dest, uint32_t cap, uint32_t *size, CSteamID *remote, int channel) = 0;
	virtual bool AcceptP2PSessionWithUser(CSteamID remote) = 0;
	virtual bool CloseP2PSessionWithUser(CSteamID remote) = 0;
	virtual bool CloseP2PChannelWithUser(CSteamID remote, int channel) = 0;
	virtual bool GetP2PSessionState(CSteamID remote, P2PSessionState_t *state) = 0;
	virtual bool AllowP2PPacketRelay(bool allow) = 0;
	// Slots 8-21 are the deprecated socket calls; not declared, never called.
};

// ISteamUser, slots 0-2 (the same in SteamUser008 to 023).
class ISteamUser {
public:
	virtual HSteamUser GetHSteamUser() = 0;
	virtual bool BLoggedOn() = 0;
	virtual CSteamID GetSteamID() = 0;
};

// A callback object: vtable at 0, flags at 8, callback ID at 12. The three
// virtual methods are slots 0, 1 and 2; SteamAPI_RunCallbacks calls slot 0.
class CCallbackBase {
public:
	CCallbackBase() : m_nCallbackFlags(0), m_iCallback(0) {}
	virtual void Run(void *param) = 0;
	virtual void Run(void *param, bool ioFailure, SteamAPICall_t call) = 0;
	virtual int GetCallbackSizeBytes() = 0;

protected:
	enum { k_ECallbackFlagsRegistered = 0x01, k_ECallbackFlagsGameServer = 0x02 };
	uint8_t m_nCallbackFlags;
	int m_iCallback;
};

extern "C" {
bool SteamAPI_Init();
void SteamAPI_Shutdown();
void SteamAPI_RunCallbacks();
void SteamAPI_RegisterCallback(CCallbackBase *callback, int id);
void SteamAPI_UnregisterCallback(CCallbackBase *callback);
HSteamUser SteamAPI_GetHSteamUser();

// The accessors of SDK 1.36 and earlier, exported by the library.
ISteamNetworking *SteamNetworking();
ISteamUser *SteamUser();

// Later SDKs ask for an interface by its version string instead, e.g.
// SteamInternal_FindOrCreateUserInterface(SteamAPI_GetHSteamUser(), "SteamNetworking006").
void *SteamInternal_FindOrCreateUserInterface(HSteamUser user, const char *version);
}

// SteamCallback<T, P> calls obj->method(P*) for every callback of type P, from
// inside SteamAPI_RunCallbacks, for as long as it lives: the SDK's
// STEAM_CALLBACK macro, written as a small template.
template <class T, class P>
class SteamCallback : public CCallbackBase {
public:
	typedef void (T::*Method)(P *);
	SteamCallback(T *obj, Method method) : m_obj(obj), m_method(method) { SteamAPI_RegisterCallback(this, P::k_iCallback); }
	~SteamCallback() { SteamAPI_UnregisterCallback(this); }
	SteamCallback(const SteamCallback &) = delete;
	SteamCallback &operator=(const SteamCallback &) = delete;

	void Run(void *param) override { (m_obj->*m_method)(static_cast<P *>(param)); }
	void Run(void *param, bool, SteamAPICall_t) override { Run(param); }
	int GetCallbackSizeBytes() override { return sizeof(P); }

private:
	T *m_obj;
	Method m_method;
};

#endif // STEAM_P2P_H

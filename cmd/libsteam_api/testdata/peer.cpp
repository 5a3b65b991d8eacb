// peer.cpp: a C++17 "legacy game" process for the drop-in library's
// threading, re-initialisation and Mono tests. It uses the Steam ABI the
// way a game compiled against an old SDK does: a CCallbackBase subclass
// registered during static initialisation and dispatched by
// SteamAPI_RunCallbacks, ISteamNetworking called through its vtable (the
// object found through SteamInternal_ContextInit, as SDK >= 1.43 headers
// inline every accessor) and through the flat API.
//
// Modes:
//
//   --echo [--hello ID] [--channels N]
//       Accepts every P2PSessionRequest from inside its handler and echoes
//       every packet it reads (channels 0..N-1) back to its sender on the
//       same channel, reliably. With --hello it first sends one reliable
//       greeting to ID on channel 0 (so that ID sees a session request).
//       Prints "ready <steamid>" once logged on, runs until stdin closes or
//       a "quit" line, shuts down and prints "echo done ...".
//
//   --stress --peer ID [--seconds S]
//       Prints "ready <steamid>", waits for a "go" line, then runs 8
//       threads at once for S seconds: 3 senders (numbered reliable
//       messages on channels 1, 2, 3), 2 readers (channels 1+2 and 3,
//       checking every message's sequence, sender and contents), 2 pollers
//       (IsP2PPacketAvailable, GetP2PSessionState, GetHSteamPipe) and one
//       thread calling SteamAPI_RunCallbacks in a loop. Senders end each
//       channel with an END message carrying the count; once both readers
//       have seen every END it prints "received ok|FAIL ...". On "quit" (or
//       stdin EOF) it stops the remaining threads, joins them, calls
//       SteamAPI_Shutdown and prints "stress ok|FAIL ..."; exit status 0
//       only if everything held.
//
//   --reinit [--peer ID]
//       Three init/shutdown cycles in one process (SteamAPI_Init,
//       SteamInternal_SteamAPI_Init, SteamAPI_InitFlat); in each: logged
//       on, GetSteamID, a loopback packet to itself, and with --peer a
//       packet echoed by ID (an --echo process). Prints "reinit ok|FAIL".
//
// Every mode also feeds the library bad input (NULL out-pointers, a NULL
// CallbackMsg_t, sizes of 0xFFFFFFFF, calls before init and after shutdown,
// with a NULL or stale interface pointer) and requires false/0 answers and
// no crash. Failures are printed to stderr as "FAIL file:line: ...".

#include "steam_abi.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

static std::atomic<int> g_fail{0};

#define CHECK(cond, ...)                                                           \
	do {                                                                           \
		if (!(cond)) {                                                             \
			if (g_fail.fetch_add(1) < 50) {                                        \
				std::fprintf(stderr, "FAIL %s:%d: (%s) ", __FILE__, __LINE__, #cond); \
				std::fprintf(stderr, __VA_ARGS__);                                 \
				std::fputc('\n', stderr);                                          \
			}                                                                      \
		}                                                                          \
	} while (0)

// A bool result must be a 32-bit 0 or 1 (CABI.md: some games read the whole
// register).
static bool B(sbool v, const char *what) {
	CHECK(v <= 1, "%s returned %#x, not a 32-bit 0 or 1", what, v);
	return v != 0;
}

static const uint64_t kSteamIDBase = 76561197960265728ull;
static const uint64_t kStranger = kSteamIDBase + 999999; // nobody plays it
static uint64_t g_self = 0;                              // P2PCOMPAT_STEAMID

static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void line(const char *fmt, ...) {
	static std::mutex mu;
	std::lock_guard<std::mutex> lock(mu);
	va_list ap;
	va_start(ap, fmt);
	std::vprintf(fmt, ap);
	va_end(ap);
	std::putchar('\n');
	std::fflush(stdout);
}

// ---- The SDK >= 1.43 accessor: SteamInternal_ContextInit ------------------

struct ContextBlock {
	void (*init)(void *ctx);
	uintptr_t counter;
	void *ctx;
};
static std::atomic<int> g_ctxInits{0};
static void netContextInit(void *ctx) {
	*static_cast<void **>(ctx) =
	    SteamInternal_FindOrCreateUserInterface(SteamAPI_GetHSteamUser(), "SteamNetworking006");
	g_ctxInits++;
}
static ContextBlock g_netBlock = {netContextInit, 0, nullptr};
static ISteamNetworking *Net() {
	return *static_cast<ISteamNetworking **>(SteamInternal_ContextInit(&g_netBlock));
}

// ---- Classic callbacks, registered during static initialisation -----------

static std::atomic<uint64_t> g_only{0}; // when set, requests from others are a failure

struct SessionRequestHandler : CCallbackBase {
	std::atomic<int> runs{0};
	void Run(void *param) override {
		auto *req = static_cast<P2PSessionRequest_t *>(param);
		uint64_t from = steam_id_of(req->steamIDRemote);
		runs++;
		uint64_t only = g_only.load();
		CHECK(only == 0 || from == only, "session request from %llu, expected %llu",
		      (unsigned long long)from, (unsigned long long)only);
		// Accept from inside the handler: the handler calls back into the
		// library while RunCallbacks is running.
		ISteamNetworking *net = Net();
		CHECK(net != nullptr, "no ISteamNetworking inside the request handler");
		if (net) CHECK(net->AcceptP2PSessionWithUser(CSteamID(from)), "Accept(%llu) false", (unsigned long long)from);
	}
	void Run(void *param, bool, SteamAPICall_t) override { Run(param); }
	int GetCallbackSizeBytes() override { return sizeof(P2PSessionRequest_t); }
};

struct ConnectFailHandler : CCallbackBase {
	std::atomic<int> runs{0};
	void Run(void *param) override {
		auto *f = static_cast<P2PSessionConnectFail_t *>(param);
		uint64_t who = steam_id_of(f->steamIDRemote);
		runs++;
		// Bad-input sends go to kStranger; a failure for anyone else is one.
		if (who != kStranger)
			CHECK(false, "P2PSessionConnectFail for %llu, error %d", (unsigned long long)who, f->eP2PSessionError);
	}
	void Run(void *param, bool, SteamAPICall_t) override { Run(param); }
	int GetCallbackSizeBytes() override { return sizeof(P2PSessionConnectFail_t); }
};

static SessionRequestHandler g_request;
static ConnectFailHandler g_connectFail;
static struct StaticRegistrar {
	StaticRegistrar() {
		// Before init, during static initialisation (CABI.md: must work).
		SteamAPI_RegisterCallback(&g_request, k_iP2PSessionRequest);
		SteamAPI_RegisterCallback(&g_connectFail, k_iP2PSessionConnectFail);
	}
} g_registrar;

// ---- Helpers --------------------------------------------------------------

static bool waitLoggedOn(std::chrono::seconds limit) {
	auto deadline = Clock::now() + limit;
	while (Clock::now() < deadline) {
		void *user = SteamAPI_SteamUser_v023();
		if (user && B(SteamAPI_ISteamUser_BLoggedOn(user), "BLoggedOn")) return true;
		SteamAPI_RunCallbacks();
		std::this_thread::sleep_for(5ms); // a game frame
	}
	return false;
}

// Sends data reliably, retrying while the send queue is full (C07).
static bool sendRetry(void *net, uint64_t to, const void *data, uint32_t size, int type, int channel,
                      std::chrono::seconds limit = std::chrono::seconds(10)) {
	auto deadline = Clock::now() + limit;
	while (!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, to, data, size, type, channel), "SendP2PPacket")) {
		if (Clock::now() >= deadline) return false;
		std::this_thread::sleep_for(200us);
	}
	return true;
}

// Waits, running callbacks, for one packet on channel and reads it.
static bool receiveOne(void *net, int channel, std::vector<uint8_t> &out, uint64_t &from,
                       std::chrono::seconds limit) {
	auto deadline = Clock::now() + limit;
	while (Clock::now() < deadline) {
		SteamAPI_RunCallbacks();
		uint32_t size = 0;
		if (B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, &size, channel), "IsP2PPacketAvailable")) {
			out.assign(size + 16, 0xEE);
			uint32_t got = 0;
			from = 0;
			bool ok = B(SteamAPI_ISteamNetworking_ReadP2PPacket(net, out.data(), (uint32_t)out.size(), &got, &from, channel),
			            "ReadP2PPacket");
			CHECK(ok, "ReadP2PPacket false after IsP2PPacketAvailable on channel %d", channel);
			CHECK(got == size, "read %u bytes, IsP2PPacketAvailable said %u", got, size);
			out.resize(got);
			return ok;
		}
		std::this_thread::sleep_for(1ms);
	}
	return false;
}

// ---- Bad input ------------------------------------------------------------

// Calls that must answer false/0 when the library is not initialised (before
// the first init, after a shutdown), through self (NULL, or the pointer a game
// kept from before the shutdown).
static void checkNotInitialised(const char *phase, void *self) {
	CHECK(SteamAPI_GetHSteamPipe() == 0, "%s: GetHSteamPipe non-zero", phase);
	CHECK(SteamAPI_GetHSteamUser() == 0, "%s: GetHSteamUser non-zero", phase);
	CHECK(GetHSteamPipe() == 0, "%s: GetHSteamPipe alias non-zero", phase);
	CHECK(GetHSteamUser() == 0, "%s: GetHSteamUser alias non-zero", phase);
	CHECK(SteamInternal_FindOrCreateUserInterface(0, "SteamNetworking006") == nullptr,
	      "%s: FindOrCreateUserInterface non-NULL", phase);
	CHECK(SteamInternal_FindOrCreateUserInterface(1, "SteamUser023") == nullptr,
	      "%s: FindOrCreateUserInterface(1) non-NULL", phase);
	uint8_t buf[64];
	const char hello[] = "nobody is listening";
	void *selves[2] = {nullptr, self};
	for (void *s : selves) {
		CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(s, kStranger, hello, sizeof hello, k_EP2PSendReliable, 0), "Send"),
		      "%s: SendP2PPacket(self %p) true", phase, s);
		uint32_t size = 777;
		CHECK(!B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(s, &size, 0), "IsAvailable"),
		      "%s: IsP2PPacketAvailable true", phase);
		CHECK(size == 0, "%s: IsP2PPacketAvailable left size %u", phase, size);
		CHECK(!B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(s, nullptr, 0), "IsAvailable"),
		      "%s: IsP2PPacketAvailable(NULL) true", phase);
		size = 777;
		uint64_t from = 777;
		CHECK(!B(SteamAPI_ISteamNetworking_ReadP2PPacket(s, buf, sizeof buf, &size, &from, 0), "Read"),
		      "%s: ReadP2PPacket true", phase);
		CHECK(size == 0 && from == 0, "%s: ReadP2PPacket left size %u remote %llu", phase, size,
		      (unsigned long long)from);
		CHECK(!B(SteamAPI_ISteamNetworking_ReadP2PPacket(s, nullptr, 0xFFFFFFFFu, nullptr, nullptr, 0), "Read"),
		      "%s: ReadP2PPacket(NULL...) true", phase);
		P2PSessionState_t st;
		CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(s, kStranger, &st), "State"),
		      "%s: GetP2PSessionState true", phase);
		CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(s, kStranger, nullptr), "State"),
		      "%s: GetP2PSessionState(NULL) true", phase);
		CHECK(!B(SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(s, kStranger), "Accept"),
		      "%s: AcceptP2PSessionWithUser true", phase);
		CHECK(!B(SteamAPI_ISteamNetworking_CloseP2PSessionWithUser(s, kStranger), "Close"),
		      "%s: CloseP2PSessionWithUser true", phase);
		CHECK(!B(SteamAPI_ISteamNetworking_CloseP2PChannelWithUser(s, kStranger, 0), "CloseChannel"),
		      "%s: CloseP2PChannelWithUser true", phase);
		CHECK(!B(SteamAPI_ISteamUser_BLoggedOn(s), "BLoggedOn"), "%s: BLoggedOn true", phase);
		CHECK(SteamAPI_ISteamUser_GetSteamID(s) == 0, "%s: GetSteamID non-zero", phase);
	}
	CallbackMsg_t msg;
	std::memset(&msg, 0x5A, sizeof msg);
	CHECK(!B(SteamAPI_ManualDispatch_GetNextCallback(1, &msg), "GetNextCallback"), "%s: GetNextCallback true", phase);
	CHECK(!B(SteamAPI_ManualDispatch_GetNextCallback(0, nullptr), "GetNextCallback"),
	      "%s: GetNextCallback(NULL) true", phase);
	SteamAPI_ManualDispatch_RunFrame(1);
	SteamAPI_ManualDispatch_FreeLastCallback(1);
	CHECK(!B(SteamAPI_ManualDispatch_GetAPICallResult(1, 12345, nullptr, 0, 0, nullptr), "GetAPICallResult"),
	      "%s: GetAPICallResult(NULL) true", phase);
	SteamAPI_RunCallbacks();
	SteamGameServer_RunCallbacks();
	SteamAPI_ReleaseCurrentThreadMemory();
}

// Bad arguments while initialised. Nothing is ever sent on channel 97.
static void checkBadArguments(void *net, HSteamPipe pipe) {
	const int quiet = 97;
	uint8_t buf[256];
	std::memset(buf, 1, sizeof buf);
	uint32_t size = 777;
	uint64_t from = 777;
	CHECK(!B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, nullptr, quiet), "IsAvailable"),
	      "IsP2PPacketAvailable(NULL) true");
	CHECK(!B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, &size, -1), "IsAvailable"),
	      "IsP2PPacketAvailable(channel -1) true");
	CHECK(size == 0, "IsP2PPacketAvailable(channel -1) left size %u", size);
	CHECK(!Net()->IsP2PPacketAvailable(nullptr, quiet), "vtable IsP2PPacketAvailable(NULL) true");
	CHECK(!B(SteamAPI_ISteamNetworking_ReadP2PPacket(net, nullptr, 100, &size, &from, quiet), "Read"),
	      "ReadP2PPacket(NULL dest) true");
	CHECK(!B(SteamAPI_ISteamNetworking_ReadP2PPacket(net, buf, sizeof buf, nullptr, nullptr, quiet), "Read"),
	      "ReadP2PPacket(NULL size, NULL remote) true");
	size = 777, from = 777;
	CHECK(!B(SteamAPI_ISteamNetworking_ReadP2PPacket(net, buf, 0xFFFFFFFFu, &size, &from, quiet), "Read"),
	      "ReadP2PPacket(cap 0xFFFFFFFF) true");
	CHECK(size == 0 && from == 0, "ReadP2PPacket(cap 0xFFFFFFFF) left size %u remote %llu", size,
	      (unsigned long long)from);
	CHECK(!B(SteamAPI_ISteamNetworking_ReadP2PPacket(net, buf, sizeof buf, &size, &from, -1), "Read"),
	      "ReadP2PPacket(channel -1) true");
	CHECK(!Net()->ReadP2PPacket(nullptr, 0xFFFFFFFFu, nullptr, nullptr, quiet), "vtable ReadP2PPacket(NULL) true");

	P2PSessionState_t st;
	CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, kStranger, nullptr), "State"),
	      "GetP2PSessionState(NULL) true");
	CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, 0, &st), "State"), "GetP2PSessionState(0) true");
	CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, kStranger + 1, &st), "State"),
	      "GetP2PSessionState(no session) true");
	CHECK(!Net()->GetP2PSessionState(CSteamID(kStranger), nullptr), "vtable GetP2PSessionState(NULL) true");

	// C03/C04: refused sends. None of them may start a session.
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, buf, 0xFFFFFFFFu, k_EP2PSendReliable, 0), "Send"),
	      "SendP2PPacket(size 0xFFFFFFFF) true");
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, buf, 0xFFFFFFFFu, k_EP2PSendUnreliable, 0), "Send"),
	      "SendP2PPacket(unreliable, size 0xFFFFFFFF) true");
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, nullptr, 16, k_EP2PSendReliable, 0), "Send"),
	      "SendP2PPacket(NULL data, 16) true");
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, 0, buf, 16, k_EP2PSendReliable, 0), "Send"),
	      "SendP2PPacket(SteamID 0) true");
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, buf, 16, 7, 0), "Send"),
	      "SendP2PPacket(type 7) true");
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, buf, 16, -1, 0), "Send"),
	      "SendP2PPacket(type -1) true");
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, buf, 16, k_EP2PSendReliable, -1), "Send"),
	      "SendP2PPacket(channel -1) true");
	std::vector<uint8_t> big(1201);
	CHECK(!B(SteamAPI_ISteamNetworking_SendP2PPacket(net, kStranger, big.data(), 1201, k_EP2PSendUnreliable, 0), "Send"),
	      "SendP2PPacket(unreliable 1201 bytes) true");
	CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, kStranger, &st), "State"),
	      "a refused send started a session with the stranger");
	CHECK(!B(SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(net, 0), "Accept"), "AcceptP2PSessionWithUser(0) true");
	CHECK(B(SteamAPI_ISteamNetworking_AllowP2PPacketRelay(net, 1), "AllowRelay"), "AllowP2PPacketRelay(true) false");

	CHECK(!B(SteamAPI_ManualDispatch_GetNextCallback(pipe, nullptr), "GetNextCallback"), "GetNextCallback(NULL) true");
	CHECK(!B(SteamAPI_ManualDispatch_GetAPICallResult(pipe, 0, nullptr, -1, 0, nullptr), "GetAPICallResult"),
	      "GetAPICallResult(0, NULL) true");
	uint8_t failed = 0x5A;
	CHECK(!B(SteamAPI_ManualDispatch_GetAPICallResult(pipe, 0xDEADBEEF, buf, -1, 0, &failed), "GetAPICallResult"),
	      "GetAPICallResult(unknown call, size -1) true");
}

// ---- Initialisation -------------------------------------------------------

static const char kVersions[] =
    "SteamUser023\0SteamFriends017\0SteamUtils010\0SteamMatchMaking009\0"
    "SteamNetworking006\0SteamUserStats012\0SteamApps008\0SteamRemoteStorage016\0";

enum InitKind { kInitClassic, kInitInternal, kInitFlat };

// Initialises, waits for the rendezvous, checks the handles and the user.
static bool startSteam(InitKind kind) {
	bool ok = false;
	if (kind == kInitClassic) {
		ok = B(SteamAPI_Init(), "SteamAPI_Init");
		CHECK(ok, "SteamAPI_Init false");
	} else {
		SteamErrMsg err;
		std::memset(err, 0x5A, sizeof err); // Steamworks.NET hands over an uninitialised buffer
		int r = kind == kInitInternal ? SteamInternal_SteamAPI_Init(kVersions, &err) : SteamAPI_InitFlat(&err);
		ok = r == k_ESteamAPIInitResult_OK;
		CHECK(memchr(err, 0, sizeof err) != nullptr, "init left the error buffer without a NUL");
		CHECK(ok, "init returned %d: %.200s", r, memchr(err, 0, sizeof err) ? err : "(no NUL)");
		if (ok) CHECK(err[0] == 0, "init succeeded but wrote error message \"%.200s\"", err);
		// Already initialised: OK at once; err may be NULL.
		r = kind == kInitInternal ? SteamInternal_SteamAPI_Init(kVersions, nullptr) : SteamAPI_InitFlat(nullptr);
		CHECK(r == k_ESteamAPIInitResult_OK, "second init (NULL err) returned %d", r);
	}
	if (!ok) return false;
	CHECK(SteamAPI_GetHSteamPipe() != 0, "GetHSteamPipe is 0 after init");
	CHECK(SteamAPI_GetHSteamUser() != 0, "GetHSteamUser is 0 after init");
	if (!waitLoggedOn(std::chrono::seconds(15))) {
		CHECK(false, "not logged on within 15 s");
		return false;
	}
	auto *user = static_cast<ISteamUser *>(SteamAPI_SteamUser_v023());
	CHECK(user != nullptr, "SteamAPI_SteamUser_v023 NULL");
	if (!user) return false;
	CHECK(user->BLoggedOn(), "vtable BLoggedOn false");
	uint64_t id = user->GetSteamID().ConvertToUint64();
	CHECK(id == g_self, "vtable GetSteamID %llu, P2PCOMPAT_STEAMID %llu", (unsigned long long)id,
	      (unsigned long long)g_self);
	CHECK(SteamAPI_ISteamUser_GetSteamID(user) == g_self, "flat GetSteamID differs");
	CHECK(Net() != nullptr, "ISteamNetworking through SteamInternal_ContextInit is NULL");
	CHECK(SteamNetworking() != nullptr, "SteamNetworking() NULL");
	CHECK(SteamAPI_SteamNetworking_v006() != nullptr, "SteamAPI_SteamNetworking_v006() NULL");
	return Net() != nullptr;
}

// ---- --echo -----------------------------------------------------------------

static int runEcho(uint64_t hello, int channels) {
	checkNotInitialised("before init", nullptr);
	if (!startSteam(kInitClassic)) return 1;
	void *net = SteamAPI_SteamNetworking_v006();
	checkBadArguments(net, SteamAPI_GetHSteamPipe());

	std::atomic<bool> quit{false};
	std::thread input([&] {
		std::string s;
		while (std::getline(std::cin, s) && s != "quit") {
		}
		quit = true;
	});
	if (hello) {
		static const char greeting[] = "hello from the C++ game";
		CHECK(sendRetry(net, hello, greeting, sizeof greeting, k_EP2PSendReliable, 0), "hello send refused");
	}
	line("ready %llu", (unsigned long long)g_self);

	ISteamNetworking *cpp = Net();
	std::vector<uint8_t> buf;
	long echoed = 0, bytes = 0;
	while (!quit) {
		SteamAPI_RunCallbacks();
		for (int ch = 0; ch < channels; ch++) {
			uint32_t size = 0;
			while (cpp->IsP2PPacketAvailable(&size, ch)) {
				buf.resize(size + 1);
				uint32_t got = 0;
				CSteamID from;
				if (!cpp->ReadP2PPacket(buf.data(), (uint32_t)buf.size(), &got, &from, ch)) {
					CHECK(false, "ReadP2PPacket false after IsP2PPacketAvailable");
					break;
				}
				CHECK(got == size, "read %u, available said %u", got, size);
				// Echo through the vtable, retrying on backpressure.
				auto deadline = Clock::now() + 10s;
				while (!cpp->SendP2PPacket(from, buf.data(), got, k_EP2PSendReliable, ch)) {
					if (Clock::now() > deadline) {
						CHECK(false, "echo send refused for 10 s");
						break;
					}
					std::this_thread::sleep_for(200us);
				}
				echoed++;
				bytes += got;
			}
		}
		std::this_thread::sleep_for(1ms); // a game frame
	}
	input.join();
	SteamAPI_Shutdown();
	checkNotInitialised("after shutdown", net);
	line("echo done echoed=%ld bytes=%ld requests=%d failures=%d", echoed, bytes, g_request.runs.load(),
	     g_fail.load());
	return g_fail.load() == 0 ? 0 : 1;
}

// ---- --stress ---------------------------------------------------------------

static const uint32_t kMagic = 0x50324331;
struct Header {
	uint32_t magic, channel, seq, kind, len, sum;
};
enum { kData = 0, kEnd = 1 };
static const uint32_t kMaxMsg = 64 * 1024;

static uint8_t pattern(uint32_t channel, uint32_t seq, uint32_t i) {
	return (uint8_t)(seq * 31 + i * 7 + channel * 101);
}
static uint32_t msgSize(uint32_t seq) {
	if (seq % 250 == 249) return kMaxMsg; // fragmented
	return (uint32_t)sizeof(Header) + (seq * 131) % 1400;
}

struct StressCounters {
	std::atomic<long> sent{0}, received{0}, backpressure{0}, polls{0}, available{0}, runs{0}, states{0};
};

static void senderThread(void *net, uint64_t peer, int channel, Clock::time_point until, StressCounters &c,
                         std::atomic<bool> &abort) {
	std::vector<uint8_t> buf(kMaxMsg);
	uint32_t seq = 0;
	auto send = [&](uint32_t size, int type) {
		auto refusedSince = Clock::time_point();
		while (!abort) {
			if (B(SteamAPI_ISteamNetworking_SendP2PPacket(net, peer, buf.data(), size, type, channel), "Send"))
				return true;
			c.backpressure++;
			if (refusedSince == Clock::time_point()) refusedSince = Clock::now();
			if (Clock::now() - refusedSince > 10s) {
				CHECK(false, "channel %d: SendP2PPacket refused seq %u for 10 s", channel, seq);
				abort = true;
				return false;
			}
			std::this_thread::sleep_for(100us);
		}
		return false;
	};
	while (Clock::now() < until && !abort) {
		uint32_t size = msgSize(seq);
		Header h = {kMagic, (uint32_t)channel, seq, kData, size, 0};
		for (uint32_t i = sizeof h; i < size; i++) buf[i] = pattern(channel, seq, i);
		std::memcpy(buf.data(), &h, sizeof h);
		// Reliable and ReliableWithBuffering are one ordered stream (C14).
		int type = seq % 5 == 4 ? k_EP2PSendReliableWithBuffering : k_EP2PSendReliable;
		if (!send(size, type)) return;
		seq++;
		c.sent++;
	}
	Header end = {kMagic, (uint32_t)channel, seq, kEnd, (uint32_t)sizeof(Header), 0};
	std::memcpy(buf.data(), &end, sizeof end);
	send(sizeof end, k_EP2PSendReliable);
}

static void readerThread(int which, void *net, uint64_t peer, std::vector<int> channels, Clock::time_point until,
                         StressCounters &c, std::atomic<bool> &abort) {
	std::vector<uint32_t> expect(channels.size(), 0);
	std::vector<bool> ended(channels.size(), false);
	std::vector<uint8_t> buf(kMaxMsg + 64);
	ISteamNetworking *cpp = Net();
	size_t open = channels.size();
	while (open > 0 && !abort) {
		if (Clock::now() > until) {
			for (size_t k = 0; k < channels.size(); k++)
				CHECK(ended[k], "channel %d: no END after %u messages", channels[k], expect[k]);
			return;
		}
		bool any = false;
		for (size_t k = 0; k < channels.size(); k++) {
			int ch = channels[k];
			uint32_t avail = 0;
			bool ok = which == 0 ? cpp->IsP2PPacketAvailable(&avail, ch)
			                     : B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, &avail, ch), "IsAvailable");
			if (!ok) continue;
			any = true;
			uint32_t got = 0;
			uint64_t from = 0;
			if (which == 0) {
				CSteamID f;
				ok = cpp->ReadP2PPacket(buf.data(), (uint32_t)buf.size(), &got, &f, ch);
				from = f.ConvertToUint64();
			} else {
				ok = B(SteamAPI_ISteamNetworking_ReadP2PPacket(net, buf.data(), (uint32_t)buf.size(), &got, &from, ch),
				       "Read");
			}
			// This thread is the only reader of ch.
			CHECK(ok, "channel %d: ReadP2PPacket false after IsP2PPacketAvailable", ch);
			if (!ok) continue;
			CHECK(got == avail, "channel %d: read %u bytes, IsP2PPacketAvailable said %u", ch, got, avail);
			CHECK(from == peer, "channel %d: packet from %llu", ch, (unsigned long long)from);
			Header h;
			if (got < sizeof h) {
				CHECK(false, "channel %d: %u-byte packet", ch, got);
				continue;
			}
			std::memcpy(&h, buf.data(), sizeof h);
			CHECK(h.magic == kMagic && h.channel == (uint32_t)ch && h.len == got,
			      "channel %d: bad header magic %#x channel %u len %u (read %u)", ch, h.magic, h.channel, h.len, got);
			if (ended[k]) {
				CHECK(false, "channel %d: message seq %u after END", ch, h.seq);
				continue;
			}
			if (h.kind == kEnd) {
				CHECK(h.seq == expect[k], "channel %d: END says %u messages, received %u in order", ch, h.seq,
				      expect[k]);
				ended[k] = true;
				open--;
				continue;
			}
			if (h.seq != expect[k]) {
				CHECK(false, "channel %d: seq %u, expected %u (%s)", ch, h.seq, expect[k],
				      h.seq < expect[k] ? "duplicate or reordered" : "lost");
				expect[k] = h.seq + 1;
				continue;
			}
			bool intact = got == msgSize(h.seq);
			for (uint32_t i = sizeof h; intact && i < got; i++) intact = buf[i] == pattern(ch, h.seq, i);
			CHECK(intact, "channel %d: seq %u corrupted (%u bytes)", ch, h.seq, got);
			expect[k]++;
			c.received++;
		}
		if (!any) sched_yield();
	}
}

static void pollerThread(int which, void *net, uint64_t peer, std::atomic<bool> &stop, StressCounters &c) {
	while (!stop) {
		for (int ch = 1; ch <= 4; ch++) {
			uint32_t size = 0;
			bool ok = which == 0 ? Net()->IsP2PPacketAvailable(&size, ch)
			                     : B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, &size, ch), "IsAvailable");
			c.polls++;
			if (ok) {
				c.available++;
				CHECK(size >= sizeof(Header) && size <= kMaxMsg, "channel %d: available size %u", ch, size);
				CHECK(ch != 4, "a packet is available on channel 4, where nothing is sent");
			} else {
				CHECK(size == 0, "IsP2PPacketAvailable false with size %u", size);
			}
		}
		P2PSessionState_t st;
		std::memset(&st, 0xEE, sizeof st);
		if (B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, peer, &st), "State")) {
			c.states++;
			CHECK(st.m_bConnectionActive <= 1 && st.m_bConnecting <= 1 && st.m_bUsingRelay <= 1,
			      "session state flags %u %u %u", st.m_bConnectionActive, st.m_bConnecting, st.m_bUsingRelay);
			CHECK(st.m_nBytesQueuedForSend >= 0 && st.m_nPacketsQueuedForSend >= 0, "queued %d bytes %d packets",
			      st.m_nBytesQueuedForSend, st.m_nPacketsQueuedForSend);
		}
		CHECK(SteamAPI_GetHSteamPipe() != 0, "GetHSteamPipe 0 while initialised");
		std::this_thread::sleep_for(50us);
	}
}

static int runStress(uint64_t peer, int seconds) {
	if (!peer) {
		std::fprintf(stderr, "--stress needs --peer\n");
		return 2;
	}
	checkNotInitialised("before init", nullptr);
	g_only = peer;
	if (!startSteam(kInitClassic)) return 1;
	void *net = SteamAPI_SteamNetworking_v006();
	checkBadArguments(net, SteamAPI_GetHSteamPipe());
	line("ready %llu", (unsigned long long)g_self);
	std::string s;
	if (!std::getline(std::cin, s) || s != "go") {
		std::fprintf(stderr, "no go line\n");
		return 2;
	}

	StressCounters c;
	std::atomic<bool> abort{false}, stopPollers{false}, stopCallbacks{false};
	auto start = Clock::now();
	auto until = start + std::chrono::seconds(seconds);
	auto readUntil = until + 15s;
	std::vector<std::thread> workers;
	for (int ch = 1; ch <= 3; ch++)
		workers.emplace_back(senderThread, net, peer, ch, until, std::ref(c), std::ref(abort));
	workers.emplace_back(readerThread, 0, net, peer, std::vector<int>{1, 2}, readUntil, std::ref(c), std::ref(abort));
	workers.emplace_back(readerThread, 1, net, peer, std::vector<int>{3}, readUntil, std::ref(c), std::ref(abort));
	std::vector<std::thread> pollers;
	for (int i = 0; i < 2; i++) pollers.emplace_back(pollerThread, i, net, peer, std::ref(stopPollers), std::ref(c));
	std::thread callbacks([&] {
		while (!stopCallbacks) {
			SteamAPI_RunCallbacks();
			c.runs++;
			std::this_thread::sleep_for(200us);
		}
	});
	for (auto &w : workers) w.join();
	double took = std::chrono::duration<double>(Clock::now() - start).count();
	line("received %s sent=%ld received=%ld seconds=%.2f", g_fail.load() == 0 ? "ok" : "FAIL", c.sent.load(),
	     c.received.load(), took);

	// Stay up, still polling and dispatching, until the test says that the
	// peer has read everything too.
	while (std::getline(std::cin, s) && s != "quit") {
	}
	stopPollers = true;
	for (auto &p : pollers) p.join();
	stopCallbacks = true;
	callbacks.join();
	SteamAPI_Shutdown();
	checkNotInitialised("after shutdown", net);
	int failures = g_fail.load();
	line("stress %s sent=%ld received=%ld backpressure=%ld polls=%ld available=%ld states=%ld runcallbacks=%ld "
	     "requests=%d failures=%d",
	     failures == 0 ? "ok" : "FAIL", c.sent.load(), c.received.load(), c.backpressure.load(), c.polls.load(),
	     c.available.load(), c.states.load(), c.runs.load(), g_request.runs.load(), failures);
	return failures == 0 ? 0 : 1;
}

// ---- --reinit ---------------------------------------------------------------

static void exchange(int cycle, uint64_t peer) {
	void *net = SteamAPI_SteamNetworking_v006();
	std::vector<uint8_t> got;
	uint64_t from = 0;

	// C05: a packet to ourselves loops back.
	char loop[64];
	int n = std::snprintf(loop, sizeof loop, "loopback in cycle %d", cycle);
	CHECK(sendRetry(net, g_self, loop, (uint32_t)n, k_EP2PSendReliable, 5), "cycle %d: loopback send refused", cycle);
	auto deadline = Clock::now() + 10s;
	uint32_t size = 0;
	while (!B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, &size, 5), "IsAvailable") && Clock::now() < deadline) {
		SteamAPI_RunCallbacks();
		std::this_thread::sleep_for(1ms);
	}
	// A packet waits: NULL out-pointers must still not crash.
	B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(net, nullptr, 5), "IsAvailable(NULL)");
	P2PSessionState_t st;
	B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, g_self, &st), "State(self)");
	CHECK(!B(SteamAPI_ISteamNetworking_GetP2PSessionState(net, g_self, nullptr), "State"),
	      "GetP2PSessionState(self, NULL) true");
	CHECK(receiveOne(net, 5, got, from, std::chrono::seconds(10)), "cycle %d: no loopback packet", cycle);
	CHECK(got.size() == (size_t)n && std::memcmp(got.data(), loop, n) == 0 && from == g_self,
	      "cycle %d: loopback packet wrong (%zu bytes from %llu)", cycle, got.size(), (unsigned long long)from);

	if (!peer) return;
	char msg[64];
	n = std::snprintf(msg, sizeof msg, "reinit cycle %d", cycle);
	CHECK(sendRetry(net, peer, msg, (uint32_t)n, k_EP2PSendReliable, 1), "cycle %d: send to peer refused", cycle);
	bool ok = receiveOne(net, 1, got, from, std::chrono::seconds(15));
	CHECK(ok, "cycle %d: no echo from %llu within 15 s", cycle, (unsigned long long)peer);
	if (ok)
		CHECK(got.size() == (size_t)n && std::memcmp(got.data(), msg, n) == 0 && from == peer,
		      "cycle %d: echo wrong (%zu bytes from %llu)", cycle, got.size(), (unsigned long long)from);
}

static int runReinit(uint64_t peer) {
	checkNotInitialised("before init", nullptr);
	g_only = peer;
	InitKind kinds[3] = {kInitClassic, kInitInternal, kInitFlat};
	void *stale = nullptr;
	int cycles = 0;
	for (int cycle = 1; cycle <= 3; cycle++) {
		int before = g_ctxInits.load();
		if (!startSteam(kinds[cycle - 1])) break;
		CHECK(g_ctxInits.load() == before + 1, "cycle %d: SteamInternal_ContextInit ran the init %d times",
		      cycle, g_ctxInits.load() - before);
		void *net = SteamAPI_SteamNetworking_v006();
		if (cycle == 1) checkBadArguments(net, SteamAPI_GetHSteamPipe());
		exchange(cycle, peer);
		stale = net;

		// A game that restarts Steam unregisters its callbacks before the
		// shutdown and registers them again while Steam is down.
		SteamAPI_UnregisterCallback(&g_request);
		CHECK((g_request.m_nCallbackFlags & CCallbackBase::k_ECallbackFlagsRegistered) == 0,
		      "UnregisterCallback left the registered bit");
		SteamAPI_UnregisterCallback(&g_request); // again: a no-op
		SteamAPI_Shutdown();
		checkNotInitialised("after shutdown", stale);
		SteamAPI_Shutdown(); // twice: harmless
		SteamAPI_RegisterCallback(&g_request, k_iP2PSessionRequest);
		CHECK((g_request.m_nCallbackFlags & CCallbackBase::k_ECallbackFlagsRegistered) != 0 &&
		          g_request.m_iCallback == k_iP2PSessionRequest,
		      "RegisterCallback between shutdown and init: flags %#x id %d", g_request.m_nCallbackFlags,
		      g_request.m_iCallback);
		cycles = cycle;
	}
	int failures = g_fail.load();
	line("reinit %s cycles=%d requests=%d failures=%d", failures == 0 && cycles == 3 ? "ok" : "FAIL", cycles,
	     g_request.runs.load(), failures);
	return failures == 0 && cycles == 3 ? 0 : 1;
}

// ---- main -------------------------------------------------------------------

int main(int argc, char **argv) {
	std::string mode;
	uint64_t peer = 0, hello = 0;
	int seconds = 4, channels = 8;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto next = [&]() -> const char * {
			if (i + 1 >= argc) {
				std::fprintf(stderr, "%s needs a value\n", a.c_str());
				std::exit(2);
			}
			return argv[++i];
		};
		if (a == "--echo" || a == "--stress" || a == "--reinit")
			mode = a;
		else if (a == "--peer")
			peer = std::strtoull(next(), nullptr, 10);
		else if (a == "--hello")
			hello = std::strtoull(next(), nullptr, 10);
		else if (a == "--seconds")
			seconds = std::atoi(next());
		else if (a == "--channels")
			channels = std::atoi(next());
		else {
			std::fprintf(stderr, "unknown argument %s\n", a.c_str());
			return 2;
		}
	}
	const char *self = std::getenv("P2PCOMPAT_STEAMID");
	g_self = self ? std::strtoull(self, nullptr, 10) : 0;
	if (g_self == 0) {
		std::fprintf(stderr, "P2PCOMPAT_STEAMID is not set\n");
		return 2;
	}
	// Registered during static initialisation, before any init.
	CHECK((g_request.m_nCallbackFlags & CCallbackBase::k_ECallbackFlagsRegistered) != 0 &&
	          g_request.m_iCallback == k_iP2PSessionRequest,
	      "static RegisterCallback: flags %#x id %d", g_request.m_nCallbackFlags, g_request.m_iCallback);
	if (mode == "--echo") return runEcho(hello, channels);
	if (mode == "--stress") return runStress(peer, seconds);
	if (mode == "--reinit") return runReinit(peer);
	std::fprintf(stderr, "usage: peer --echo [--hello ID] | --stress --peer ID [--seconds S] | --reinit [--peer ID]\n");
	return 2;
}

// legacygame: the project's own "legacy game" for the C ABI tests. It is a
// line-oriented command interpreter over the Steam ABI of steam_abi.h: one
// command a line on stdin, exactly one reply line on stdout ("ok ..." or
// "err ..."), flushed after each.
//
//   legacygame --api vtable|client|flat|accessors --dispatch classic|manual
//
// --api chooses how ISteamNetworking is reached and called:
//   vtable     SteamInternal_FindOrCreateUserInterface(user, "SteamNetworking006"),
//              C++ virtual calls
//   client     SteamInternal_CreateInterface("SteamClient017"), slot 16
//              GetISteamNetworking(user, pipe, "SteamNetworking006"), virtual calls
//   flat       SteamAPI_SteamNetworking_v006() and SteamAPI_ISteamNetworking_*
//   accessors  the SDK <= 1.36 exported SteamNetworking() (SteamNetworking005),
//              SteamUser(), SteamUtils(), virtual calls
// --dispatch chooses how callbacks arrive:
//   classic    CCallbackBase objects registered with SteamAPI_RegisterCallback
//              (the first ones during static initialisation, before init),
//              run by SteamAPI_RunCallbacks; init with SteamAPI_Init
//   manual     SteamAPI_ManualDispatch_*, CallbackMsg_t; init with
//              SteamInternal_SteamAPI_Init(versions, &err)
//
// At start it prints one line, "ready key=value ..." or "fail ...".
//
// Commands (SteamIDs in decimal):
//   send <id> <type> <channel> <size> [seed]   pattern payload; ok <bool>
//   sendt <id> <type> <channel> <text>         text payload; ok <bool>
//   avail <channel>                  ok <bool> <size>
//   read <channel> <cap>             ok <bool> <size> <remote> <fnv1a64> <hex|->
//   accept|close <id>                ok <bool>
//   closechan <id> <channel>         ok <bool>
//   state <id>                       ok <bool> <active> <connecting> <error>
//                                    <relay> <bytes> <packets> <ip> <port>
//   relay 0|1                        ok <bool> (AllowP2PPacketRelay)
//   pump                             one RunCallbacks, or RunFrame and the
//                                    GetNextCallback loop; ok <events...>
//   pumpthread                       the same on a new thread, joined
//   autoaccept on|off                the request handler accepts, from inside
//   reenter on|off                   the request handler calls RunCallbacks
//                                    (classic) or RunFrame (manual) re-entrantly
//   handler add                      classic: one more 1202 handler; ok <index>
//   handler remove <index>           classic: unregister it; ok <flags>
//   steamid                          ok <steamid> <loggedon> <appid>
//   hsteam                           ok <user> <pipe>
//   deprecated                       slots 8, 9, 21; ok <v8> <v9> <v21>
//   sleep <ms>                       the game loop stalls; ok
//   violations                       ok <count> <what...>
//   quit                             SteamAPI_Shutdown, then exit 0
//
// Events in a pump reply: "1202:<id>" and "1203:<id>:<err>" from the first
// handler of each kind, "h<n>:1202:<id>" from added handler n, "<cb>/<size>"
// for any other callback (manual dispatch delivers every event). A reply
// token "VIOLATION:<what>" means the library broke the contract: a handler
// ran outside the pump or on another thread, a bool result was not 0 or 1, a
// write overran its buffer, a payload had the wrong size.
//
// Payloads: byte i of the pattern for seed s is (i*31 + s*7 + i>>9) mod 256;
// reads report the FNV-1a 64 hash of what they got, and the bytes in hex when
// there are at most 64.

#include "steam_abi.h"

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <unistd.h>

static_assert(sizeof(P2PSessionState_t) == 20, "P2PSessionState_t is 20 bytes");
static_assert(sizeof(CallbackMsg_t) == 20, "CallbackMsg_t is 20 bytes");
static_assert(sizeof(P2PSessionConnectFail_t) == 9, "P2PSessionConnectFail_t is 9 bytes");

enum Api { API_VTABLE, API_CLIENT, API_FLAT, API_ACCESSORS };
static Api g_api = API_VTABLE;
static bool g_manual = false;

static ISteamNetworking *g_vt = nullptr; // vtable, client, accessors
static void *g_flat = nullptr;           // flat

// Violations of the contract, reported in pump replies and by "violations".
static std::mutex g_mu;
static std::vector<std::string> g_events;     // tokens of the pump in progress
static std::vector<std::string> g_violations; // all of them, ever
static std::vector<std::string> g_newViolations;

static void violation(const std::string &what) {
	std::lock_guard<std::mutex> l(g_mu);
	g_violations.push_back(what);
	g_newViolations.push_back(what);
}

static void event(const std::string &tok) {
	std::lock_guard<std::mutex> l(g_mu);
	g_events.push_back(tok);
}

// Game code may run only inside a pump, on the pumping thread (C60).
static std::atomic<bool> g_inPump{false};
static std::thread::id g_pumpThread;
static std::thread::id g_mainThread;

static void checkGameCodeContext(const char *where) {
	if (!g_inPump.load()) {
		violation(std::string("outside-pump:") + where);
	} else if (std::this_thread::get_id() != g_pumpThread) {
		violation(std::string("wrong-thread:") + where);
	}
}

// A flat bool result is read as the whole 32-bit register (CABI: 0 or 1).
static bool B(sbool v, const char *fn) {
	if (v > 1) {
		char buf[96];
		snprintf(buf, sizeof buf, "badbool:%s:0x%x", fn, v);
		violation(buf);
	}
	return v != 0;
}

// The eight methods through the chosen binding.
static bool netSend(uint64_t to, const void *data, uint32_t size, int type, int channel) {
	if (g_vt) return g_vt->SendP2PPacket(CSteamID(to), data, size, type, channel);
	return B(SteamAPI_ISteamNetworking_SendP2PPacket(g_flat, to, data, size, type, channel), "SendP2PPacket");
}
static bool netAvail(uint32_t *size, int channel) {
	if (g_vt) return g_vt->IsP2PPacketAvailable(size, channel);
	return B(SteamAPI_ISteamNetworking_IsP2PPacketAvailable(g_flat, size, channel), "IsP2PPacketAvailable");
}
static bool netRead(void *dest, uint32_t cap, uint32_t *size, uint64_t *from, int channel) {
	if (g_vt) {
		CSteamID id;
		bool ok = g_vt->ReadP2PPacket(dest, cap, size, &id, channel);
		*from = id.ConvertToUint64();
		return ok;
	}
	return B(SteamAPI_ISteamNetworking_ReadP2PPacket(g_flat, dest, cap, size, from, channel), "ReadP2PPacket");
}
static bool netAccept(uint64_t id) {
	if (g_vt) return g_vt->AcceptP2PSessionWithUser(CSteamID(id));
	return B(SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(g_flat, id), "AcceptP2PSessionWithUser");
}
static bool netClose(uint64_t id) {
	if (g_vt) return g_vt->CloseP2PSessionWithUser(CSteamID(id));
	return B(SteamAPI_ISteamNetworking_CloseP2PSessionWithUser(g_flat, id), "CloseP2PSessionWithUser");
}
static bool netCloseChan(uint64_t id, int channel) {
	if (g_vt) return g_vt->CloseP2PChannelWithUser(CSteamID(id), channel);
	return B(SteamAPI_ISteamNetworking_CloseP2PChannelWithUser(g_flat, id, channel), "CloseP2PChannelWithUser");
}
static bool netState(uint64_t id, P2PSessionState_t *st) {
	if (g_vt) return g_vt->GetP2PSessionState(CSteamID(id), st);
	return B(SteamAPI_ISteamNetworking_GetP2PSessionState(g_flat, id, st), "GetP2PSessionState");
}
static bool netRelay(bool allow) {
	if (g_vt) return g_vt->AllowP2PPacketRelay(allow);
	return B(SteamAPI_ISteamNetworking_AllowP2PPacketRelay(g_flat, allow ? 1 : 0), "AllowP2PPacketRelay");
}

static std::atomic<bool> g_autoAccept{false};
static std::atomic<bool> g_reenter{false};

static void reenter() {
	if (!g_reenter.load()) return;
	// A re-entrant pump must return at once (CABI), not deadlock or recurse.
	if (g_manual) {
		SteamAPI_ManualDispatch_RunFrame(SteamAPI_GetHSteamPipe());
	} else {
		SteamAPI_RunCallbacks();
	}
}

static std::string u64(uint64_t v) {
	char b[32];
	snprintf(b, sizeof b, "%" PRIu64, v);
	return b;
}

// The request handlers of classic dispatch: index 1 is registered during
// static initialisation, more are added by "handler add" (C61).
class RequestHandler : public CCallbackBase {
public:
	explicit RequestHandler(int index) : index_(index) {}
	void Run(void *param) override {
		checkGameCodeContext("Run(1202)");
		uint64_t id = steam_id_of(static_cast<P2PSessionRequest_t *>(param)->steamIDRemote);
		if (index_ == 1) {
			event("1202:" + u64(id));
			if (g_autoAccept.load() && !netAccept(id)) violation("accept-in-handler-false");
			reenter();
		} else {
			event("h" + std::to_string(index_) + ":1202:" + u64(id));
		}
	}
	void Run(void *, bool, SteamAPICall_t) override { violation("slot1-called:1202"); }
	int GetCallbackSizeBytes() override {
		if (std::this_thread::get_id() != g_mainThread && !g_inPump.load()) violation("size-on-library-thread");
		return sizeof(P2PSessionRequest_t);
	}

private:
	int index_;
};

class FailHandler : public CCallbackBase {
public:
	void Run(void *param) override {
		checkGameCodeContext("Run(1203)");
		auto *f = static_cast<P2PSessionConnectFail_t *>(param);
		event("1203:" + u64(steam_id_of(f->steamIDRemote)) + ":" + std::to_string(f->eP2PSessionError));
	}
	void Run(void *, bool, SteamAPICall_t) override { violation("slot1-called:1203"); }
	int GetCallbackSizeBytes() override {
		if (std::this_thread::get_id() != g_mainThread && !g_inPump.load()) violation("size-on-library-thread");
		return sizeof(P2PSessionConnectFail_t);
	}
};

static RequestHandler g_request1(1);
static FailHandler g_fail1;
static std::vector<RequestHandler *> g_extra; // index i+2
static bool g_preRegistered = false;

// Classic games register callbacks before SteamAPI_Init, C++ statics during
// static initialisation: so do we, from the constructor of a static object
// defined after the handlers (so constructed after them), which reads the
// program's arguments from /proc/self/cmdline.
static struct EarlyRegistration {
	EarlyRegistration() {
		g_mainThread = std::this_thread::get_id();
		FILE *f = fopen("/proc/self/cmdline", "rb");
		if (!f) return;
		std::vector<std::string> args;
		std::string cur;
		int ch;
		while ((ch = fgetc(f)) != EOF) {
			if (ch == 0) {
				args.push_back(cur);
				cur.clear();
			} else {
				cur += char(ch);
			}
		}
		fclose(f);
		for (size_t i = 1; i + 1 < args.size(); i++) {
			if (args[i] == "--dispatch" && args[i + 1] == "classic") {
				SteamAPI_RegisterCallback(&g_request1, k_iP2PSessionRequest);
				SteamAPI_RegisterCallback(&g_fail1, k_iP2PSessionConnectFail);
				g_preRegistered = true;
			}
		}
	}
} g_earlyRegistration;

static std::string hexOf(const uint8_t *p, uint32_t n) {
	static const char *d = "0123456789abcdef";
	std::string s;
	for (uint32_t i = 0; i < n; i++) {
		s += d[p[i] >> 4];
		s += d[p[i] & 15];
	}
	return s;
}

static uint64_t fnv1a(const uint8_t *p, uint32_t n) {
	uint64_t h = 14695981039346656037ULL;
	for (uint32_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static std::vector<uint8_t> pattern(uint32_t size, uint64_t seed) {
	std::vector<uint8_t> b(size);
	for (uint64_t i = 0; i < size; i++) b[i] = uint8_t(i * 31 + seed * 7 + (i >> 9));
	return b;
}

// The manual-dispatch loop: every event, in order, inside FreeLastCallback
// brackets; the request "handler" accepts there when asked to.
static void manualPump() {
	HSteamPipe pipe = SteamAPI_GetHSteamPipe();
	SteamAPI_ManualDispatch_RunFrame(pipe);
	for (int n = 0; n < 100000; n++) {
		// 20 bytes are the message; 4 bytes of canary catch a 24-byte write.
		uint8_t raw[24];
		memset(raw, 0xA5, sizeof raw);
		CallbackMsg_t *msg = reinterpret_cast<CallbackMsg_t *>(raw);
		if (!B(SteamAPI_ManualDispatch_GetNextCallback(pipe, msg), "GetNextCallback")) break;
		for (int i = 20; i < 24; i++) {
			if (raw[i] != 0xA5) {
				violation("CallbackMsg_t-overrun");
				break;
			}
		}
		int cb = msg->m_iCallback;
		if (cb == k_iP2PSessionRequest) {
			if (msg->m_cubParam != (int)sizeof(P2PSessionRequest_t) || !msg->m_pubParam) {
				violation("size:1202:" + std::to_string(msg->m_cubParam));
			} else {
				uint64_t id = steam_id_of(msg->m_pubParam);
				event("1202:" + u64(id));
				if (g_autoAccept.load() && !netAccept(id)) violation("accept-in-handler-false");
				reenter();
			}
		} else if (cb == k_iP2PSessionConnectFail) {
			if (msg->m_cubParam != (int)sizeof(P2PSessionConnectFail_t) || !msg->m_pubParam) {
				violation("size:1203:" + std::to_string(msg->m_cubParam));
			} else {
				event("1203:" + u64(steam_id_of(msg->m_pubParam)) + ":" + std::to_string(msg->m_pubParam[8]));
			}
		} else {
			event(std::to_string(cb) + "/" + std::to_string(msg->m_cubParam));
		}
		SteamAPI_ManualDispatch_FreeLastCallback(pipe);
	}
}

// pump runs one dispatch round on the calling thread and returns the reply.
static std::string pump() {
	{
		std::lock_guard<std::mutex> l(g_mu);
		g_events.clear();
	}
	g_pumpThread = std::this_thread::get_id();
	g_inPump.store(true);
	if (g_manual) {
		manualPump();
	} else {
		SteamAPI_RunCallbacks();
	}
	g_inPump.store(false);
	std::lock_guard<std::mutex> l(g_mu);
	std::string r = "ok";
	for (auto &e : g_events) r += " " + e;
	g_events.clear();
	for (auto &v : g_newViolations) r += " VIOLATION:" + v;
	g_newViolations.clear();
	return r;
}

// The ISteamUser and ISteamUtils objects of the chosen binding.
static ISteamUser *vtUser() {
	switch (g_api) {
	case API_ACCESSORS:
		return static_cast<ISteamUser *>(SteamUser());
	case API_CLIENT: {
		auto *c = static_cast<ISteamClient *>(SteamInternal_CreateInterface("SteamClient017"));
		return c ? static_cast<ISteamUser *>(c->GetISteamUser(SteamAPI_GetHSteamUser(), SteamAPI_GetHSteamPipe(), "SteamUser023")) : nullptr;
	}
	default:
		return static_cast<ISteamUser *>(SteamInternal_FindOrCreateUserInterface(SteamAPI_GetHSteamUser(), "SteamUser023"));
	}
}

static ISteamUtils010 *vtUtils() {
	switch (g_api) {
	case API_ACCESSORS:
		return static_cast<ISteamUtils010 *>(SteamUtils());
	case API_CLIENT: {
		auto *c = static_cast<ISteamClient *>(SteamInternal_CreateInterface("SteamClient017"));
		return c ? static_cast<ISteamUtils010 *>(c->GetISteamUtils(SteamAPI_GetHSteamPipe(), "SteamUtils010")) : nullptr;
	}
	default:
		return static_cast<ISteamUtils010 *>(SteamInternal_FindOrCreateUserInterface(SteamAPI_GetHSteamUser(), "SteamUtils010"));
	}
}

static uint64_t parseU64(const std::string &s) { return strtoull(s.c_str(), nullptr, 10); }

static std::string runCommand(const std::string &line) {
	std::istringstream in(line);
	std::string cmd;
	in >> cmd;
	char buf[512];
	if (cmd == "send" || cmd == "sendt") {
		std::string ids, rest;
		long long type = 0, channel = 0;
		if (!(in >> ids >> type >> channel)) return "err usage";
		std::vector<uint8_t> data;
		if (cmd == "send") {
			long long size = 0;
			uint64_t seed = 0;
			if (!(in >> size)) return "err usage";
			in >> seed;
			data = pattern(uint32_t(size), seed);
		} else {
			std::getline(in, rest);
			if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
			data.assign(rest.begin(), rest.end());
		}
		bool ok = netSend(parseU64(ids), data.empty() ? nullptr : data.data(), uint32_t(data.size()), int(type), int(channel));
		return std::string("ok ") + (ok ? "1" : "0");
	}
	if (cmd == "avail") {
		int channel = 0;
		if (!(in >> channel)) return "err usage";
		uint32_t size = 0xDEADBEEF;
		bool ok = netAvail(&size, channel);
		snprintf(buf, sizeof buf, "ok %d %u", ok ? 1 : 0, size);
		return buf;
	}
	if (cmd == "read") {
		int channel = 0;
		uint32_t cap = 0;
		if (!(in >> channel >> cap)) return "err usage";
		std::vector<uint8_t> dest(size_t(cap) + 16, 0xEE);
		uint32_t size = 0xDEADBEEF;
		uint64_t from = 0xDEADBEEFDEADBEEFULL;
		bool ok = netRead(dest.data(), cap, &size, &from, channel);
		for (size_t i = cap; i < dest.size(); i++) {
			if (dest[i] != 0xEE) {
				violation("read-overran-cap");
				break;
			}
		}
		uint32_t n = ok && size <= cap ? size : 0;
		if (ok && size > cap) violation("read-size-above-cap:" + std::to_string(size));
		snprintf(buf, sizeof buf, "ok %d %u %" PRIu64 " %016" PRIx64 " ", ok ? 1 : 0, size, from, fnv1a(dest.data(), n));
		return buf + (n <= 64 ? (n == 0 ? std::string("-") : hexOf(dest.data(), n)) : std::string("-"));
	}
	if (cmd == "accept" || cmd == "close") {
		std::string ids;
		if (!(in >> ids)) return "err usage";
		bool ok = cmd == "accept" ? netAccept(parseU64(ids)) : netClose(parseU64(ids));
		return std::string("ok ") + (ok ? "1" : "0");
	}
	if (cmd == "closechan") {
		std::string ids;
		int channel = 0;
		if (!(in >> ids >> channel)) return "err usage";
		return std::string("ok ") + (netCloseChan(parseU64(ids), channel) ? "1" : "0");
	}
	if (cmd == "state") {
		std::string ids;
		if (!(in >> ids)) return "err usage";
		// 20 bytes of state and 4 of canary: the library must not write more.
		uint8_t raw[24];
		memset(raw, 0xAA, sizeof raw);
		P2PSessionState_t *st = reinterpret_cast<P2PSessionState_t *>(raw);
		bool ok = netState(parseU64(ids), st);
		for (int i = 20; i < 24; i++) {
			if (raw[i] != 0xAA) {
				violation("P2PSessionState_t-overrun");
				break;
			}
		}
		snprintf(buf, sizeof buf, "ok %d %u %u %u %u %d %d %u %u", ok ? 1 : 0, st->m_bConnectionActive, st->m_bConnecting,
		         st->m_eP2PSessionError, st->m_bUsingRelay, st->m_nBytesQueuedForSend, st->m_nPacketsQueuedForSend,
		         st->m_nRemoteIP, st->m_nRemotePort);
		return buf;
	}
	if (cmd == "relay") {
		int allow = 0;
		if (!(in >> allow)) return "err usage";
		return std::string("ok ") + (netRelay(allow != 0) ? "1" : "0");
	}
	if (cmd == "pump") return pump();
	if (cmd == "pumpthread") {
		std::string r;
		std::thread th([&r] { r = pump(); });
		th.join();
		return r;
	}
	if (cmd == "autoaccept" || cmd == "reenter") {
		std::string v;
		in >> v;
		(cmd == "autoaccept" ? g_autoAccept : g_reenter).store(v == "on");
		return "ok";
	}
	if (cmd == "handler") {
		if (g_manual) return "err handlers are classic dispatch";
		std::string what;
		in >> what;
		if (what == "add") {
			auto *h = new RequestHandler(int(g_extra.size()) + 2);
			SteamAPI_RegisterCallback(h, k_iP2PSessionRequest);
			if (!(h->m_nCallbackFlags & CCallbackBase::k_ECallbackFlagsRegistered) || h->m_iCallback != k_iP2PSessionRequest)
				violation("register-did-not-mark");
			g_extra.push_back(h);
			return "ok " + std::to_string(g_extra.size() + 1);
		}
		if (what == "remove") {
			size_t idx = 0;
			if (!(in >> idx) || idx < 2 || idx - 2 >= g_extra.size()) return "err no such handler";
			SteamAPI_UnregisterCallback(g_extra[idx - 2]);
			return "ok " + std::to_string(g_extra[idx - 2]->m_nCallbackFlags);
		}
		return "err usage";
	}
	if (cmd == "steamid") {
		uint64_t id = 0;
		bool loggedOn = false;
		uint32_t app = 0;
		if (g_api == API_FLAT) {
			void *u = SteamAPI_SteamUser_v023();
			void *ut = SteamAPI_SteamUtils_v010();
			if (!u || !ut) return "err NULL user or utils";
			id = SteamAPI_ISteamUser_GetSteamID(u);
			loggedOn = B(SteamAPI_ISteamUser_BLoggedOn(u), "BLoggedOn");
			app = SteamAPI_ISteamUtils_GetAppID(ut);
		} else {
			ISteamUser *u = vtUser();
			ISteamUtils010 *ut = vtUtils();
			if (!u || !ut) return "err NULL user or utils";
			id = u->GetSteamID().ConvertToUint64();
			loggedOn = u->BLoggedOn();
			app = ut->GetAppID();
		}
		snprintf(buf, sizeof buf, "ok %" PRIu64 " %d %u", id, loggedOn ? 1 : 0, app);
		return buf;
	}
	if (cmd == "hsteam") {
		snprintf(buf, sizeof buf, "ok %d %d", SteamAPI_GetHSteamUser(), SteamAPI_GetHSteamPipe());
		return buf;
	}
	if (cmd == "deprecated") {
		ISteamNetworking *n = g_vt ? g_vt : static_cast<ISteamNetworking *>(g_flat);
		uint32_t a = n->CreateListenSocket(0, 0, 27015, true);
		uint32_t b = n->CreateP2PConnectionSocket(CSteamID(76561197960265729ULL), 0, 5, true);
		int c = n->GetMaxPacketSize(0);
		snprintf(buf, sizeof buf, "ok %u %u %d", a, b, c);
		return buf;
	}
	if (cmd == "sleep") {
		int ms = 0;
		in >> ms;
		usleep(useconds_t(ms) * 1000);
		return "ok";
	}
	if (cmd == "violations") {
		std::lock_guard<std::mutex> l(g_mu);
		std::string r = "ok " + std::to_string(g_violations.size());
		for (auto &v : g_violations) r += " " + v;
		g_newViolations.clear();
		return r;
	}
	return "err unknown command " + cmd;
}

int main(int argc, char **argv) {
	g_mainThread = std::this_thread::get_id();
	for (int i = 1; i + 1 < argc; i += 2) {
		std::string k = argv[i], v = argv[i + 1];
		if (k == "--api") {
			if (v == "vtable") g_api = API_VTABLE;
			else if (v == "client") g_api = API_CLIENT;
			else if (v == "flat") g_api = API_FLAT;
			else if (v == "accessors") g_api = API_ACCESSORS;
			else { printf("fail bad --api %s\n", v.c_str()); return 2; }
		} else if (k == "--dispatch") {
			if (v == "manual") g_manual = true;
			else if (v != "classic") { printf("fail bad --dispatch %s\n", v.c_str()); return 2; }
		} else {
			printf("fail unknown flag %s\n", k.c_str());
			return 2;
		}
	}
	setvbuf(stdout, nullptr, _IOLBF, 0);

	// Before init: no user, no pipe, no interfaces; and the callbacks
	// registered during static initialisation are marked registered.
	int user0 = SteamAPI_GetHSteamUser(), pipe0 = SteamAPI_GetHSteamPipe();
	int iface0 = SteamInternal_FindOrCreateUserInterface(0, "SteamNetworking006") != nullptr;
	int prereg = 0;
	if (g_preRegistered) {
		prereg = (g_request1.m_nCallbackFlags & 1) && g_request1.m_iCallback == k_iP2PSessionRequest &&
		         (g_fail1.m_nCallbackFlags & 1) && g_fail1.m_iCallback == k_iP2PSessionConnectFail;
	}

	int errlen = -2; // no error buffer used
	if (g_manual) {
		static const char versions[] = "SteamNetworking006\0SteamUser023\0SteamUtils010\0SteamClient017\0";
		SteamErrMsg err;
		memset(err, 'X', sizeof err); // Steamworks.NET hands an uninitialised buffer
		int r = SteamInternal_SteamAPI_Init(versions, &err);
		void *nul = memchr(err, 0, sizeof err);
		errlen = nul ? int(static_cast<char *>(nul) - err) : -1;
		if (r != k_ESteamAPIInitResult_OK) {
			printf("fail SteamInternal_SteamAPI_Init=%d err=%.*s\n", r, nul ? errlen : 200, err);
			return 1;
		}
		SteamAPI_ManualDispatch_Init();
	} else if (!B(SteamAPI_Init(), "SteamAPI_Init")) {
		printf("fail SteamAPI_Init=false\n");
		return 1;
	}
	HSteamUser user = SteamAPI_GetHSteamUser();
	HSteamPipe pipe = SteamAPI_GetHSteamPipe();

	switch (g_api) {
	case API_VTABLE:
		g_vt = static_cast<ISteamNetworking *>(SteamInternal_FindOrCreateUserInterface(user, "SteamNetworking006"));
		break;
	case API_CLIENT: {
		auto *c = static_cast<ISteamClient *>(SteamInternal_CreateInterface("SteamClient017"));
		if (c) g_vt = static_cast<ISteamNetworking *>(c->GetISteamNetworking(user, pipe, "SteamNetworking006"));
		break;
	}
	case API_FLAT:
		g_flat = SteamAPI_SteamNetworking_v006();
		break;
	case API_ACCESSORS:
		g_vt = static_cast<ISteamNetworking *>(SteamNetworking());
		break;
	}
	if (!g_vt && !g_flat) {
		printf("fail no ISteamNetworking object\n");
		return 1;
	}
	// Who we are, through the same binding.
	std::string who = runCommand("steamid");
	for (auto &c : who) {
		if (c == ' ') c = ',';
	}
	printf("ready user0=%d pipe0=%d iface0=%d prereg=%d errlen=%d user=%d pipe=%d who=%s\n", user0, pipe0, iface0, prereg,
	       errlen, user, pipe, who.c_str());
	fflush(stdout);

	char *line = nullptr;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		std::string l(line, size_t(n));
		while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
		if (l.empty()) continue;
		if (l == "quit") {
			SteamAPI_Shutdown();
			printf("ok bye\n");
			fflush(stdout);
			return 0;
		}
		std::string r = runCommand(l);
		// A violation found outside a pump reply still reaches the test.
		if (r.rfind("ok", 0) == 0 && l.rfind("pump", 0) != 0 && l != "violations") {
			std::lock_guard<std::mutex> lk(g_mu);
			for (auto &v : g_newViolations) r += " VIOLATION:" + v;
			g_newViolations.clear();
		}
		printf("%s\n", r.c_str());
		fflush(stdout);
	}
	SteamAPI_Shutdown();
	return 0;
}

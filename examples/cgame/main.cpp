//go:build ignore

// cgame: a C++ program that talks to another copy of itself through the
// session-less Steam P2P API (ISteamNetworking), and nothing else. Each line
// typed is sent reliably to the player named with -peer; every packet that
// arrives is printed with its sender's SteamID.
//
// It is shaped like a game's main loop: 60 frames a second, and in every
// frame SteamAPI_RunCallbacks, then every packet that waits, then whatever
// was typed. Nothing in the loop blocks. There is no connect call: the first
// packet sent opens the session, the other side sees P2PSessionRequest_t and
// accepts it.
//
// (The go:build line at the top only keeps the go command from taking this
// file for part of the Go test beside it; compilers see a comment.)

#include "steam_p2p.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

static const int kChannel = 0;
static const auto kFrame = std::chrono::microseconds(1000000 / 60);
// How long a player who quit waits for the peer to acknowledge what is still
// in flight, so that a line typed just before Ctrl-D is not lost.
static const auto kFlushTimeout = std::chrono::seconds(5);

static volatile sig_atomic_t g_quit = 0;
static void OnSignal(int) { g_quit = 1; }

static const char *SessionErrorName(int e) {
	switch (e) {
	case k_EP2PSessionErrorNone: return "None";
	case k_EP2PSessionErrorNotRunningApp: return "NotRunningApp";
	case k_EP2PSessionErrorNoRightsToApp: return "NoRightsToApp";
	case k_EP2PSessionErrorDestinationNotLoggedIn: return "DestinationNotLoggedIn";
	case k_EP2PSessionErrorTimeout: return "Timeout";
	}
	return "unknown";
}

class Game {
public:
	Game(ISteamNetworking *net, CSteamID peer)
		: m_net(net), m_peer(peer),
		  m_sessionRequest(this, &Game::OnP2PSessionRequest),
		  m_connectFail(this, &Game::OnP2PSessionConnectFail) {}

	// One frame: callbacks first, then every packet that waits. Reading only
	// one packet a frame would fall behind as soon as the peer sends two.
	void RunFrame() {
		SteamAPI_RunCallbacks();
		uint32_t size;
		while (m_net->IsP2PPacketAvailable(&size, kChannel)) {
			m_buf.resize(size > 0 ? size : 1);
			CSteamID from;
			if (!m_net->ReadP2PPacket(m_buf.data(), (uint32_t)m_buf.size(), &size, &from, kChannel))
				break;
			printf("[%llu] %.*s\n", (unsigned long long)from.ConvertToUint64(), (int)size, m_buf.data());
		}
	}

	void Send(const std::string &line) {
		if (line.empty())
			return;
		if (!m_net->SendP2PPacket(m_peer, line.data(), (uint32_t)line.size(), k_EP2PSendReliable, kChannel))
			printf("* not sent: too large, or too much already queued for %llu\n",
			       (unsigned long long)m_peer.ConvertToUint64());
	}

	// True once the peer has acknowledged everything we sent, or there is no
	// session that could still deliver it.
	bool Flushed() {
		P2PSessionState_t st;
		if (!m_net->GetP2PSessionState(m_peer, &st))
			return true;
		return st.m_nBytesQueuedForSend == 0 || (!st.m_bConnectionActive && !st.m_bConnecting);
	}

private:
	void OnP2PSessionRequest(P2PSessionRequest_t *cb) {
		unsigned long long from = cb->m_steamIDRemote.ConvertToUint64();
		// Only the player we expect: ignoring a request refuses the session.
		if (cb->m_steamIDRemote != m_peer) {
			printf("* %llu wants to play: ignored, not our peer\n", from);
			return;
		}
		m_net->AcceptP2PSessionWithUser(cb->m_steamIDRemote);
		printf("* %llu wants to play: accepted\n", from);
	}

	void OnP2PSessionConnectFail(P2PSessionConnectFail_t *cb) {
		printf("* could not reach %llu: %s (%d); type again to retry\n",
		       (unsigned long long)cb->m_steamIDRemote.ConvertToUint64(),
		       SessionErrorName(cb->m_eP2PSessionError), cb->m_eP2PSessionError);
		// A failed session reports no second failure until it is closed;
		// closing it makes the next send a fresh attempt.
		m_net->CloseP2PSessionWithUser(cb->m_steamIDRemote);
	}

	ISteamNetworking *m_net;
	CSteamID m_peer;
	std::vector<char> m_buf;
	SteamCallback<Game, P2PSessionRequest_t> m_sessionRequest;
	SteamCallback<Game, P2PSessionConnectFail_t> m_connectFail;
};

// ReadTyped appends whatever is waiting on standard input to pending and
// returns false at end of input. It never blocks: poll with no timeout.
static bool ReadTyped(std::string &pending) {
	struct pollfd p = {0, POLLIN, 0};
	while (poll(&p, 1, 0) > 0) {
		char buf[4096];
		ssize_t n = read(0, buf, sizeof buf);
		if (n > 0) {
			pending.append(buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return true;
		return false;
	}
	return true;
}

int main(int argc, char **argv) {
	unsigned long long peer = 0;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-peer") || !strcmp(argv[i], "--peer")) && i + 1 < argc)
			peer = strtoull(argv[++i], nullptr, 10);
		else {
			fprintf(stderr, "usage: %s -peer STEAMID\n", argv[0]);
			return 2;
		}
	}
	if (peer == 0) {
		fprintf(stderr, "usage: %s -peer STEAMID (the other player's SteamID, non-zero)\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, nullptr, _IOLBF, 0); // a line at a time, also into a pipe
	signal(SIGINT, OnSignal);
	signal(SIGTERM, OnSignal);

	if (!SteamAPI_Init()) {
		fprintf(stderr, "SteamAPI_Init failed\n");
		return 1;
	}
	ISteamNetworking *net = SteamNetworking();
	ISteamUser *user = SteamUser();
	if (!net || !user) {
		fprintf(stderr, "no ISteamNetworking or ISteamUser\n");
		SteamAPI_Shutdown();
		return 1;
	}
	printf("* you are %llu, playing with %llu; type a line and press Enter, Ctrl-D to quit\n",
	       (unsigned long long)user->GetSteamID().ConvertToUint64(), peer);

	{
		Game game(net, CSteamID(peer));
		std::string pending;
		bool typing = true;
		auto flushUntil = std::chrono::steady_clock::time_point::max();
		auto next = std::chrono::steady_clock::now();
		while (!g_quit) {
			game.RunFrame();
			if (typing) {
				typing = ReadTyped(pending);
				size_t nl;
				while ((nl = pending.find('\n')) != std::string::npos) {
					std::string line = pending.substr(0, nl);
					if (!line.empty() && line.back() == '\r')
						line.pop_back();
					game.Send(line);
					pending.erase(0, nl + 1);
				}
				if (!typing) {
					game.Send(pending); // a last line without a newline
					flushUntil = std::chrono::steady_clock::now() + kFlushTimeout;
				}
			}
			if (!typing) {
				if (game.Flushed())
					break;
				if (std::chrono::steady_clock::now() > flushUntil) {
					printf("* the peer has not acknowledged everything; quitting anyway\n");
					break;
				}
			}
			// Sleep until the next frame (a game would simulate and render here).
			next += kFrame;
			auto now = std::chrono::steady_clock::now();
			if (next < now)
				next = now;
			std::this_thread::sleep_until(next);
		}
	} // the callbacks unregister here, before shutdown

	printf("* bye\n");
	SteamAPI_Shutdown();
	return 0;
}

// unregister.cpp: a callback object unregistered from another thread while
// its handler runs. SteamAPI_UnregisterCallback must return only after the
// handler has, so that the caller may free the object then (the .NET
// wrappers unregister from their finalizer thread). The handler is for
// SteamServersConnected_t, posted at the first pump after init.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "steam_abi.h"

static std::atomic<int> state{0}; // 1: handler entered, 2: handler returned

class Slow : public CCallbackBase {
public:
	void Run(void *) override {
		state = 1;
		std::this_thread::sleep_for(std::chrono::milliseconds(300));
		state = 2;
	}
	void Run(void *, bool, SteamAPICall_t) override {}
	int GetCallbackSizeBytes() override { return 1; }
};

int main() {
	Slow *cb = new Slow;
	SteamAPI_RegisterCallback(cb, k_iSteamServersConnected);
	if (!SteamAPI_Init()) {
		std::printf("init failed\n");
		return 1;
	}
	int seen = -1;
	std::thread other([&] {
		while (state.load() == 0) std::this_thread::yield();
		SteamAPI_UnregisterCallback(cb);
		seen = state.load();
		delete cb; // what a finalizer does right after unregistering
	});
	SteamAPI_RunCallbacks();
	other.join();
	SteamAPI_Shutdown();
	std::printf("state after unregister returned: %d\n", seen);
	return seen == 2 ? 0 : 1;
}

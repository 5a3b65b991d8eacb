/*
 * initerr.c initialises the library the way Steamworks.NET does and prints
 * the result and the error buffer, which it fills with garbage first: the
 * library must always write a NUL-terminated message. Arguments KEY=VALUE
 * are set with setenv before init, as games set SteamAppId.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steam_abi.h"

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL) return 2;
		*eq = 0;
		setenv(argv[i], eq + 1, 1);
	}
	SteamErrMsg err;
	memset(err, 'x', sizeof err);
	int rc = SteamInternal_SteamAPI_Init("SteamNetworking006\0SteamUser023\0", &err);
	if (memchr(err, 0, sizeof err) == NULL) {
		printf("rc=%d unterminated\n", rc);
		return 1;
	}
	printf("rc=%d pipe=%d init=%u err=%s\n", rc, SteamAPI_GetHSteamPipe(), rc == 0 ? 1u : SteamAPI_Init(), err);
	SteamAPI_Shutdown();
	return 0;
}

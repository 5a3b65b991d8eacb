package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cabiExports is every export of the contract's tables of init and
// lifetime, both dispatch modes, interfaces, the SDK <= 1.36 accessors,
// the flat accessors, the flat ISteamClient getters and the flat
// ISteamNetworking methods.
var cabiExports = []string{
	// Init and lifetime.
	"SteamAPI_Init", "SteamAPI_InitSafe", "SteamAPI_InitAnonymousUser", "SteamInternal_SteamAPI_Init",
	"SteamAPI_InitFlat", "SteamAPI_Shutdown", "SteamAPI_RestartAppIfNecessary", "SteamAPI_IsSteamRunning",
	"SteamAPI_GetHSteamUser", "SteamAPI_GetHSteamPipe", "GetHSteamUser", "GetHSteamPipe",
	"SteamAPI_ReleaseCurrentThreadMemory", "SteamAPI_SetTryCatchCallbacks", "SteamAPI_WriteMiniDump",
	"SteamAPI_SetMiniDumpComment", "SteamAPI_GetSteamInstallPath",
	// Classic dispatch.
	"SteamAPI_RegisterCallback", "SteamAPI_UnregisterCallback", "SteamAPI_RegisterCallResult",
	"SteamAPI_UnregisterCallResult", "SteamAPI_RunCallbacks", "SteamGameServer_RunCallbacks",
	// Manual dispatch.
	"SteamAPI_ManualDispatch_Init", "SteamAPI_ManualDispatch_RunFrame", "SteamAPI_ManualDispatch_GetNextCallback",
	"SteamAPI_ManualDispatch_FreeLastCallback", "SteamAPI_ManualDispatch_GetAPICallResult",
	// Interfaces.
	"SteamInternal_ContextInit", "SteamInternal_FindOrCreateUserInterface",
	"SteamInternal_FindOrCreateGameServerInterface", "SteamInternal_CreateInterface", "SteamClient",
	// SDK <= 1.36 accessors.
	"SteamUser", "SteamNetworking", "SteamUtils", "SteamFriends", "SteamMatchmaking", "SteamUserStats",
	"SteamApps", "SteamRemoteStorage",
	// Flat accessors.
	"SteamAPI_SteamNetworking_v006", "SteamAPI_SteamUser_v020", "SteamAPI_SteamUser_v021",
	"SteamAPI_SteamUser_v022", "SteamAPI_SteamUser_v023", "SteamAPI_SteamUtils_v009", "SteamAPI_SteamUtils_v010",
	"SteamAPI_SteamUtils_v011", "SteamAPI_SteamFriends_v017", "SteamAPI_SteamFriends_v018",
	"SteamAPI_SteamMatchmaking_v009", "SteamAPI_SteamApps_v008", "SteamAPI_SteamInput_v006",
	"SteamAPI_SteamInventory_v003", "SteamAPI_SteamMatchmakingServers_v002", "SteamAPI_SteamMusic_v001",
	"SteamAPI_SteamNetworkingSockets_v012", "SteamAPI_SteamNetworkingUtils_v004",
	"SteamAPI_SteamParentalSettings_v001", "SteamAPI_SteamParties_v002", "SteamAPI_SteamRemoteStorage_v016",
	"SteamAPI_SteamScreenshots_v003", "SteamAPI_SteamUGC_v020", "SteamAPI_SteamUserStats_v013",
	"SteamAPI_SteamVideo_v007", "SteamAPI_SteamRemotePlay_v002", "SteamAPI_SteamTimeline_v004",
	// Flat ISteamClient.
	"SteamAPI_ISteamClient_GetISteamUser", "SteamAPI_ISteamClient_GetISteamGameServer",
	"SteamAPI_ISteamClient_GetISteamFriends", "SteamAPI_ISteamClient_GetISteamUtils",
	"SteamAPI_ISteamClient_GetISteamMatchmaking", "SteamAPI_ISteamClient_GetISteamMatchmakingServers",
	"SteamAPI_ISteamClient_GetISteamGenericInterface", "SteamAPI_ISteamClient_GetISteamUserStats",
	"SteamAPI_ISteamClient_GetISteamGameServerStats", "SteamAPI_ISteamClient_GetISteamApps",
	"SteamAPI_ISteamClient_GetISteamNetworking", "SteamAPI_ISteamClient_GetISteamRemoteStorage",
	"SteamAPI_ISteamClient_GetISteamScreenshots", "SteamAPI_ISteamClient_GetISteamGameSearch",
	"SteamAPI_ISteamClient_GetISteamHTTP", "SteamAPI_ISteamClient_GetISteamController",
	"SteamAPI_ISteamClient_GetISteamUGC", "SteamAPI_ISteamClient_GetISteamAppList",
	"SteamAPI_ISteamClient_GetISteamMusic", "SteamAPI_ISteamClient_GetISteamMusicRemote",
	"SteamAPI_ISteamClient_GetISteamHTMLSurface", "SteamAPI_ISteamClient_GetISteamInventory",
	"SteamAPI_ISteamClient_GetISteamVideo", "SteamAPI_ISteamClient_GetISteamParentalSettings",
	"SteamAPI_ISteamClient_GetISteamInput", "SteamAPI_ISteamClient_GetISteamParties",
	"SteamAPI_ISteamClient_GetISteamRemotePlay", "SteamAPI_ISteamClient_SetWarningMessageHook",
	// Flat ISteamNetworking.
	"SteamAPI_ISteamNetworking_SendP2PPacket", "SteamAPI_ISteamNetworking_IsP2PPacketAvailable",
	"SteamAPI_ISteamNetworking_ReadP2PPacket", "SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser",
	"SteamAPI_ISteamNetworking_CloseP2PSessionWithUser", "SteamAPI_ISteamNetworking_CloseP2PChannelWithUser",
	"SteamAPI_ISteamNetworking_GetP2PSessionState", "SteamAPI_ISteamNetworking_AllowP2PPacketRelay",
}

// The library exports every name of the contract, only Steam's names, and
// carries its SONAME.
func TestDynamicSymbolTable(t *testing.T) {
	t.Parallel()
	lib := library(t)
	needTool(t, "nm")
	out, err := exec.Command("nm", "-D", "--defined-only", lib).Output()
	if err != nil {
		t.Fatalf("nm -D: %v", err)
	}
	var defined []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		if f[1] != "T" {
			t.Errorf("%s is exported as %q, not as a function", f[2], f[1])
		}
		defined = append(defined, f[2])
	}
	for _, name := range cabiExports {
		if !slices.Contains(defined, name) {
			t.Errorf("%s is not exported", name)
		}
	}
	steam := regexp.MustCompile(`^(Steam[A-Za-z0-9_]*|GetHSteamUser|GetHSteamPipe)$`)
	for _, name := range defined {
		if !steam.MatchString(name) {
			t.Errorf("%s is exported, but is not a Steam name", name)
		}
	}
	t.Logf("%d exports, %d of them in the contract's tables", len(defined), len(cabiExports))

	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	soname, err := f.DynString(elf.DT_SONAME)
	if err != nil || len(soname) != 1 || soname[0] != "libsteam_api.so" {
		t.Errorf("SONAME %q (%v), want libsteam_api.so", soname, err)
	}
}

// The structs of the contract's table have its sizes and offsets as the
// library's C side declares them and as a game's header does.
func TestStructLayouts(t *testing.T) {
	t.Parallel()
	needTool(t, "gcc")
	prog := filepath.Join(t.TempDir(), "layout")
	if b, err := exec.Command("gcc", "-std=c11", "-Wall", "-I", "testdata", "-o", prog, "testdata/layout.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	out, err := exec.Command(prog).Output()
	if err != nil {
		t.Fatal(err)
	}
	// name: size, then the offsets of the fields in declaration order.
	want := map[string]string{
		"P2PSessionState_t":          "20 0 1 2 3 4 8 12 16",
		"CallbackMsg_t":              "20 0 4 8 16",
		"SteamAPICallCompleted_t":    "16 0 8 12",
		"P2PSessionConnectFail_t":    "9 0 8",
		"P2PSessionRequest_t":        "8 0",
		"SteamServersDisconnected_t": "4 0",
	}
	seen := map[string]int{}
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		f := strings.Fields(line)
		side, name, got := f[0], f[1], strings.Join(f[2:], " ")
		seen[name]++
		if got != want[name] {
			t.Errorf("%s's %s: size and offsets %q, want %q", side, name, got, want[name])
		}
	}
	for name := range want {
		if seen[name] == 0 {
			t.Errorf("%s not measured", name)
		}
	}
}

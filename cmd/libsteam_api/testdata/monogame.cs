// monogame.cs: a C# "Unity game" of the project's own for the drop-in
// library, written the way Steamworks.NET (>= 15, SDK 1.58a+) talks to
// libsteam_api.so: DllImport("steam_api"), SteamInternal_SteamAPI_Init with
// an interface version list and an uninitialised error buffer, manual
// callback dispatch (ManualDispatch_Init/RunFrame/GetNextCallback/
// FreeLastCallback) into a 20-byte CallbackMsg_t in unmanaged memory, and
// the flat ISteamNetworking API. The Go runtime of the library and Mono's
// garbage collector live in one process: the game loop calls GC.Collect()
// every frame and a second managed thread allocates, collects and calls into
// the library at the same time.
//
// Build: mcs -noconfig -r:mscorlib.dll -out:monogame.exe monogame.cs
// (only mscorlib is referenced, so Debian's mono-mcs and mono-runtime are
// enough).
//
// Run:   LD_LIBRARY_PATH=<directory of libsteam_api.so> mono --debug monogame.exe \
//            --self <our SteamID> --peer <SteamID of an echoing peer> [--count N]
//
// How Mono finds the library: DllImport("steam_api") makes Mono try, among
// others, "libsteam_api.so" through dlopen, and dlopen searches
// LD_LIBRARY_PATH. (A Unity player instead looks in <Game>_Data/Plugins; a
// <dllmap dll="steam_api" target="/path/libsteam_api.so"/> in
// monogame.exe.config would do as well.)
//
// The peer (peer.cpp --echo --hello <our SteamID>) opens the session, so we
// see a P2PSessionRequest_t, check its SteamID, and accept through
// SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser(SteamAPI_SteamNetworking_v006(), id).
// Then we send numbered reliable messages on three channels and expect each
// echoed back intact and in order per channel. Prints "ready <id>" once
// logged on and "PASS ..." at the end (exit 0), or "FAIL ..." lines (exit 1).

using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct CSteamID {
	public ulong m_SteamID;
	public CSteamID(ulong id) { m_SteamID = id; }
}

[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct CallbackMsg_t {
	public int m_hSteamUser;
	public int m_iCallback;
	public IntPtr m_pubParam;
	public int m_cubParam;
}

[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct P2PSessionRequest_t {
	public const int k_iCallback = 1202;
	public CSteamID m_steamIDRemote;
}

[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct P2PSessionConnectFail_t {
	public const int k_iCallback = 1203;
	public CSteamID m_steamIDRemote;
	public byte m_eP2PSessionError;
}

[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct P2PSessionState_t {
	public byte m_bConnectionActive;
	public byte m_bConnecting;
	public byte m_eP2PSessionError;
	public byte m_bUsingRelay;
	public int m_nBytesQueuedForSend;
	public int m_nPacketsQueuedForSend;
	public uint m_nRemoteIP;
	public ushort m_nRemotePort;
}

[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct SteamAPICallCompleted_t {
	public const int k_iCallback = 703;
	public ulong m_hAsyncCall;
	public int m_iCallback;
	public uint m_cubParam;
}

public enum EP2PSend : int {
	k_EP2PSendUnreliable = 0,
	k_EP2PSendUnreliableNoDelay = 1,
	k_EP2PSendReliable = 2,
	k_EP2PSendReliableWithBuffering = 3,
}

public enum ESteamAPIInitResult : int {
	k_ESteamAPIInitResult_OK = 0,
	k_ESteamAPIInitResult_FailedGeneric = 1,
	k_ESteamAPIInitResult_NoSteamClient = 2,
	k_ESteamAPIInitResult_VersionMismatch = 3,
}

static class Native {
	const string Lib = "steam_api";

	[DllImport(Lib, EntryPoint = "SteamInternal_SteamAPI_Init", CallingConvention = CallingConvention.Cdecl)]
	public static extern ESteamAPIInitResult SteamInternal_SteamAPI_Init(IntPtr pszInternalCheckInterfaceVersions, IntPtr pOutErrMsg);
	[DllImport(Lib, EntryPoint = "SteamAPI_Shutdown", CallingConvention = CallingConvention.Cdecl)]
	public static extern void SteamAPI_Shutdown();
	[DllImport(Lib, EntryPoint = "SteamAPI_GetHSteamPipe", CallingConvention = CallingConvention.Cdecl)]
	public static extern int SteamAPI_GetHSteamPipe();
	[DllImport(Lib, EntryPoint = "SteamAPI_GetHSteamUser", CallingConvention = CallingConvention.Cdecl)]
	public static extern int SteamAPI_GetHSteamUser();
	[DllImport(Lib, EntryPoint = "SteamAPI_IsSteamRunning", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool SteamAPI_IsSteamRunning();
	[DllImport(Lib, EntryPoint = "SteamInternal_FindOrCreateUserInterface", CallingConvention = CallingConvention.Cdecl)]
	public static extern IntPtr SteamInternal_FindOrCreateUserInterface(int hSteamUser, IntPtr pszVersion);

	[DllImport(Lib, EntryPoint = "SteamAPI_ManualDispatch_Init", CallingConvention = CallingConvention.Cdecl)]
	public static extern void SteamAPI_ManualDispatch_Init();
	[DllImport(Lib, EntryPoint = "SteamAPI_ManualDispatch_RunFrame", CallingConvention = CallingConvention.Cdecl)]
	public static extern void SteamAPI_ManualDispatch_RunFrame(int hSteamPipe);
	[DllImport(Lib, EntryPoint = "SteamAPI_ManualDispatch_GetNextCallback", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool SteamAPI_ManualDispatch_GetNextCallback(int hSteamPipe, IntPtr pCallbackMsg);
	[DllImport(Lib, EntryPoint = "SteamAPI_ManualDispatch_FreeLastCallback", CallingConvention = CallingConvention.Cdecl)]
	public static extern void SteamAPI_ManualDispatch_FreeLastCallback(int hSteamPipe);
	[DllImport(Lib, EntryPoint = "SteamAPI_ManualDispatch_GetAPICallResult", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool SteamAPI_ManualDispatch_GetAPICallResult(int hSteamPipe, ulong hSteamAPICall, IntPtr pCallback, int cubCallback, int iCallbackExpected, [MarshalAs(UnmanagedType.I1)] out bool pbFailed);

	[DllImport(Lib, EntryPoint = "SteamAPI_SteamUser_v023", CallingConvention = CallingConvention.Cdecl)]
	public static extern IntPtr SteamAPI_SteamUser_v023();
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamUser_BLoggedOn", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamUser_BLoggedOn(IntPtr instancePtr);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamUser_GetSteamID", CallingConvention = CallingConvention.Cdecl)]
	public static extern ulong ISteamUser_GetSteamID(IntPtr instancePtr);

	[DllImport(Lib, EntryPoint = "SteamAPI_SteamNetworking_v006", CallingConvention = CallingConvention.Cdecl)]
	public static extern IntPtr SteamAPI_SteamNetworking_v006();
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_SendP2PPacket", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_SendP2PPacket(IntPtr instancePtr, CSteamID steamIDRemote, byte[] pubData, uint cubData, EP2PSend eP2PSendType, int nChannel);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_IsP2PPacketAvailable", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_IsP2PPacketAvailable(IntPtr instancePtr, out uint pcubMsgSize, int nChannel);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_ReadP2PPacket", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_ReadP2PPacket(IntPtr instancePtr, [In, Out] byte[] pubDest, uint cubDest, out uint pcubMsgSize, out CSteamID psteamIDRemote, int nChannel);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_AcceptP2PSessionWithUser", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_AcceptP2PSessionWithUser(IntPtr instancePtr, CSteamID steamIDRemote);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_CloseP2PSessionWithUser", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_CloseP2PSessionWithUser(IntPtr instancePtr, CSteamID steamIDRemote);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_GetP2PSessionState", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_GetP2PSessionState(IntPtr instancePtr, CSteamID steamIDRemote, out P2PSessionState_t pConnectionState);
	[DllImport(Lib, EntryPoint = "SteamAPI_ISteamNetworking_AllowP2PPacketRelay", CallingConvention = CallingConvention.Cdecl)]
	[return: MarshalAs(UnmanagedType.I1)]
	public static extern bool ISteamNetworking_AllowP2PPacketRelay(IntPtr instancePtr, [MarshalAs(UnmanagedType.I1)] bool bAllow);
}

class Holder {
	public int Field = 1;
}

static class Game {
	static int failures;
	static ulong self, peer;
	static int pipe;
	static IntPtr net;
	static IntPtr callbackMsg; // CallbackMsg_t, 20 bytes, then a guard
	const int MsgSize = 20, GuardSize = 16;
	static bool accepted;
	static int requests;
	static byte[] hello;
	static volatile bool done;
	static int backgroundCollections, nullChecks;

	static void Fail(string what) {
		Interlocked.Increment(ref failures);
		Print("FAIL " + what);
	}

	static readonly object printLock = new object();
	static void Print(string line) {
		lock (printLock) {
			Console.WriteLine(line);
			Console.Out.Flush();
		}
	}

	static ulong Arg(string[] args, string name, ulong dflt) {
		for (int i = 0; i + 1 < args.Length; i++)
			if (args[i] == name)
				return ulong.Parse(args[i + 1]);
		return dflt;
	}

	// Steamworks.NET's InteropHelp.UTF8StringHandle: a NUL-terminated UTF-8
	// copy in unmanaged memory.
	static IntPtr Utf8(string s) {
		byte[] b = Encoding.UTF8.GetBytes(s);
		IntPtr p = Marshal.AllocHGlobal(b.Length + 1);
		Marshal.Copy(b, 0, p, b.Length);
		Marshal.WriteByte(p, b.Length, 0);
		return p;
	}

	// Mono turns a null dereference into a NullReferenceException through its
	// SIGSEGV handler; the Go runtime installed its own handlers when the
	// library loaded, and must forward the fault to Mono's.
	static void NullReference(string where) {
		Holder h = null;
		Interlocked.Increment(ref nullChecks);
		try {
			int x = h.Field;
			Fail(where + ": reading a null reference gave " + x);
		} catch (NullReferenceException) {
		}
	}

	static bool Init() {
		// Steamworks.NET's SteamAPI.InitEx: the interface versions the
		// game was built with, NUL-separated, ending in an empty string.
		string versions = "SteamUtils010\0SteamNetworkingUtils004\0SteamApps008\0SteamController008\0" +
			"SteamFriends017\0SteamGameSearch001\0SteamHTMLSurface005\0SteamHTTP003\0SteamInput006\0" +
			"SteamInventory003\0SteamMatchMakingServers002\0SteamMatchMaking009\0SteamMusicRemote001\0" +
			"SteamMusic001\0SteamNetworkingMessages002\0SteamNetworkingSockets012\0SteamNetworking006\0" +
			"SteamParentalSettings001\0SteamParties002\0SteamRemotePlay002\0SteamRemoteStorage016\0" +
			"SteamScreenshots003\0SteamUGC018\0SteamUserStats012\0SteamUser023\0SteamVideo007\0\0";
		IntPtr pVersions = Utf8(versions);
		IntPtr err = Marshal.AllocHGlobal(1024);
		for (int i = 0; i < 1024; i++)
			Marshal.WriteByte(err, i, 0xCC); // uninitialised, as Steamworks.NET's
		ESteamAPIInitResult r = Native.SteamInternal_SteamAPI_Init(pVersions, err);
		string msg = Marshal.ReadByte(err, 0) == 0 ? "" : Marshal.PtrToStringAnsi(err, 200);
		Marshal.FreeHGlobal(pVersions);
		Marshal.FreeHGlobal(err);
		if (r != ESteamAPIInitResult.k_ESteamAPIInitResult_OK) {
			Fail("SteamInternal_SteamAPI_Init returned " + r + ": " + msg);
			return false;
		}
		if (msg != "")
			Fail("SteamInternal_SteamAPI_Init succeeded but wrote the error message \"" + msg + "\"");
		pipe = Native.SteamAPI_GetHSteamPipe();
		if (pipe == 0)
			Fail("SteamAPI_GetHSteamPipe() is 0 after init");
		if (Native.SteamAPI_GetHSteamUser() == 0)
			Fail("SteamAPI_GetHSteamUser() is 0 after init");
		if (!Native.SteamAPI_IsSteamRunning())
			Fail("SteamAPI_IsSteamRunning false");

		// CSteamAPIContext.Init: every interface must be non-NULL.
		string[] user = { "SteamUser023", "SteamFriends017", "SteamUtils010", "SteamNetworking006",
			"SteamNetworkingUtils004", "SteamNetworkingSockets013", "SteamNetworkingMessages002", "SteamTimeline004" };
		foreach (string v in user) {
			IntPtr pv = Utf8(v);
			if (Native.SteamInternal_FindOrCreateUserInterface(Native.SteamAPI_GetHSteamUser(), pv) == IntPtr.Zero)
				Fail("SteamInternal_FindOrCreateUserInterface(" + v + ") is NULL");
			Marshal.FreeHGlobal(pv);
		}
		net = Native.SteamAPI_SteamNetworking_v006();
		if (net == IntPtr.Zero) {
			Fail("SteamAPI_SteamNetworking_v006() is NULL");
			return false;
		}
		if (!Native.ISteamNetworking_AllowP2PPacketRelay(net, true))
			Fail("AllowP2PPacketRelay(true) false");

		// CallbackDispatcher.Initialize.
		Native.SteamAPI_ManualDispatch_Init();
		callbackMsg = Marshal.AllocHGlobal(MsgSize + GuardSize);
		for (int i = 0; i < MsgSize + GuardSize; i++)
			Marshal.WriteByte(callbackMsg, i, 0xAB);
		return true;
	}

	// Steamworks.NET's CallbackDispatcher.RunFrame.
	static void RunCallbacks() {
		int p = Native.SteamAPI_GetHSteamPipe();
		if (p != pipe)
			Fail("SteamAPI_GetHSteamPipe() changed from " + pipe + " to " + p);
		Native.SteamAPI_ManualDispatch_RunFrame(p);
		while (Native.SteamAPI_ManualDispatch_GetNextCallback(p, callbackMsg)) {
			for (int i = MsgSize; i < MsgSize + GuardSize; i++)
				if (Marshal.ReadByte(callbackMsg, i) != 0xAB) {
					Fail("GetNextCallback wrote beyond the 20-byte CallbackMsg_t (byte " + i + ")");
					Marshal.WriteByte(callbackMsg, i, 0xAB);
				}
			CallbackMsg_t msg = (CallbackMsg_t)Marshal.PtrToStructure(callbackMsg, typeof(CallbackMsg_t));
			try {
				Dispatch(p, msg);
			} finally {
				Native.SteamAPI_ManualDispatch_FreeLastCallback(p);
			}
		}
	}

	static void Dispatch(int p, CallbackMsg_t msg) {
		if (msg.m_hSteamUser != Native.SteamAPI_GetHSteamUser())
			Fail("callback " + msg.m_iCallback + " for user " + msg.m_hSteamUser);
		switch (msg.m_iCallback) {
		case P2PSessionRequest_t.k_iCallback: {
			if (msg.m_cubParam != 8)
				Fail("P2PSessionRequest_t of " + msg.m_cubParam + " bytes");
			if (msg.m_pubParam == IntPtr.Zero) {
				Fail("P2PSessionRequest_t payload NULL");
				return;
			}
			P2PSessionRequest_t req = (P2PSessionRequest_t)Marshal.PtrToStructure(msg.m_pubParam, typeof(P2PSessionRequest_t));
			requests++;
			if (req.m_steamIDRemote.m_SteamID != peer) {
				Fail("session request from " + req.m_steamIDRemote.m_SteamID + ", expected " + peer);
				return;
			}
			// As a game does: accept through the flat API, looking the
			// interface up again.
			if (!Native.ISteamNetworking_AcceptP2PSessionWithUser(Native.SteamAPI_SteamNetworking_v006(), req.m_steamIDRemote))
				Fail("AcceptP2PSessionWithUser false");
			accepted = true;
			break;
		}
		case P2PSessionConnectFail_t.k_iCallback: {
			P2PSessionConnectFail_t f = (P2PSessionConnectFail_t)Marshal.PtrToStructure(msg.m_pubParam, typeof(P2PSessionConnectFail_t));
			Fail("P2PSessionConnectFail for " + f.m_steamIDRemote.m_SteamID + ", error " + f.m_eP2PSessionError);
			break;
		}
		case SteamAPICallCompleted_t.k_iCallback: {
			// Not expected here, but handled as Steamworks.NET does.
			SteamAPICallCompleted_t c = (SteamAPICallCompleted_t)Marshal.PtrToStructure(msg.m_pubParam, typeof(SteamAPICallCompleted_t));
			IntPtr result = Marshal.AllocHGlobal((int)c.m_cubParam + 8);
			bool failed;
			Native.SteamAPI_ManualDispatch_GetAPICallResult(p, c.m_hAsyncCall, result, (int)c.m_cubParam, c.m_iCallback, out failed);
			Marshal.FreeHGlobal(result);
			break;
		}
		}
	}

	static byte Pattern(int seq, int i) { return (byte)(seq * 13 + i * 5 + 3); }

	static byte[] Message(int seq) {
		int size = seq % 40 == 39 ? 200 * 1024 : 8 + (seq * 97) % 3000;
		byte[] b = new byte[size];
		BitConverter.GetBytes(seq).CopyTo(b, 0);
		BitConverter.GetBytes(size).CopyTo(b, 4);
		for (int i = 8; i < size; i++)
			b[i] = Pattern(seq, i);
		return b;
	}

	// A second managed thread: allocates, collects and calls into the
	// library while the game loop runs, so that Mono stops the world while
	// threads are inside Go.
	static void Background() {
		var rnd = new Random(1);
		var keep = new List<byte[]>();
		int n = 0;
		while (!done) {
			for (int i = 0; i < 200; i++)
				keep.Add(new byte[rnd.Next(16, 4096)]);
			if (keep.Count > 5000)
				keep.RemoveRange(0, 4000);
			uint size;
			if (Native.ISteamNetworking_IsP2PPacketAvailable(net, out size, 7))
				Fail("a packet is available on channel 7, where nothing is sent");
			P2PSessionState_t st;
			if (Native.ISteamNetworking_GetP2PSessionState(net, new CSteamID(peer), out st) && st.m_bConnecting > 1)
				Fail("session state m_bConnecting " + st.m_bConnecting);
			if (++n % 10 == 0) {
				GC.Collect();
				backgroundCollections++;
				NullReference("background thread");
			}
			Thread.Sleep(1);
		}
	}

	static int Main(string[] args) {
		self = Arg(args, "--self", 0);
		peer = Arg(args, "--peer", 0);
		int count = (int)Arg(args, "--count", 120);
		if (self == 0 || peer == 0) {
			Print("usage: monogame.exe --self ID --peer ID [--count N]");
			return 2;
		}
		if (Marshal.SizeOf(typeof(CallbackMsg_t)) != 20)
			Fail("CallbackMsg_t is " + Marshal.SizeOf(typeof(CallbackMsg_t)) + " bytes in C#");
		if (Marshal.SizeOf(typeof(P2PSessionState_t)) != 20)
			Fail("P2PSessionState_t is " + Marshal.SizeOf(typeof(P2PSessionState_t)) + " bytes in C#");

		// Before init (Steamworks.NET's interface pointers are still
		// IntPtr.Zero): the library answers, and answers 0.
		if (Native.SteamAPI_GetHSteamPipe() != 0)
			Fail("SteamAPI_GetHSteamPipe() non-zero before init");
		uint sz;
		if (Native.ISteamNetworking_IsP2PPacketAvailable(IntPtr.Zero, out sz, 0) || sz != 0)
			Fail("IsP2PPacketAvailable before init");
		NullReference("after loading the library");

		try {
			return Run(count);
		} catch (Exception e) {
			// EntryPointNotFoundException, DllNotFoundException, ...
			Fail(e.ToString());
			return 1;
		}
	}

	static int Run(int count) {
		if (!Init())
			return 1;
		NullReference("after init");
		IntPtr user = Native.SteamAPI_SteamUser_v023();
		DateTime deadline = DateTime.UtcNow.AddSeconds(15);
		while (!Native.ISteamUser_BLoggedOn(user)) {
			if (DateTime.UtcNow > deadline) {
				Fail("not logged on within 15 s");
				return 1;
			}
			RunCallbacks();
			Thread.Sleep(5);
		}
		ulong id = Native.ISteamUser_GetSteamID(user);
		if (id != self)
			Fail("GetSteamID " + id + ", expected " + self);
		Print("ready " + id);

		var background = new Thread(Background);
		background.IsBackground = true;
		background.Start();

		const int channels = 3;
		var expect = new Queue<int>[channels];
		for (int c = 0; c < channels; c++)
			expect[c] = new Queue<int>();
		int next = 0, echoed = 0, frames = 0, refused = 0;
		byte[] pending = null;
		byte[] buf = new byte[256 * 1024];
		deadline = DateTime.UtcNow.AddSeconds(25);
		while (failures == 0 && (hello == null || echoed < count)) {
			if (DateTime.UtcNow > deadline) {
				Fail("timed out: accepted=" + accepted + " hello=" + (hello != null) + " sent=" + next + " echoed=" + echoed);
				break;
			}
			frames++;
			RunCallbacks();

			// Channel 0 first carries the peer's greeting, then echoes.
			for (int ch = 0; ch < channels; ch++) {
				uint size;
				while (Native.ISteamNetworking_IsP2PPacketAvailable(net, out size, ch)) {
					uint got;
					CSteamID from;
					if (!Native.ISteamNetworking_ReadP2PPacket(net, buf, (uint)buf.Length, out got, out from, ch)) {
						Fail("ReadP2PPacket false after IsP2PPacketAvailable");
						break;
					}
					if (got != size)
						Fail("read " + got + " bytes, IsP2PPacketAvailable said " + size);
					if (from.m_SteamID != peer)
						Fail("packet from " + from.m_SteamID);
					if (!accepted)
						Fail("a packet was readable before we accepted the session");
					if (hello == null) {
						hello = new byte[got];
						Array.Copy(buf, hello, got);
						string s = Encoding.ASCII.GetString(hello).TrimEnd('\0');
						if (ch != 0 || s != "hello from the C++ game")
							Fail("first packet \"" + s + "\" on channel " + ch);
						continue;
					}
					if (expect[ch].Count == 0) {
						Fail("unexpected packet of " + got + " bytes on channel " + ch);
						continue;
					}
					int seq = expect[ch].Dequeue();
					byte[] want = Message(seq);
					bool same = got == want.Length;
					for (int i = 0; same && i < got; i++)
						same = buf[i] == want[i];
					if (!same)
						Fail("echo of message " + seq + " on channel " + ch + " differs (" + got + " bytes, want " + want.Length + ")");
					echoed++;
				}
			}

			// Send up to 4 messages a frame, once the session is accepted,
			// keeping at most 40 unanswered; a false is backpressure.
			for (int k = 0; accepted && hello != null && k < 4 && next < count && next - echoed < 40; k++) {
				if (pending == null)
					pending = Message(next);
				EP2PSend type = next % 3 == 2 ? EP2PSend.k_EP2PSendReliableWithBuffering : EP2PSend.k_EP2PSendReliable;
				if (!Native.ISteamNetworking_SendP2PPacket(net, new CSteamID(peer), pending, (uint)pending.Length, type, next % channels)) {
					refused++;
					break;
				}
				expect[next % channels].Enqueue(next);
				pending = null;
				next++;
			}

			// Garbage, and a full collection every frame, while the Go
			// runtime's threads run.
			var garbage = new List<object>();
			for (int i = 0; i < 100; i++)
				garbage.Add(new string('x', i));
			GC.Collect();
			Thread.Sleep(1);
		}
		done = true;
		background.Join();

		P2PSessionState_t st;
		if (!Native.ISteamNetworking_GetP2PSessionState(net, new CSteamID(peer), out st))
			Fail("GetP2PSessionState false with an active session");
		else if (st.m_bConnectionActive != 1)
			Fail("session not active: connecting=" + st.m_bConnecting + " error=" + st.m_eP2PSessionError);
		if (requests == 0)
			Fail("no P2PSessionRequest_t was dispatched");

		Native.SteamAPI_Shutdown();
		if (Native.SteamAPI_GetHSteamPipe() != 0)
			Fail("SteamAPI_GetHSteamPipe() non-zero after shutdown");
		uint after;
		if (Native.ISteamNetworking_IsP2PPacketAvailable(net, out after, 0))
			Fail("IsP2PPacketAvailable true after shutdown");
		if (Native.SteamAPI_ManualDispatch_GetNextCallback(pipe, callbackMsg))
			Fail("GetNextCallback true after shutdown");
		GC.Collect();
		NullReference("after shutdown");
		Marshal.FreeHGlobal(callbackMsg);
		if (failures != 0)
			return 1;
		Print("PASS echoed=" + echoed + " frames=" + frames + " refused=" + refused +
			" requests=" + requests + " collections=" + GC.CollectionCount(GC.MaxGeneration) +
			" background_collections=" + backgroundCollections + " null_checks=" + nullChecks);
		return 0;
	}
}

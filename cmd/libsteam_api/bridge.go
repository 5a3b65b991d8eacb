package main

/*
#include <stdlib.h>
#include "p2pc.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/p2pcompat/p2pcompat/p2p"
)

// The bridge: the C side calls these with plain integers and pointers it
// has checked (non-NULL where the call needs it). The game's pointers are
// used only for the length of a call, never kept.

var (
	// netw is the initialised library's Networking; nil before init and
	// after shutdown. Calls that race with shutdown load the old one and
	// answer false, as a closed Networking does.
	netw atomic.Pointer[p2p.Networking]
	// relayRefused: the player set P2PCOMPAT_RELAY=0, which no
	// AllowP2PPacketRelay(true) of the game overrides.
	relayRefused atomic.Bool

	lifeMu  sync.Mutex // init and shutdown (the C side serialises them too)
	logFile io.Closer
	// identityLock holds the identity key's lock while initialised.
	identityLock io.Closer
)

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// writeC copies s into a C buffer of capacity cap, NUL-terminated.
func writeC(buf *C.char, capacity C.int, s string) {
	if buf == nil || capacity <= 0 {
		return
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(capacity))
	n := copy(dst[:len(dst)-1], s)
	dst[n] = 0
}

//export p2pcGoInit
func p2pcGoInit(errBuf *C.char, errCap C.int, persona *C.char, personaCap C.int, steamID *C.uint64_t, appID *C.uint32_t) C.int {
	lifeMu.Lock()
	defer lifeMu.Unlock()
	code, err := start(persona, personaCap, steamID, appID)
	if err != nil {
		writeC(errBuf, errCap, "p2pcompat: "+err.Error())
	}
	return code
}

// liveEnv reads the process's environment as it is now. Go's os.Getenv
// reads a copy taken when the library was loaded, and games set SteamAppId
// and the like with setenv just before init (GodotSteam's own advice).
func liveEnv(key string) string {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	if v := C.getenv(k); v != nil {
		return C.GoString(v)
	}
	return ""
}

func libraryDir() string {
	var buf [4096]C.char
	C.p2pc_library_dir(&buf[0], C.int(len(buf)))
	return C.GoString(&buf[0])
}

func start(persona *C.char, personaCap C.int, steamID *C.uint64_t, appID *C.uint32_t) (C.int, error) {
	wd, _ := os.Getwd()
	s, err := loadSettings(sources{getenv: liveEnv, libDir: libraryDir(), workDir: wd, restartApp: uint32(C.p2pc_restart_app_id())})
	if err != nil {
		return C.P2PC_INIT_FAILED_GENERIC, err
	}
	log, closer, err := s.logger()
	if err != nil {
		return C.P2PC_INIT_FAILED_GENERIC, err
	}
	n, err := p2p.New(p2p.Config{
		SteamID:              p2p.SteamID(s.steamID),
		AppID:                s.appID,
		RendezvousAddr:       s.rendezvous.value,
		RendezvousKey:        s.rendezvousKey,
		Token:                s.token,
		PrivateKey:           s.identity,
		Certificate:          s.certificate,
		CertificateKey:       s.certificateKey,
		ListenAddr:           s.listen,
		ConnectTimeout:       s.connectTimeout,
		MaxSessions:          s.maxSessions,
		IdleTimeout:          s.idleTimeout,
		KeepaliveInterval:    s.keepalive,
		SessionRequestRepeat: s.requestRepeat,
		SendBufferSize:       s.sendBuffer,
		NagleDelay:           s.nagleDelay,
		RegisterTimeout:      s.registerTimeout,
		RendezvousRefresh:    s.rendezvousRefresh,
		Logger:               log,
	})
	if err != nil {
		code, msg := describeNewError(err, s)
		log.Error("init failed: " + msg)
		if closer != nil {
			closer.Close()
		}
		if s.identityLock != nil {
			s.identityLock.Close()
		}
		return code, errors.New(msg)
	}
	relayRefused.Store(!s.relay)
	if !s.relay {
		n.AllowP2PPacketRelay(false)
	}
	n.OnP2PSessionRequest(func(r p2p.P2PSessionRequest) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(r.SteamIDRemote))
		C.p2pc_post(C.P2PC_CB_SESSION_REQUEST, unsafe.Pointer(&b[0]), C.int(len(b)))
	})
	n.OnP2PSessionConnectFail(func(f p2p.P2PSessionConnectFail) {
		var b [9]byte
		binary.LittleEndian.PutUint64(b[:], uint64(f.SteamIDRemote))
		b[8] = byte(f.SessionError)
		C.p2pc_post(C.P2PC_CB_CONNECT_FAIL, unsafe.Pointer(&b[0]), C.int(len(b)))
	})
	n.OnSteamServersConnected(func(p2p.SteamServersConnected) {
		var b [1]byte
		C.p2pc_post(C.P2PC_CB_SERVERS_CONNECTED, unsafe.Pointer(&b[0]), C.int(len(b)))
	})
	n.OnSteamServersDisconnected(func(p2p.SteamServersDisconnected) {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], C.P2PC_ERESULT_NO_CONNECTION)
		C.p2pc_post(C.P2PC_CB_SERVERS_DISCONNECTED, unsafe.Pointer(&b[0]), C.int(len(b)))
	})
	netw.Store(n)
	logFile = closer
	if s.identityLock != nil {
		identityLock = s.identityLock
	}
	if s.identityShared {
		log.Info("another copy of the game holds the identity key: this one runs with a fresh key", "identity_file", s.identityPath)
	}
	log.Info("initialised", "steamid", s.steamID, "app", s.appID, "app_from", s.appFrom,
		"rendezvous", s.rendezvous.value, "local", n.LocalAddr().String(), "relay", s.relay)
	writeC(persona, personaCap, s.name)
	*steamID = C.uint64_t(s.steamID)
	*appID = C.uint32_t(s.appID)
	return C.P2PC_INIT_OK, nil
}

// describeNewError turns p2p.New's error into what the player should
// know, naming the setting to change, and the init result.
func describeNewError(err error, s *settings) (C.int, string) {
	var refused *p2p.RefusedError
	var cfgErr *p2p.ConfigError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return C.P2PC_INIT_NO_STEAM_CLIENT, fmt.Sprintf("no rendezvous answered at %s %s", s.rendezvous.value, s.rendezvous.where())
	case errors.Is(err, p2p.ErrNoRightsToApp):
		return C.P2PC_INIT_FAILED_GENERIC, fmt.Sprintf("the rendezvous at %s does not admit AppID %d (from %s)", s.rendezvous.value, s.appID, s.appFrom)
	case errors.As(err, &refused):
		switch refused.Reason {
		case p2p.RefuseTokenMissing, p2p.RefuseTokenInvalid, p2p.RefuseTokenExpired, p2p.RefuseTokenWrongID, p2p.RefuseTokenWrongApp:
			return C.P2PC_INIT_FAILED_GENERIC, fmt.Sprintf("the rendezvous at %s refused the registration: %s (P2PCOMPAT_TOKEN)", s.rendezvous.value, refused.Reason)
		case p2p.RefuseIDInUse:
			return C.P2PC_INIT_FAILED_GENERIC, fmt.Sprintf("the rendezvous at %s refused the registration: SteamID %d is online under another identity key "+
				"(another copy of the game, or one that ran with another P2PCOMPAT_IDENTITY_FILE; it lapses 30 s after that copy stops)", s.rendezvous.value, s.steamID)
		}
		return C.P2PC_INIT_FAILED_GENERIC, fmt.Sprintf("the rendezvous at %s refused the registration: %s", s.rendezvous.value, refused.Reason)
	case errors.As(err, &cfgErr) && cfgErr.Field == "RendezvousAddr":
		return C.P2PC_INIT_FAILED_GENERIC, fmt.Sprintf("rendezvous address %q: %s %s", s.rendezvous.value, cfgErr.Reason, s.rendezvous.where())
	}
	return C.P2PC_INIT_FAILED_GENERIC, fmt.Sprintf("%v (rendezvous %s %s)", err, s.rendezvous.value, s.rendezvous.where())
}

//export p2pcGoShutdown
func p2pcGoShutdown() {
	lifeMu.Lock()
	defer lifeMu.Unlock()
	if n := netw.Swap(nil); n != nil {
		n.Close()
	}
	if logFile != nil {
		logFile.Close()
		logFile = nil
	}
	if identityLock != nil {
		identityLock.Close() // the next copy, or the next init, may use the key
		identityLock = nil
	}
}

//export p2pcGoPump
func p2pcGoPump() {
	if n := netw.Load(); n != nil {
		n.RunCallbacks()
	}
}

//export p2pcGoSend
func p2pcGoSend(remote C.uint64_t, data unsafe.Pointer, size C.uint32_t, sendType C.int, channel C.int) C.int {
	n := netw.Load()
	if n == nil || size > p2p.MaxReliablePacketSize {
		return 0
	}
	b := []byte{}
	if size > 0 {
		b = unsafe.Slice((*byte)(data), int(size)) // copied by the send
	}
	return cbool(n.SendP2PPacket(p2p.SteamID(remote), b, p2p.P2PSend(sendType), int(channel)))
}

//export p2pcGoIsAvailable
func p2pcGoIsAvailable(size *C.uint32_t, channel C.int) C.int {
	*size = 0
	n := netw.Load()
	if n == nil {
		return 0
	}
	sz, ok := n.IsP2PPacketAvailable(int(channel))
	*size = C.uint32_t(sz)
	return cbool(ok)
}

//export p2pcGoRead
func p2pcGoRead(dest unsafe.Pointer, capacity C.uint32_t, size *C.uint32_t, from *C.uint64_t, channel C.int) C.int {
	*size, *from = 0, 0
	n := netw.Load()
	if n == nil {
		return 0
	}
	var buf []byte
	if capacity > 0 {
		buf = unsafe.Slice((*byte)(dest), int(capacity))
	}
	sz, remote, ok := n.ReadP2PPacket(buf, int(channel))
	if !ok {
		return 0
	}
	*size, *from = C.uint32_t(sz), C.uint64_t(remote)
	return 1
}

//export p2pcGoAccept
func p2pcGoAccept(remote C.uint64_t) C.int {
	n := netw.Load()
	return cbool(n != nil && n.AcceptP2PSessionWithUser(p2p.SteamID(remote)))
}

//export p2pcGoCloseSession
func p2pcGoCloseSession(remote C.uint64_t) C.int {
	n := netw.Load()
	return cbool(n != nil && n.CloseP2PSessionWithUser(p2p.SteamID(remote)))
}

//export p2pcGoCloseChannel
func p2pcGoCloseChannel(remote C.uint64_t, channel C.int) C.int {
	n := netw.Load()
	return cbool(n != nil && n.CloseP2PChannelWithUser(p2p.SteamID(remote), int(channel)))
}

//export p2pcGoGetState
func p2pcGoGetState(remote C.uint64_t, st *C.p2pc_session_state) C.int {
	n := netw.Load()
	if n == nil {
		return 0
	}
	s, ok := n.GetP2PSessionState(p2p.SteamID(remote))
	if !ok {
		return 0
	}
	b := func(v bool) C.uint8_t { return C.uint8_t(cbool(v)) }
	st.active = b(s.ConnectionActive)
	st.connecting = b(s.Connecting)
	st.error = C.uint8_t(s.SessionError)
	st.using_relay = b(s.UsingRelay)
	st.bytes_queued = C.int32_t(s.BytesQueuedForSend) // int32 already, as in Steam's struct
	st.packets_queued = C.int32_t(s.PacketsQueuedForSend)
	st.remote_ip = C.uint32_t(s.RemoteIP)
	st.remote_port = C.uint16_t(s.RemotePort)
	return 1
}

//export p2pcGoAllowRelay
func p2pcGoAllowRelay(allow C.int) C.int {
	n := netw.Load()
	if n == nil {
		// Steam answers true whatever the state (C51).
		return 1
	}
	return cbool(n.AllowP2PPacketRelay(allow != 0 && !relayRefused.Load()))
}

//export p2pcGoLoggedOn
func p2pcGoLoggedOn() C.int {
	n := netw.Load()
	return cbool(n != nil && n.LoggedOn())
}

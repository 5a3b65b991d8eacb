package session

import (
	"encoding/binary"
	"errors"

	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// Handshake messages travel in KindHandshake packets:
//
//	header (authenticated, clear): kind(1) sender SteamID(8) receiver SteamID(8)
//	sealed body:                   type(1) srcSession(8) dstSession(8) flags(1) token(8)
//
// They are sealed with the pair key that only the two vouched-for users can
// derive, so a hello proves who sent it.
const (
	hsHello byte = 1
	hsClose byte = 2
)

const (
	flagAccepted  byte = 1 << 0 // the sender accepts the session (C32/C33)
	flagWantReply byte = 1 << 1 // a probe: answer it on the pair it came on
	flagReply     byte = 1 << 2 // an answer: token echoes the probe's
)

const (
	hsHeaderLen = 17
	hsBodyLen   = 26
	// dataHeaderLen: kind(1) dstSession(8) pn(8).
	dataHeaderLen = 17
)

var errShort = errors.New("session: short packet")

type hsBody struct {
	typ      byte
	src, dst uint64
	flags    byte
	token    uint64
}

func appendHSHeader(b []byte, from, to SteamID) []byte {
	b = append(b, byte(wire.KindHandshake))
	b = binary.BigEndian.AppendUint64(b, uint64(from))
	return binary.BigEndian.AppendUint64(b, uint64(to))
}

func appendHSBody(b []byte, m hsBody) []byte {
	b = append(b, m.typ)
	b = binary.BigEndian.AppendUint64(b, m.src)
	b = binary.BigEndian.AppendUint64(b, m.dst)
	b = append(b, m.flags)
	return binary.BigEndian.AppendUint64(b, m.token)
}

func parseHSBody(b []byte) (hsBody, error) {
	if len(b) != hsBodyLen {
		return hsBody{}, errShort
	}
	m := hsBody{typ: b[0], src: binary.BigEndian.Uint64(b[1:]), dst: binary.BigEndian.Uint64(b[9:]), flags: b[17], token: binary.BigEndian.Uint64(b[18:])}
	if m.typ != hsHello && m.typ != hsClose || m.src == 0 {
		return hsBody{}, errShort
	}
	return m, nil
}

func appendDataHeader(b []byte, dst, pn uint64) []byte {
	b = append(b, byte(wire.KindData))
	b = binary.BigEndian.AppendUint64(b, dst)
	return binary.BigEndian.AppendUint64(b, pn)
}

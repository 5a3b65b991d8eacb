package session

import (
	"bytes"
	"testing"
)

// FuzzHandshakeBody checks parseHSBody, which reads the plaintext of every
// handshake packet that opened: it never panics, and whatever it accepts
// re-encodes to the very same bytes, so that no two bodies mean one message.
// Seeds: f.Add below and testdata/fuzz/FuzzHandshakeBody (real bodies opened
// from a world's handshake packets; see TestWriteFuzzSeeds).
func FuzzHandshakeBody(f *testing.F) {
	for _, m := range []hsBody{
		{typ: hsHello, src: 1, dst: 0, flags: flagWantReply, token: 0x0123456789abcdef},
		{typ: hsHello, src: 5, dst: 9, flags: flagAccepted | flagReply, token: 1},
		{typ: hsHello, src: ^uint64(0), dst: ^uint64(0), flags: 0xff, token: ^uint64(0)},
		{typ: hsClose, src: 7, dst: 8},
	} {
		f.Add(appendHSBody(nil, m))
	}
	f.Add([]byte{})
	f.Add(make([]byte, hsBodyLen))                               // type 0, src 0
	f.Add(append([]byte{hsHello}, make([]byte, hsBodyLen-1)...)) // src 0
	f.Add(append([]byte{3}, bytes.Repeat([]byte{1}, hsBodyLen-1)...))
	f.Add(bytes.Repeat([]byte{hsHello}, hsBodyLen+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseHSBody(b)
		if err != nil {
			if m != (hsBody{}) {
				t.Fatalf("parseHSBody(% x) failed but returned %+v", b, m)
			}
			return
		}
		if m.typ != hsHello && m.typ != hsClose {
			t.Fatalf("parseHSBody(% x) accepted type %d", b, m.typ)
		}
		if m.src == 0 {
			t.Fatalf("parseHSBody(% x) accepted source session 0", b)
		}
		if again := appendHSBody(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("parseHSBody accepted % x but it re-encodes as % x", b, again)
		}
	})
}

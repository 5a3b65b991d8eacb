package relayfallback

import (
	"encoding/binary"
	"testing"

	"github.com/pion/stun"
)

// FuzzHandleInbound feeds datagrams "from the TURN server" to a client
// with a live allocation and a permission: whatever the
// bytes, HandleInbound returns without a panic and keeps nothing of them,
// and the client still relays afterwards. Seeds: the shapes of what a TURN
// server sends (ChannelData, Data indications, answers of the four TURN
// methods, a Binding answer) and broken versions of each.
func FuzzHandleInbound(f *testing.F) {
	_, server := startTURN(f)
	h := newHarness(f, server, testPass)
	h.allocate()
	peer := peerSocket(f)
	h.client.Permit(addrOf(peer))
	from := h.client.ServerAddr()
	// The seeds once before fuzzing, then a datagram through the relay: a
	// client that took them still relays.
	for _, s := range turnSeeds() {
		h.client.HandleInbound(append([]byte(nil), s...), from)
		f.Add(s)
	}
	if err := h.client.WriteTo([]byte("after"), addrOf(peer)); err != nil {
		f.Fatalf("send after the seeds: %v", err)
	}
	if d := readPeer(f, peer); string(d.b) != "after" {
		f.Fatalf("the peer read %q", d.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h.client.HandleInbound(b, from)
		// The client must not keep b: scribbling over it changes nothing.
		for i := range b {
			b[i] = 0xFF
		}
	})
}

// turnSeeds are inbound datagrams of every kind the client takes.
func turnSeeds() [][]byte {
	var seeds [][]byte
	cd := make([]byte, 4+5)
	binary.BigEndian.PutUint16(cd[0:2], 0x4000)
	binary.BigEndian.PutUint16(cd[2:4], 5)
	copy(cd[4:], "hello")
	seeds = append(seeds, cd, cd[:6])
	for _, t := range []stun.MessageType{
		{Method: stun.MethodData, Class: stun.ClassIndication},
		{Method: stun.MethodAllocate, Class: stun.ClassSuccessResponse},
		{Method: stun.MethodAllocate, Class: stun.ClassErrorResponse},
		{Method: stun.MethodRefresh, Class: stun.ClassSuccessResponse},
		{Method: stun.MethodCreatePermission, Class: stun.ClassErrorResponse},
		{Method: stun.MethodChannelBind, Class: stun.ClassSuccessResponse},
		{Method: stun.MethodBinding, Class: stun.ClassSuccessResponse},
	} {
		m, err := stun.Build(stun.NewType(t.Method, t.Class), stun.TransactionID, stun.NewNonce("nonce"), stun.NewRealm("realm"), stun.Fingerprint)
		if err == nil {
			seeds = append(seeds, m.Raw, m.Raw[:len(m.Raw)-4])
		}
	}
	return seeds
}

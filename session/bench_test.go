package session

import (
	"encoding/binary"
	"testing"

	"github.com/p2pcompat/p2pcompat/internal/seal"
	"github.com/p2pcompat/p2pcompat/internal/wire"
)

// BenchmarkDataDatagram is the wire and crypto path of one data datagram
// carrying 1200 bytes: header and seal on the way out; classification,
// header, replay check and open on the way in.
func BenchmarkDataDatagram(b *testing.B) {
	kpA, err := seal.GenerateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	kpB, err := seal.GenerateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	pa, err := seal.NewPairKey(kpA, kpB.Public, 1, 2)
	if err != nil {
		b.Fatal(err)
	}
	pb, err := seal.NewPairKey(kpB, kpA.Public, 2, 1)
	if err != nil {
		b.Fatal(err)
	}
	sa, err := pa.SessionKeys(11, 22)
	if err != nil {
		b.Fatal(err)
	}
	sb, err := pb.SessionKeys(22, 11)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1200)
	out := make([]byte, 0, 2048)
	in := make([]byte, 0, 2048)
	var replay seal.ReplayWindow
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var pn uint64
	for b.Loop() {
		pn++
		d := appendDataHeader(out[:0], 22, pn)
		d = sa.Seal(d, d[:dataHeaderLen], pn, payload)

		if k, ok := wire.Classify(d); !ok || k != wire.KindData || binary.BigEndian.Uint64(d[1:9]) != 22 {
			b.Fatal("not a data datagram for session 22")
		}
		rpn := binary.BigEndian.Uint64(d[9:17])
		if !replay.Check(rpn) {
			b.Fatal("fresh packet number refused")
		}
		pt, err := sb.Open(in[:0], d[:dataHeaderLen], rpn, d[dataHeaderLen:])
		if err != nil || len(pt) != len(payload) {
			b.Fatal("open failed")
		}
		replay.Accept(rpn)
	}
}

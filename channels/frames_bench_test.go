package channels

import "testing"

// BenchmarkAckFrameCodec encodes and decodes an ACK frame carrying eight
// ranges, as a receiver behind a lossy link sends them.
func BenchmarkAckFrameCodec(b *testing.B) {
	var recv rangeSet
	for i := uint64(0); i < 8; i++ {
		recv.add(i*100, i*100+90)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out := appendAck(buf[:0], &recv, 250, 1<<22)
		r := reader{b: out[1:]}
		var f ackFrame
		r.ack(&f)
		if r.err != nil {
			b.Fatal(r.err)
		}
	}
}

package channels

import (
	"encoding/binary"

	"github.com/p2pcompat/p2pcompat/internal/bufpool"
)

// parser cuts the reliable stream back into messages. The stream arrives in
// arbitrary pieces, so a message header may straddle two STREAM frames.
type parser struct {
	hdr   [2 * binary.MaxVarintLen64]byte
	hn    int
	inMsg bool
	ch    int
	msg   []byte
	need  int
}

// growFrom is the largest buffer a message header alone obtains.
const growFrom = 64 << 10

// feed consumes b and calls deliver for each completed message.
func (p *parser) feed(b []byte, deliver func(ch int, msg []byte)) error {
	for len(b) > 0 {
		if !p.inMsg {
			p.hdr[p.hn] = b[0]
			p.hn++
			b = b[1:]
			ch, n1 := binary.Uvarint(p.hdr[:p.hn])
			if n1 < 0 || (n1 == 0 && p.hn >= binary.MaxVarintLen64) {
				return ErrMalformed
			}
			if n1 == 0 {
				continue
			}
			size, n2 := binary.Uvarint(p.hdr[n1:p.hn])
			if n2 < 0 || (n2 == 0 && p.hn-n1 >= binary.MaxVarintLen64) {
				return ErrMalformed
			}
			if n2 == 0 {
				continue
			}
			if ch > maxChannel || size > MaxReliableSize {
				return ErrMalformed
			}
			p.hn = 0
			p.ch = int(ch)
			p.need = int(size)
			// Up to 64 KiB the message's buffer comes whole from the
			// pool; beyond, it grows with the data rather than trusting
			// the declared size: a header alone must not pin a megabyte.
			p.msg = bufpool.Get(min(int(size), growFrom))[:0]
			p.inMsg = true
			if size == 0 {
				p.inMsg = false
				deliver(p.ch, p.msg)
				p.msg = nil
			}
			continue
		}
		n := p.need - len(p.msg)
		if n > len(b) {
			n = len(b)
		}
		if len(p.msg)+n > cap(p.msg) {
			grown := bufpool.Get(min(p.need, 2*cap(p.msg)))[:len(p.msg)]
			copy(grown, p.msg)
			bufpool.Put(p.msg)
			p.msg = grown
		}
		p.msg = append(p.msg, b[:n]...)
		b = b[n:]
		if len(p.msg) == p.need {
			p.inMsg = false
			deliver(p.ch, p.msg)
			p.msg = nil
		}
	}
	return nil
}

package session

import "github.com/p2pcompat/p2pcompat/channels"

// inPacket is one received message waiting for ReadP2PPacket.
type inPacket struct {
	remote SteamID
	data   []byte
	owner  *session         // whose receive window it counts against; nil for loopback
	engine *channels.Engine // the engine that delivered it: a newer one owes it nothing
}

// recvQueue is the FIFO of one channel, across all users (C21).
type recvQueue struct {
	items []inPacket
	head  int
}

func (q *recvQueue) len() int { return len(q.items) - q.head }

func (q *recvQueue) push(p inPacket) { q.items = append(q.items, p) }

func (q *recvQueue) front() *inPacket { return &q.items[q.head] }

func (q *recvQueue) pop() inPacket {
	p := q.items[q.head]
	q.items[q.head] = inPacket{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	return p
}

// removeIf drops the waiting packets that match and returns their size.
func (q *recvQueue) removeIf(match func(*inPacket) bool) (removed []inPacket) {
	out := q.items[:q.head]
	for i := q.head; i < len(q.items); i++ {
		if match(&q.items[i]) {
			removed = append(removed, q.items[i])
			continue
		}
		out = append(out, q.items[i])
	}
	for i := len(out); i < len(q.items); i++ {
		q.items[i] = inPacket{}
	}
	q.items = out
	return removed
}

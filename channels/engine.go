package channels

import (
	"errors"
	"sort"
	"time"

	"github.com/p2pcompat/p2pcompat/internal/bufpool"
	"github.com/p2pcompat/p2pcompat/internal/cfgerr"
)

// SendType is the Steam send type: the values are the wire-compatible enum
// of ISteamNetworking's EP2PSend.
type SendType int32

// The four send types (COMPAT C10-C13).
const (
	Unreliable            SendType = 0
	UnreliableNoDelay     SendType = 1
	Reliable              SendType = 2
	ReliableWithBuffering SendType = 3
)

// Size limits of one message (COMPAT C04), both inclusive.
const (
	MaxUnreliableSize = 1200
	MaxReliableSize   = 1 << 20
)

// Errors of Send. They are the typed errors behind SendP2PPacket's false.
var (
	ErrPacketTooLarge  = errors.New("channels: packet too large for its send type")
	ErrInvalidSendType = errors.New("channels: invalid send type")
	ErrInvalidChannel  = errors.New("channels: invalid channel")
	ErrSendBufferFull  = errors.New("channels: send buffer full")
)

// MessageOverhead is what every delivered message costs against the
// receive window besides its bytes, so that a flood of empty messages is
// bounded like a flood of large ones.
const MessageOverhead = 64

// Cost is what a delivered message of n bytes counts against the receive
// window until Consumed returns it.
func Cost(n int) int { return n + MessageOverhead }

// maxOutOfOrder caps the fragments held beyond a gap in the stream; more
// would make every insertion slow and let a peer pin memory in slivers.
const maxOutOfOrder = 1024

// errNoRoom reports a packet that could not be taken whole; it is left
// unacknowledged so the sender repeats its data later.
var errNoRoom = errors.New("channels: no room for packet")

// initialMaxOffset is how far a sender may run ahead before the receiver's
// first ACK states its window: a little more than one maximal message, so
// that the first message of a session never waits on flow control.
const initialMaxOffset = MaxReliableSize + 64<<10

// ConfigError is the error New returns for a Config it refuses: Field
// names the field, Reason says why, and Config is "channels.Config". It
// is the same type as the ConfigError of every other package of the
// module.
type ConfigError = cfgerr.Error

// Config tunes an Engine. The zero value of every field means its default.
type Config struct {
	MaxPayload     int           // plaintext bytes per packet; 0 means 1232
	SendBufferSize int           // per-session send queue cap (C07); 0 means 1 MiB
	RecvWindow     int           // unread bytes a peer may push at us; 0 means 4 MiB
	NagleDelay     time.Duration // ReliableWithBuffering hold time (C13); 0 means 200 ms
	NagleThreshold int           // buffered bytes that force a flush; 0 means 1200
	MaxAckDelay    time.Duration // how long an ACK may wait; 0 means 5 ms
	InitialRTT     time.Duration // RTT assumed before the first sample; 0 means 100 ms
}

// Validate reports the first field of c that New refuses: a negative
// size or duration, as a *ConfigError.
func (c Config) Validate() error {
	const cfg = "channels.Config"
	switch {
	case c.MaxPayload < 0:
		return cfgerr.Negative(cfg, "MaxPayload")
	case c.SendBufferSize < 0:
		return cfgerr.Negative(cfg, "SendBufferSize")
	case c.RecvWindow < 0:
		return cfgerr.Negative(cfg, "RecvWindow")
	case c.NagleDelay < 0:
		return cfgerr.Negative(cfg, "NagleDelay")
	case c.NagleThreshold < 0:
		return cfgerr.Negative(cfg, "NagleThreshold")
	case c.MaxAckDelay < 0:
		return cfgerr.Negative(cfg, "MaxAckDelay")
	case c.InitialRTT < 0:
		return cfgerr.Negative(cfg, "InitialRTT")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1232
	}
	if c.MaxPayload < 1232 {
		// An unreliable message of 1200 bytes on the largest channel must fit.
		c.MaxPayload = 1232
	}
	if c.SendBufferSize <= 0 {
		c.SendBufferSize = 1 << 20
	}
	if c.RecvWindow <= 0 {
		c.RecvWindow = 4 << 20
	}
	if c.RecvWindow < initialMaxOffset {
		c.RecvWindow = initialMaxOffset
	}
	if c.NagleDelay <= 0 {
		c.NagleDelay = 200 * time.Millisecond
	}
	if c.NagleThreshold <= 0 {
		c.NagleThreshold = 1200
	}
	if c.MaxAckDelay <= 0 {
		c.MaxAckDelay = 5 * time.Millisecond
	}
	if c.InitialRTT <= 0 {
		c.InitialRTT = 100 * time.Millisecond
	}
	return c
}

// chunk is one reliable message as framed on the stream.
type chunk struct {
	off uint64
	b   []byte
}

type unrelMsg struct {
	ch   int
	data []byte
}

// sentPacket remembers what one packet carried until it is acked or lost.
type sentPacket struct {
	pn           uint64
	sent         time.Time
	size         int
	ackEliciting bool
	done         bool // acked or declared lost
	nspans       uint8
	spans        [maxSpansPerPacket]span
}

const maxSpansPerPacket = 4

// Stats is a snapshot of the engine's view of the path.
type Stats struct {
	SmoothedRTT   time.Duration
	RTTVar        time.Duration
	MinRTT        time.Duration
	Cwnd          int
	BytesInFlight int
	PacketsSent   uint64
	PacketsLost   uint64
	PacketsRecv   uint64
	BytesSent     uint64
	BytesRecv     uint64
}

// Engine is the reliability state of one session in both directions.
// It is not safe for concurrent use; its owner serialises calls.
type Engine struct {
	cfg         Config
	epoch       time.Time // mono zero (see mono)
	deliver     func(channel int, data []byte)
	established bool

	// Send side.
	chunks        fifo[chunk]
	writeOff      uint64 // end of the stream written so far
	ackedOff      uint64 // every byte below is acknowledged
	nextOff       uint64 // every byte below was sent at least once
	flushOff      uint64 // bytes below may be sent; above wait for Nagle
	acked         rangeSet
	retrans       rangeSet
	peerMaxOffset uint64
	nagleDeadline mono
	unrel         fifo[unrelMsg]
	unrelBytes    int

	nextPN          uint64
	sent            []sentPacket
	largestAcked    uint64
	anyAcked        bool
	lossTime        mono
	lastElicitSent  mono
	ptoCount        int
	probes          int
	pingWanted      bool
	windowProbeAt   mono
	windowProbeWait time.Duration

	rtt rttState
	cc  congestion

	// Receive side.
	recvPN        rangeSet
	largestRecv   uint64
	largestRecvAt mono
	ackPending    bool
	ackNow        bool
	ackDeadline   mono
	elicitSince   int
	recvOff       uint64
	ooo           []chunk
	oooSet        rangeSet
	parse         parser
	unread        int
	advertised    uint64

	stats Stats
}

// New returns an engine whose received messages are handed to deliver,
// which owns the slice it is given; its clock starts at now. It refuses a
// cfg that Validate refuses.
func New(cfg Config, now time.Time, deliver func(channel int, data []byte)) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:           cfg,
		epoch:         now.Add(-time.Second), // no mono of a step is zero
		deliver:       deliver,
		peerMaxOffset: initialMaxOffset,
		nextPN:        1,
		advertised:    initialMaxOffset,
	}
	e.rtt.init(cfg.InitialRTT)
	e.cc.init()
	return e, nil
}

// Validate checks a message against the rules of COMPAT C03/C04 without
// queueing it.
func Validate(data []byte, st SendType, channel int) error {
	switch st {
	case Unreliable, UnreliableNoDelay:
		if len(data) > MaxUnreliableSize {
			return ErrPacketTooLarge
		}
	case Reliable, ReliableWithBuffering:
		if len(data) > MaxReliableSize {
			return ErrPacketTooLarge
		}
	default:
		return ErrInvalidSendType
	}
	if channel < 0 || channel > maxChannel {
		return ErrInvalidChannel
	}
	return nil
}

// Send queues one message. Before SetEstablished, Unreliable messages join
// the reliable stream (C15) and UnreliableNoDelay ones are discarded (C11).
func (e *Engine) Send(data []byte, st SendType, channel int, now time.Time) error {
	if err := Validate(data, st, channel); err != nil {
		return err
	}
	if st == UnreliableNoDelay && !e.established {
		return nil
	}
	queued := e.unsent()
	if (st == Unreliable || st == UnreliableNoDelay) && e.established {
		if queued > 0 && queued+len(data) > e.cfg.SendBufferSize {
			return ErrSendBufferFull
		}
		e.unrel.push(unrelMsg{channel, append(bufpool.Get(len(data))[:0], data...)})
		e.unrelBytes += len(data)
		return nil
	}
	n := uvarintLen(uint64(channel)) + uvarintLen(uint64(len(data))) + len(data)
	if queued > 0 && queued+n > e.cfg.SendBufferSize {
		return ErrSendBufferFull
	}
	b := bufpool.Get(n)[:0]
	b = appendUvarint(b, uint64(channel))
	b = appendUvarint(b, uint64(len(data)))
	b = append(b, data...)
	e.chunks.push(chunk{e.writeOff, b})
	e.writeOff += uint64(n)
	if st == ReliableWithBuffering {
		if e.writeOff-e.flushOff >= uint64(e.cfg.NagleThreshold) {
			e.flush()
		} else if e.nagleDeadline.IsZero() {
			e.nagleDeadline = e.mono(now.Add(e.cfg.NagleDelay))
		}
	} else {
		// A Reliable send flushes buffered data (C12); so does an unreliable
		// message that joined the stream, which must keep its place in order.
		e.flush()
	}
	return nil
}

func (e *Engine) flush() {
	e.flushOff = e.writeOff
	e.nagleDeadline = 0
}

// SetEstablished marks the session open: packets may now be sent.
func (e *Engine) SetEstablished(now time.Time) { e.established = true }

// Established reports whether SetEstablished was called.
func (e *Engine) Established() bool { return e.established }

// Queued reports what waits in the send queue: bytes and messages not yet
// acknowledged (reliable) or not yet sent (unreliable).
func (e *Engine) Queued() (bytes, packets int) {
	return int(e.writeOff-e.ackedOff) + e.unrelBytes, e.chunks.len() + e.unrel.len()
}

// unsent is what the send cap (C07) counts: the messages not yet sent in
// full, whole, and the unreliable bytes waiting. A message counts until its
// last byte has left, so a maximal message fills the cap for as long as
// any of it waits. Bytes sent and not yet acknowledged do not count: the
// peer's flow-control window bounds them, and counting them would let a
// sender of maximal messages have only one in flight at a time.
func (e *Engine) unsent() int {
	live := e.chunks.live()
	i := sort.Search(len(live), func(i int) bool { return live[i].off+uint64(len(live[i].b)) > e.nextOff })
	from := e.writeOff
	if i < len(live) {
		from = live[i].off
	}
	return int(e.writeOff-from) + e.unrelBytes
}

// Ping asks for one ack-eliciting packet, the session's keepalive.
func (e *Engine) Ping() { e.pingWanted = true }

// Consumed tells the engine that the application read delivered messages
// worth n (the sum of their Cost), which reopens the receive window.
func (e *Engine) Consumed(n int) {
	e.unread -= n
	if e.unread < 0 {
		e.unread = 0
	}
	if lim := e.maxOffset(); lim >= e.advertised+uint64(e.cfg.RecvWindow/4) {
		e.ackPending = true
		e.ackNow = true
	}
}

// maxOffset is the receive-window limit we grant the peer.
func (e *Engine) maxOffset() uint64 {
	lim := e.recvOff + uint64(e.cfg.RecvWindow)
	if u := uint64(e.unread); u < lim {
		lim -= u
	} else {
		lim = 0
	}
	if lim < e.advertised {
		lim = e.advertised
	}
	return lim
}

// Stats returns a snapshot of the engine's counters and path estimates.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.SmoothedRTT = e.rtt.smoothed
	s.RTTVar = e.rtt.variance
	s.MinRTT = e.rtt.min
	s.Cwnd = e.cc.cwnd
	s.BytesInFlight = e.cc.inFlight
	return s
}

// HandlePacket takes the plaintext of packet pn. An error means the payload
// is malformed or breaks the protocol; nothing of it was applied past the
// failing frame, and the caller should treat the peer as broken.
func (e *Engine) HandlePacket(pn uint64, payload []byte, now time.Time) error {
	if e.recvPN.contains(pn) {
		return nil // duplicate: the replay window normally stops these first
	}
	r := reader{b: payload}
	eliciting, pinged := false, false
	for len(r.b) > 0 && r.err == nil {
		t := r.b[0]
		r.b = r.b[1:]
		switch t {
		case framePing:
			eliciting, pinged = true, true
		case frameAck:
			var f ackFrame
			r.ack(&f)
			if r.err == nil {
				e.onAck(&f, now)
			}
		case frameUnreliable:
			ch := r.uvarint()
			n := r.uvarint()
			data := r.bytes(n)
			if r.err != nil {
				break
			}
			if ch > maxChannel || n > MaxUnreliableSize {
				return ErrMalformed
			}
			eliciting = true
			if c := Cost(len(data)); e.unread+c <= e.cfg.RecvWindow {
				e.unread += c
				e.deliver(int(ch), append(bufpool.Get(len(data))[:0], data...))
			}
		case frameStream:
			off := r.uvarint()
			n := r.uvarint()
			data := r.bytes(n)
			if r.err != nil {
				break
			}
			eliciting = true
			if err := e.onStream(off, data); err == errNoRoom {
				return nil // not recorded, not acked: the sender repeats it
			} else if err != nil {
				return err
			}
		default:
			return ErrMalformed
		}
	}
	if r.err != nil {
		return r.err
	}
	e.stats.PacketsRecv++
	e.stats.BytesRecv += uint64(len(payload))
	e.recvPN.add(pn, pn+1)
	e.recvPN.trimOldest(maxAckRanges)
	outOfOrder := pn != e.largestRecv+1
	if pn > e.largestRecv {
		e.largestRecv = pn
		e.largestRecvAt = e.mono(now)
	}
	if eliciting {
		e.ackPending = true
		e.elicitSince++
		// A PING (a keepalive or a loss probe) is answered at once: its
		// sender waits for nothing else, and a delayed answer would cost a
		// timer wake-up on this side for every quiet session.
		if outOfOrder || pinged || e.elicitSince >= 2 {
			e.ackNow = true
		} else if e.ackDeadline.IsZero() {
			e.ackDeadline = e.mono(now.Add(e.cfg.MaxAckDelay))
		}
	}
	return nil
}

func (e *Engine) onStream(off uint64, data []byte) error {
	end := off + uint64(len(data))
	if end < off {
		return ErrMalformed
	}
	if end > e.maxOffset() {
		return ErrMalformed // the peer ignored the window we granted
	}
	if end <= e.recvOff {
		return nil
	}
	if e.unread >= e.cfg.RecvWindow {
		// The window was granted in stream bytes, but small messages cost
		// more than their bytes: take no more until the game reads.
		return errNoRoom
	}
	if off < e.recvOff {
		data = data[e.recvOff-off:]
		off = e.recvOff
	}
	if off > e.recvOff {
		if len(e.ooo) >= maxOutOfOrder {
			return errNoRoom
		}
		e.oooSet.gaps(off, end, func(a, b uint64) {
			piece := append(bufpool.Get(int(b - a))[:0], data[a-off:b-off]...)
			i := sort.Search(len(e.ooo), func(i int) bool { return e.ooo[i].off > a })
			e.ooo = append(e.ooo, chunk{})
			copy(e.ooo[i+1:], e.ooo[i:])
			e.ooo[i] = chunk{a, piece}
		})
		e.oooSet.add(off, end)
		return nil
	}
	if err := e.consumeStream(data); err != nil {
		return err
	}
	for len(e.ooo) > 0 && e.ooo[0].off <= e.recvOff {
		c := e.ooo[0]
		e.ooo[0] = chunk{}
		e.ooo = e.ooo[1:]
		cend := c.off + uint64(len(c.b))
		if cend <= e.recvOff {
			bufpool.Put(c.b)
			continue
		}
		err := e.consumeStream(c.b[e.recvOff-c.off:])
		bufpool.Put(c.b) // the parser copied what it needed
		if err != nil {
			return err
		}
	}
	e.oooSet.dropBelow(e.recvOff)
	if len(e.ooo) == 0 {
		e.ooo = nil
	}
	return nil
}

func (e *Engine) consumeStream(b []byte) error {
	e.recvOff += uint64(len(b))
	return e.parse.feed(b, func(ch int, msg []byte) {
		e.unread += Cost(len(msg))
		e.deliver(ch, msg)
	})
}

// maxPeerWindow bounds how far past the acknowledged part of the stream
// the peer may let us send, whatever window it claims: what is sent stays
// in memory until acknowledged, and the send cap (C07) counts only what
// has not been sent, so without this a peer that granted a huge window and
// withheld one ACK would make us hold everything sent since.
const maxPeerWindow = maxWindow

func (e *Engine) onAck(f *ackFrame, now time.Time) {
	if f.maxOffset > e.peerMaxOffset {
		e.peerMaxOffset = min(f.maxOffset, e.ackedOff+maxPeerWindow)
	}
	if f.largest >= e.nextPN {
		return // acks a packet we never sent: ignore the ranges
	}
	newlyAcked := false
	var largestNew *sentPacket
	for i := 0; i < f.n; i++ {
		lo, hi := f.ranges[i].lo, f.ranges[i].hi
		j := sort.Search(len(e.sent), func(k int) bool { return e.sent[k].pn >= lo })
		for ; j < len(e.sent) && e.sent[j].pn <= hi; j++ {
			p := &e.sent[j]
			if p.done {
				continue
			}
			p.done = true
			newlyAcked = true
			e.cc.onAcked(p, now)
			for k := 0; k < int(p.nspans); k++ {
				if sp := p.spans[k]; sp.end > e.ackedOff {
					e.acked.add(max(sp.start, e.ackedOff), sp.end)
				}
			}
			if p.pn == f.largest {
				largestNew = p
			}
		}
	}
	if !newlyAcked {
		return
	}
	if !e.anyAcked || f.largest > e.largestAcked {
		e.largestAcked = f.largest
		e.anyAcked = true
	}
	if largestNew != nil && largestNew.ackEliciting {
		// The peer's ACK delay counts at most our MaxAckDelay (RFC 9002
		// §5.3), clamped before it is scaled: a delay from the wire must
		// not overflow into a negative Duration and inflate the RTT.
		delay := time.Duration(min(f.delayUs, uint64(e.cfg.MaxAckDelay/time.Microsecond))) * time.Microsecond
		e.rtt.update(now.Sub(largestNew.sent), delay)
	}
	e.ptoCount = 0
	e.advanceAcked()
	e.detectLoss(now)
	e.compactSent()
}

// advanceAcked moves ackedOff over the acknowledged prefix and frees the
// messages wholly below it.
func (e *Engine) advanceAcked() {
	if len(e.acked.s) > 0 && e.acked.s[0].start <= e.ackedOff && e.acked.s[0].end > e.ackedOff {
		e.ackedOff = e.acked.s[0].end
		e.acked.dropBelow(e.ackedOff)
		e.retrans.dropBelow(e.ackedOff)
	}
	i, live := 0, e.chunks.live()
	for i < len(live) && live[i].off+uint64(len(live[i].b)) <= e.ackedOff {
		bufpool.Put(live[i].b)
		i++
	}
	e.chunks.drop(i)
}

func (e *Engine) detectLoss(now time.Time) {
	e.lossTime = 0
	if !e.anyAcked {
		return
	}
	delay := e.rtt.lossDelay()
	for i := range e.sent {
		p := &e.sent[i]
		if p.pn > e.largestAcked {
			break // sent is in packet-number order
		}
		if p.done {
			continue
		}
		if e.largestAcked-p.pn >= 3 || !now.Before(p.sent.Add(delay)) {
			e.markLost(p, now)
			continue
		}
		if t := e.mono(p.sent.Add(delay)); e.lossTime.IsZero() || t.Before(e.lossTime) {
			e.lossTime = t
		}
	}
}

func (e *Engine) markLost(p *sentPacket, now time.Time) {
	p.done = true
	e.stats.PacketsLost++
	e.cc.onLost(p, now)
	for k := 0; k < int(p.nspans); k++ {
		sp := p.spans[k]
		if sp.end <= e.ackedOff {
			continue
		}
		if sp.start < e.ackedOff {
			sp.start = e.ackedOff
		}
		e.acked.gaps(sp.start, sp.end, func(a, b uint64) { e.retrans.add(a, b) })
	}
}

func (e *Engine) compactSent() {
	i := 0
	for i < len(e.sent) && e.sent[i].done {
		i++
	}
	if i == len(e.sent) {
		e.sent = e.sent[:0]
		return
	}
	if i > 0 && i >= len(e.sent)/2 {
		n := copy(e.sent, e.sent[i:])
		e.sent = e.sent[:n]
	} else if i > 0 {
		e.sent = e.sent[i:]
	}
}

// pto is the probe timeout, backed off exponentially.
func (e *Engine) pto() time.Duration {
	d := e.rtt.pto(e.cfg.MaxAckDelay)
	for i := 0; i < e.ptoCount && d < 2*time.Second; i++ {
		d *= 2
	}
	return d
}

// Deadline is when OnTimer must run next; zero means no timer is needed.
func (e *Engine) Deadline() time.Time {
	var d time.Time
	min := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if e.ackPending && !e.ackNow {
		min(e.timeOf(e.ackDeadline))
	}
	if !e.nagleDeadline.IsZero() {
		min(e.timeOf(e.nagleDeadline))
	}
	min(e.timeOf(e.lossTime))
	if e.cc.elicitingInFlight > 0 {
		min(e.timeOf(e.lastElicitSent.Add(e.pto())))
	}
	min(e.timeOf(e.windowProbeAt))
	return d
}

// OnTimer handles every deadline that has passed. Packets it makes due are
// then drained with NextPacket.
func (e *Engine) OnTimer(now time.Time) {
	at := e.mono(now)
	if e.ackPending && !e.ackDeadline.IsZero() && !at.Before(e.ackDeadline) {
		e.ackNow = true
	}
	if !e.nagleDeadline.IsZero() && !at.Before(e.nagleDeadline) {
		e.flush()
	}
	if !e.lossTime.IsZero() && !at.Before(e.lossTime) {
		e.detectLoss(now)
		e.compactSent()
	} else if e.cc.elicitingInFlight > 0 && !at.Before(e.lastElicitSent.Add(e.pto())) {
		// Nothing was acked for a probe timeout: send one or two probes
		// that carry the oldest outstanding data, or a ping.
		e.ptoCount++
		e.probes = 2
		e.requeueOldest()
	}
	if !e.windowProbeAt.IsZero() && !at.Before(e.windowProbeAt) {
		e.windowProbeAt = 0
		e.pingWanted = true
	}
}

// requeueOldest puts the oldest unacknowledged stream data up for sending
// again, so a probe repairs the most likely loss.
func (e *Engine) requeueOldest() {
	for i := range e.sent {
		p := &e.sent[i]
		if p.done || p.nspans == 0 {
			continue
		}
		for k := 0; k < int(p.nspans); k++ {
			sp := p.spans[k]
			if sp.end > e.ackedOff {
				if sp.start < e.ackedOff {
					sp.start = e.ackedOff
				}
				e.acked.gaps(sp.start, sp.end, func(a, b uint64) { e.retrans.add(a, b) })
			}
		}
		return
	}
}

// NextPacket builds the next packet that is due into buf (which must hold
// MaxPayload bytes) and returns its number and plaintext. ok is false when
// nothing is due; call it until then after every input.
func (e *Engine) NextPacket(buf []byte, now time.Time) (pn uint64, payload []byte, ok bool) {
	if !e.established {
		return 0, nil, false
	}
	max := e.cfg.MaxPayload
	if len(buf) < max {
		max = len(buf)
	}
	b := buf[:0]
	p := sentPacket{pn: e.nextPN}
	eliciting := false

	wantAck := e.ackPending && (e.ackNow || !e.ackDeadline.IsZero() && !e.mono(now).Before(e.ackDeadline))
	hasWork := !e.unrel.empty() || e.pingWanted || e.probes > 0 ||
		(e.canSendStream() && (!e.retrans.empty() || e.nextOff < e.sendLimit()))
	if e.ackPending && hasWork {
		wantAck = true // piggyback
	}
	if wantAck {
		lim := e.maxOffset()
		delay := e.mono(now).Sub(e.largestRecvAt)
		if delay < 0 {
			delay = 0 // a clock that stepped back: no ACK delay rather than one of centuries
		}
		b = appendAck(b, &e.recvPN, uint64(delay/time.Microsecond), lim)
		e.advertised = lim
		e.ackPending, e.ackNow, e.ackDeadline, e.elicitSince = false, false, 0, 0
	}

	// Unreliable messages first: they are the latency-sensitive ones.
	for !e.unrel.empty() {
		m := *e.unrel.front()
		need := 1 + uvarintLen(uint64(m.ch)) + uvarintLen(uint64(len(m.data))) + len(m.data)
		if len(b)+need > max {
			break
		}
		b = append(b, frameUnreliable)
		b = appendUvarint(b, uint64(m.ch))
		b = appendUvarint(b, uint64(len(m.data)))
		b = append(b, m.data...)
		bufpool.Put(m.data)
		e.unrel.drop(1)
		e.unrelBytes -= len(m.data)
		eliciting = true
	}

	probing := e.probes > 0
	if e.canSendStream() || probing {
		// Retransmissions before new data.
		for !e.retrans.empty() && p.nspans < maxSpansPerPacket {
			sp := e.retrans.s[0]
			if sp.start < e.ackedOff {
				e.retrans.dropBelow(e.ackedOff)
				continue
			}
			room := max - len(b) - 1 - uvarintLen(sp.start) - 3
			if room <= 0 {
				break
			}
			end := sp.end
			if end-sp.start > uint64(room) {
				end = sp.start + uint64(room)
			}
			b = e.appendStream(b, sp.start, end)
			e.retrans.remove(sp.start, end)
			p.spans[p.nspans] = span{sp.start, end}
			p.nspans++
			eliciting = true
		}
		limit := e.sendLimit()
		if e.nextOff < limit && p.nspans < maxSpansPerPacket {
			room := max - len(b) - 1 - uvarintLen(e.nextOff) - 3
			if room > 0 {
				end := limit
				if end-e.nextOff > uint64(room) {
					end = e.nextOff + uint64(room)
				}
				b = e.appendStream(b, e.nextOff, end)
				p.spans[p.nspans] = span{e.nextOff, end}
				p.nspans++
				e.nextOff = end
				eliciting = true
			}
		}
	}
	// Blocked by the peer's window with nothing in flight: nothing will
	// bring an ACK by itself, so probe for a window update.
	if e.nextOff < e.flushOff && e.nextOff >= e.peerMaxOffset && e.cc.elicitingInFlight == 0 && e.windowProbeAt.IsZero() {
		if e.windowProbeWait == 0 {
			e.windowProbeWait = e.rtt.pto(e.cfg.MaxAckDelay)
		} else if e.windowProbeWait < time.Second {
			e.windowProbeWait *= 2
		}
		e.windowProbeAt = e.mono(now.Add(e.windowProbeWait))
	} else if e.nextOff < e.peerMaxOffset {
		e.windowProbeWait = 0
	}
	if (e.pingWanted || probing) && !eliciting {
		b = append(b, framePing)
		eliciting = true
	}
	if probing {
		e.probes--
	}
	e.pingWanted = false
	if len(b) == 0 {
		return 0, nil, false
	}
	p.sent = now
	p.size = len(b)
	p.ackEliciting = eliciting
	if eliciting {
		// Only ack-eliciting packets are remembered: nothing acknowledges
		// a packet of ACKs alone, so it could never leave the list.
		e.lastElicitSent = e.mono(now)
		e.cc.onSent(&p)
		e.sent = append(e.sent, p)
	}
	e.nextPN++
	e.stats.PacketsSent++
	e.stats.BytesSent += uint64(len(b))
	return p.pn, b, true
}

// sendLimit is how far new stream data may go: flushed and inside the
// peer's window.
func (e *Engine) sendLimit() uint64 {
	if e.flushOff < e.peerMaxOffset {
		return e.flushOff
	}
	return e.peerMaxOffset
}

// InFlight reports whether packets that ask for an ACK are outstanding:
// the path is busy, and what is sent now can wait for a batch.
func (e *Engine) InFlight() bool { return e.cc.elicitingInFlight > 0 }

func (e *Engine) canSendStream() bool { return e.cc.inFlight < e.cc.cwnd }

// appendStream appends a STREAM frame with stream bytes [start, end).
func (e *Engine) appendStream(b []byte, start, end uint64) []byte {
	b = append(b, frameStream)
	b = appendUvarint(b, start)
	b = appendUvarint(b, end-start)
	chunks := e.chunks.live()
	i := sort.Search(len(chunks), func(i int) bool {
		return chunks[i].off+uint64(len(chunks[i].b)) > start
	})
	for off := start; off < end && i < len(chunks); i++ {
		c := chunks[i]
		from := off - c.off
		to := uint64(len(c.b))
		if c.off+to > end {
			to = end - c.off
		}
		b = append(b, c.b[from:to]...)
		off = c.off + to
	}
	return b
}

// fifo is a queue that reuses its array: items leave from the front by
// moving head, and the live part moves back to the start once half the
// array is dead or the queue empties. A queue that empties after every
// packet then allocates nothing; an emptied queue with a large array lets
// it go, so that an idle session holds little.
type fifo[T any] struct {
	items []T
	head  int
}

// keepQueue is the largest array an emptied fifo keeps.
const keepQueue = 64

func (q *fifo[T]) len() int    { return len(q.items) - q.head }
func (q *fifo[T]) live() []T   { return q.items[q.head:] }
func (q *fifo[T]) front() *T   { return &q.items[q.head] }
func (q *fifo[T]) push(v T)    { q.items = append(q.items, v) }
func (q *fifo[T]) empty() bool { return q.head == len(q.items) }

// drop removes the first n items.
func (q *fifo[T]) drop(n int) {
	clear(q.items[q.head : q.head+n])
	q.head += n
	switch {
	case q.head == len(q.items):
		q.head = 0
		if cap(q.items) > keepQueue {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
	case q.head > 32 && q.head*2 > len(q.items):
		k := copy(q.items, q.items[q.head:])
		clear(q.items[k:])
		q.items, q.head = q.items[:k], 0
	}
}

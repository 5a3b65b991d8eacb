package relayfallback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pion/stun"
)

// The client signs its own CreatePermission and ChannelBind requests and
// frames its own Send indications and ChannelData, rather than going through
// pion's relayed conn; see workLoop for why.

// peerAddress is an XOR-PEER-ADDRESS attribute.
type peerAddress netip.AddrPort

func (p peerAddress) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(p)
	return stun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}.AddToAs(m, stun.AttrXORPeerAddress)
}

// channelNumber is a CHANNEL-NUMBER attribute.
type channelNumber uint16

func (n channelNumber) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0})
	return nil
}

// dataAttr is a DATA attribute.
type dataAttr []byte

func (d dataAttr) AddTo(m *stun.Message) error {
	m.Add(stun.AttrData, d)
	return nil
}

// zeroLifetime is a LIFETIME attribute of 0 seconds: a deallocation.
type zeroLifetime struct{}

func (zeroLifetime) AddTo(m *stun.Message) error {
	m.Add(stun.AttrLifetime, []byte{0, 0, 0, 0})
	return nil
}

// Channel numbers: RFC 8656 §12 allows 0x4000 through 0x4FFF (RFC 5766
// allowed up to 0x7FFF); the narrower range suits servers of both.
const (
	minChannel = 0x4000
	maxChannel = 0x4FFF
	// maxPayload is the most a ChannelData message can carry.
	maxPayload = 1<<16 - 1 - 4
)

// turnError is an error answer to one of the client's own requests.
type turnError struct {
	method stun.Method
	code   int
}

func (e *turnError) Error() string {
	return fmt.Sprintf("relayfallback: %v refused with error %d", e.method, e.code)
}

// request performs a signed request on the client's behalf, through pion's
// transactions (which retransmit and which Close ends). A 438 Stale Nonce is
// retried once with the nonce it brought.
func (c *Client) request(method stun.Method, attrs ...stun.Setter) error {
	for attempt := 0; ; attempt++ {
		setters := make([]stun.Setter, 0, len(attrs)+7)
		setters = append(setters, stun.TransactionID, stun.NewType(method, stun.ClassRequest))
		setters = append(setters, attrs...)
		setters = append(setters, c.auth.username, c.auth.realm, c.obs.currentNonce(), c.auth.integrity, stun.Fingerprint)
		msg, err := stun.Build(setters...)
		if err != nil {
			return err
		}
		res, err := c.turn.PerformTransaction(msg, c.serverUDP, false)
		if err != nil {
			return err
		}
		code := errorCode(res.Msg)
		if code == 0 {
			return nil
		}
		var nonce stun.Nonce
		if code == int(stun.CodeStaleNonce) && attempt == 0 && nonce.GetFrom(res.Msg) == nil {
			c.obs.setNonce(nonce)
			continue
		}
		return &turnError{method: method, code: code}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1500); return &b }}

var errTooLarge = errors.New("relayfallback: datagram too large for the relay")

// sendChannelData frames b on a bound channel (no padding: over UDP it is
// optional, RFC 5766 §11.5) and sends it without allocating.
func (c *Client) sendChannelData(number uint16, b []byte) error {
	bp := bufPool.Get().(*[]byte)
	buf := binary.BigEndian.AppendUint16((*bp)[:0], number)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(b)))
	buf = append(buf, b...)
	err := c.conn.write(buf, c.server, false)
	*bp = buf[:0]
	bufPool.Put(bp)
	return err
}

// sendIndication sends b in a Send indication, which needs only the
// permission; it carries the datagrams to a peer until its channel is bound.
func (c *Client) sendIndication(b []byte, peer netip.AddrPort) error {
	msg, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		dataAttr(b), peerAddress(peer), stun.Fingerprint)
	if err != nil {
		return err
	}
	return c.conn.write(msg.Raw, c.server, false)
}

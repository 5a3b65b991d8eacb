//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runDelay is a link delay for kernels without sch_netem: iptables sends
// the packets to an NFQUEUE, and each queue's packets are released
// (NF_ACCEPT) a fixed time after they arrived. A constant delay per queue
// keeps each queue in order, so one FIFO per queue is enough. Only the
// packets' metadata crosses to user space.
func runDelay(args []string) error {
	fs := flag.NewFlagSet("delay", flag.ContinueOnError)
	var queues []queueDelay
	fs.Func("q", "`NUM:DURATION`: hold the packets of NFQUEUE NUM for DURATION (repeatable)", func(s string) error {
		num, dur, ok := strings.Cut(s, ":")
		if !ok {
			return errors.New("want NUM:DURATION")
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			return err
		}
		queues = append(queues, queueDelay{uint16(n), d})
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(queues) == 0 {
		return errors.New("no -q given")
	}
	errc := make(chan error, len(queues))
	for _, q := range queues {
		nq, err := bindQueue(q.num)
		if err != nil {
			return fmt.Errorf("queue %d: %w", q.num, err)
		}
		go func() { errc <- nq.run(q.delay) }()
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return nil
	case err := <-errc:
		return err
	}
}

type queueDelay struct {
	num   uint16
	delay time.Duration
}

// The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h).
const (
	netlinkNetfilter = 12
	nfnlSubsysQueue  = 3
	nfqnlMsgPacket   = 0
	nfqnlMsgVerdict  = 1
	nfqnlMsgConfig   = 2
	nfqaCfgCmd       = 1
	nfqaCfgParams    = 2
	nfqaCfgQueueMax  = 3
	nfqnlCfgCmdBind  = 1
	nfqnlCopyMeta    = 1
	nfqaPacketHdr    = 1
	nfqaVerdictHdr   = 2
	nfAccept         = 1
	solNetlink       = 270
	netlinkNoENOBUFS = 5
)

type nfqueue struct {
	fd  int
	num uint16
	seq uint32
}

func bindQueue(num uint16) (*nfqueue, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	q := &nfqueue{fd: fd, num: num}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20)
	syscall.SetsockoptInt(fd, solNetlink, netlinkNoENOBUFS, 1)

	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 0} // command, pad, pf (unused since Linux 3.8)
	if err := q.request(nfqnlMsgConfig, attr(nfqaCfgCmd, cmd)); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind queue: %w", err)
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, 0) // copy range: no payload
	params[4] = nfqnlCopyMeta
	maxlen := binary.BigEndian.AppendUint32(nil, 16384)
	if err := q.request(nfqnlMsgConfig, append(attr(nfqaCfgParams, params), attr(nfqaCfgQueueMax, maxlen)...)); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("configure queue: %w", err)
	}
	return q, nil
}

// message builds one nfnetlink message of the queue subsystem.
func (q *nfqueue) message(typ uint16, flags uint16, attrs []byte) []byte {
	q.seq++
	b := make([]byte, 16+4, 16+4+len(attrs))
	binary.NativeEndian.PutUint32(b[0:], uint32(16+4+len(attrs)))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], q.seq)
	// nfgenmsg: family AF_UNSPEC, version 0, queue number big-endian
	binary.BigEndian.PutUint16(b[18:], q.num)
	return append(b, attrs...)
}

// request sends a message with NLM_F_ACK and waits for the kernel's answer.
func (q *nfqueue) request(typ uint16, attrs []byte) error {
	msg := q.message(typ, syscall.NLM_F_REQUEST|syscall.NLM_F_ACK, attrs)
	if err := syscall.Sendto(q.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := syscall.Recvfrom(q.fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == syscall.NLMSG_ERROR && m.Header.Seq == q.seq && len(m.Data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return syscall.Errno(-e)
				}
				return nil
			}
		}
	}
}

func attr(typ uint16, payload []byte) []byte {
	l := 4 + len(payload)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], payload)
	return b
}

type held struct {
	id  uint32
	due time.Time
}

func (q *nfqueue) run(delay time.Duration) error {
	fifo := make(chan held, 16384)
	go q.release(fifo)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(q.fd, buf, 0)
		if err != nil {
			if err == syscall.EINTR || err == syscall.ENOBUFS {
				continue
			}
			return fmt.Errorf("queue %d: recv: %w", q.num, err)
		}
		now := time.Now()
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != nfnlSubsysQueue<<8|nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			if id, ok := packetID(m.Data[4:]); ok {
				fifo <- held{id, now.Add(delay)}
			}
		}
	}
}

// packetID finds NFQA_PACKET_HDR among the attributes and returns its id.
func packetID(b []byte) (uint32, bool) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if l < 4 || l > len(b) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 4+4 {
			return binary.BigEndian.Uint32(b[4:]), true
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return 0, false
}

func (q *nfqueue) release(fifo <-chan held) {
	to := &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}
	v := make([]byte, 8)
	for h := range fifo {
		if d := time.Until(h.due); d > 0 {
			time.Sleep(d)
		}
		binary.BigEndian.PutUint32(v[0:], nfAccept)
		binary.BigEndian.PutUint32(v[4:], h.id)
		msg := q.message(nfqnlMsgVerdict, syscall.NLM_F_REQUEST, attr(nfqaVerdictHdr, v))
		if err := syscall.Sendto(q.fd, msg, 0, to); err != nil {
			fmt.Fprintf(os.Stderr, "labprobe: queue %d: verdict: %v\n", q.num, err)
		}
	}
}

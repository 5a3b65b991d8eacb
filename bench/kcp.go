package main

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// kcp-go is set up the way its authors recommend for speed ("turbo mode":
// nodelay 1, 10 ms interval, fast resend after 2 duplicate ACKs, no
// congestion control), with a 1024-packet window, ACKs sent at once rather
// than at the next interval, 4 MiB socket buffers, and neither FEC nor
// encryption, which would only slow it down.
func tuneKCP(s *kcp.UDPSession, stream bool) {
	s.SetNoDelay(1, 10, 2, 1)
	s.SetWindowSize(1024, 1024)
	s.SetReadBuffer(socketBuffer)
	s.SetWriteBuffer(socketBuffer)
	s.SetStreamMode(stream)
	s.SetACKNoDelay(true)
}

// kcpPair returns a dialed session and the listener's session for it. The
// listener only learns of a session from its first packet, so hello is
// written first and read by the accepting side.
func kcpPair(stream bool) (cli, srv *kcp.UDPSession, closeAll func(), err error) {
	ln, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	ln.SetReadBuffer(socketBuffer)
	ln.SetWriteBuffer(socketBuffer)
	cli, err = kcp.DialWithOptions(ln.Addr().String(), nil, 0, 0)
	if err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	tuneKCP(cli, stream)
	closeAll = func() {
		cli.Close()
		if srv != nil {
			srv.Close()
		}
		ln.Close()
	}
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := cli.Write([]byte{1}); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	srv, err = ln.AcceptKCP()
	if err != nil {
		closeAll()
		return nil, nil, nil, fmt.Errorf("accept: %w", err)
	}
	tuneKCP(srv, stream)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := srv.Read(make([]byte, 16)); err != nil {
		closeAll()
		return nil, nil, nil, fmt.Errorf("hello: %w", err)
	}
	return cli, srv, closeAll, nil
}

// kcpThroughput sends count messages of size bytes one way; Write blocks
// while the send window is full, which is kcp-go's backpressure.
func kcpThroughput(size, count int, stream bool, limit time.Duration) (tput, error) {
	cli, srv, closeAll, err := kcpPair(stream)
	if err != nil {
		return tput{}, err
	}
	defer closeAll()

	var m meter
	deadline := time.Now().Add(limit)
	want := int64(size) * int64(count)
	var wg sync.WaitGroup
	var rerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.SetReadDeadline(deadline)
		buf := make([]byte, max(size, 64<<10))
		for m.bytes.Load() < want {
			n, err := srv.Read(buf)
			if err != nil {
				rerr = err
				return
			}
			m.got(n, 1)
		}
	}()

	msg := make([]byte, size)
	cli.SetWriteDeadline(deadline)
	m.begin()
	var serr error
	for i := 0; i < count; i++ {
		if i%256 == 0 && time.Now().After(deadline) {
			break
		}
		if _, serr = cli.Write(msg); serr != nil {
			break
		}
	}
	m.sendDone.Store(true)
	wg.Wait()
	capped := time.Now().After(deadline)
	t := m.result(capped)
	if stream {
		t.Msgs = t.Bytes / int64(size) // a stream has no message boundaries
	}
	if capped {
		return t, nil
	}
	return t, errors.Join(serr, rerr)
}

// kcpRTT measures round trips of size-byte messages echoed by the peer.
func kcpRTT(size, warmup, count int, limit time.Duration) ([]time.Duration, error) {
	cli, srv, closeAll, err := kcpPair(false)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	srv.SetDeadline(deadline.Add(time.Second))
	cli.SetDeadline(deadline)
	echoDone := make(chan struct{})
	defer func() { closeAll(); <-echoDone }()
	go func() { // echo; ends when the sessions close or the deadline passes
		defer close(echoDone)
		buf := make([]byte, 2048)
		for {
			n, err := srv.Read(buf)
			if err != nil {
				return
			}
			if _, err := srv.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, size)
	buf := make([]byte, size)
	rtts := make([]time.Duration, 0, count)
	for i := 0; i < warmup+count && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		if _, err := cli.Write(msg); err != nil {
			return rtts, err
		}
		if _, err := io.ReadFull(cli, buf); err != nil {
			return rtts, fmt.Errorf("after %d round trips: %w", i, err)
		}
		if i >= warmup {
			rtts = append(rtts, time.Since(t0))
		}
	}
	return rtts, nil
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

const alpn = "p2pcompat-bench"

// tlsPair is a server configuration with a self-signed certificate made
// in-process, and a client configuration that skips verifying it: the
// benchmark measures transport, not PKI.
type tlsPair struct{ server, client *tls.Config }

func newTLSPair() (*tlsPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tlsPair{
		server: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}},
		client: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}},
	}, nil
}

// quicPair is one connection with one stream open in each direction's view.
type quicPair struct {
	ln       *quic.Listener
	cli, srv *quic.Conn
	cs, ss   *quic.Stream
}

func (q *quicPair) close() {
	if q.cli != nil {
		q.cli.CloseWithError(0, "")
	}
	if q.srv != nil {
		q.srv.CloseWithError(0, "")
	}
	q.ln.Close()
}

// newQUICPair connects a client to a listener, both with quicConfig (GSO
// on where the kernel has it, as by default), and opens one stream. A stream is only
// announced to the peer with its first data, so hello is written first.
func newQUICPair(t *tlsPair) (*quicPair, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, err := quic.ListenAddr("127.0.0.1:0", t.server, quicConfig())
	if err != nil {
		return nil, err
	}
	q := &quicPair{ln: ln}
	if q.cli, err = quic.DialAddr(ctx, ln.Addr().String(), t.client, quicConfig()); err != nil {
		q.close()
		return nil, err
	}
	if q.srv, err = ln.Accept(ctx); err != nil {
		q.close()
		return nil, err
	}
	if q.cs, err = q.cli.OpenStreamSync(ctx); err != nil {
		q.close()
		return nil, err
	}
	if _, err = q.cs.Write([]byte{1}); err != nil {
		q.close()
		return nil, err
	}
	if q.ss, err = q.srv.AcceptStream(ctx); err != nil {
		q.close()
		return nil, err
	}
	if _, err = io.ReadFull(q.ss, make([]byte, 1)); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

// quicGSO reports whether quic-go uses GSO with its default configuration.
func quicGSO(t *tlsPair) (bool, error) {
	q, err := newQUICPair(t)
	if err != nil {
		return false, err
	}
	defer q.close()
	return q.cli.ConnectionState().GSO, nil
}

// quicThroughput writes count chunks of size bytes on one stream; Write
// blocks on flow control, which is quic-go's backpressure.
func quicThroughput(t *tlsPair, size, count int, limit time.Duration) (tput, error) {
	q, err := newQUICPair(t)
	if err != nil {
		return tput{}, err
	}
	defer q.close()

	var m meter
	deadline := time.Now().Add(limit)
	want := int64(size) * int64(count)
	var wg sync.WaitGroup
	var rerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.ss.SetReadDeadline(deadline)
		buf := make([]byte, 64<<10)
		for m.bytes.Load() < want {
			n, err := q.ss.Read(buf)
			if n > 0 {
				m.got(n, 0)
			}
			if err != nil {
				rerr = err
				return
			}
		}
	}()

	msg := make([]byte, size)
	q.cs.SetWriteDeadline(deadline)
	m.begin()
	var serr error
	for i := 0; i < count; i++ {
		if i%256 == 0 && time.Now().After(deadline) {
			break
		}
		if _, serr = q.cs.Write(msg); serr != nil {
			break
		}
	}
	m.sendDone.Store(true)
	wg.Wait()
	capped := time.Now().After(deadline)
	r := m.result(capped)
	r.Msgs = r.Bytes / int64(size) // a stream has no message boundaries
	if capped {
		return r, nil
	}
	return r, errors.Join(serr, rerr)
}

// quicRTT measures round trips of size bytes on one stream, echoed back.
func quicRTT(t *tlsPair, size, warmup, count int, limit time.Duration) ([]time.Duration, error) {
	q, err := newQUICPair(t)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	q.ss.SetDeadline(deadline.Add(time.Second))
	q.cs.SetDeadline(deadline)
	echoDone := make(chan struct{})
	defer func() { q.close(); <-echoDone }()
	go func() { // echo; ends when the connection closes or the deadline passes
		defer close(echoDone)
		buf := make([]byte, 2048)
		for {
			n, err := q.ss.Read(buf)
			if n > 0 {
				if _, err := q.ss.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	msg := make([]byte, size)
	buf := make([]byte, size)
	rtts := make([]time.Duration, 0, count)
	for i := 0; i < warmup+count && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		if _, err := q.cs.Write(msg); err != nil {
			return rtts, err
		}
		if _, err := io.ReadFull(q.cs, buf); err != nil {
			return rtts, fmt.Errorf("after %d round trips: %w", i, err)
		}
		if i >= warmup {
			rtts = append(rtts, time.Since(t0))
		}
	}
	return rtts, nil
}

// quicConfig is quic-go's defaults with larger flow-control windows, so
// that flow control never caps a transfer on a path this fast: with the
// defaults (512 KiB to start) 1 MiB writes ran slower.
func quicConfig() *quic.Config {
	return &quic.Config{
		InitialStreamReceiveWindow:     4 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 8 << 20,
		MaxConnectionReceiveWindow:     32 << 20,
	}
}

package seal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

const (
	idA = uint64(76561198000000001)
	idB = uint64(76561198000000002)
	idC = uint64(76561198000000003)
)

func mustKeyPair(t testing.TB) KeyPair {
	t.Helper()
	kp, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func mustPair(t testing.TB, local, remote KeyPair, localID, remoteID uint64) *PairKey {
	t.Helper()
	k, err := NewPairKey(local, remote.Public, localID, remoteID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSession(t testing.TB, k *PairKey, local, remote uint64) *SessionKeys {
	t.Helper()
	s, err := k.SessionKeys(local, remote)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sessionPair returns both ends of one session: A with session 11, B with 22.
func sessionPair(t testing.TB) (a, b *SessionKeys) {
	t.Helper()
	a, b, _ = sessionPairKeys(t)
	return a, b
}

// sessionPairKeys is sessionPair that also gives away B's key pair.
func sessionPairKeys(t testing.TB) (a, b *SessionKeys, kpB KeyPair) {
	t.Helper()
	kpA := mustKeyPair(t)
	kpB = mustKeyPair(t)
	pa := mustPair(t, kpA, kpB, idA, idB)
	pb := mustPair(t, kpB, kpA, idB, idA)
	return mustSession(t, pa, 11, 22), mustSession(t, pb, 22, 11), kpB
}

func TestSessionRoundTripBothDirections(t *testing.T) {
	a, b := sessionPair(t)
	header := []byte{0xE1, 1, 2, 3}
	msg := []byte("hello across the NAT")

	for _, tc := range []struct {
		name     string
		from, to *SessionKeys
	}{{"A to B", a, b}, {"B to A", b, a}} {
		t.Run(tc.name, func(t *testing.T) {
			for pn := uint64(0); pn < 3; pn++ {
				sealed := tc.from.Seal(nil, header, pn, msg)
				if len(sealed) != len(msg)+Overhead {
					t.Fatalf("sealed length %d, want %d", len(sealed), len(msg)+Overhead)
				}
				got, err := tc.to.Open(nil, header, pn, sealed)
				if err != nil {
					t.Fatalf("open pn %d: %v", pn, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("opened %q, want %q", got, msg)
				}
			}
		})
	}
}

func TestSessionSealAppendsToDst(t *testing.T) {
	a, b := sessionPair(t)
	header := []byte{0xE1, 9}
	dst := append([]byte(nil), header...)
	out := a.Seal(dst, header, 5, []byte("payload"))
	if !bytes.Equal(out[:len(header)], header) {
		t.Fatal("Seal overwrote dst's existing bytes")
	}
	got, err := b.Open([]byte("x"), header, 5, out[len(header):])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "xpayload" {
		t.Fatalf("Open gave %q, want %q", got, "xpayload")
	}
}

func TestSessionOpenFailures(t *testing.T) {
	a, b, kpB := sessionPairKeys(t)
	header := []byte{0xE1, 1, 2, 3}
	msg := []byte("attack at dawn")
	const pn = 7
	sealed := a.Seal(nil, header, pn, msg)

	// A third party with its own key pair who knows B's public key, claims
	// A's SteamID and guesses the session IDs: B must still refuse it.
	c := mustSession(t, mustPair(t, mustKeyPair(t), kpB, idA, idB), 11, 22)
	forged := c.Seal(nil, header, pn, msg)

	flipped := func(i int) []byte {
		s := bytes.Clone(sealed)
		s[i] ^= 0x01
		return s
	}
	for _, tc := range []struct {
		name   string
		open   *SessionKeys
		header []byte
		pn     uint64
		sealed []byte
	}{
		{"wrong header", b, []byte{0xE1, 1, 2, 4}, pn, sealed},
		{"missing header", b, nil, pn, sealed},
		{"flipped ciphertext bit", b, header, pn, flipped(0)},
		{"flipped tag bit", b, header, pn, flipped(len(sealed) - 1)},
		{"wrong pn", b, header, pn + 1, sealed},
		{"truncated", b, header, pn, sealed[:len(sealed)-1]},
		{"shorter than tag", b, header, pn, sealed[:Overhead-1]},
		{"empty", b, header, pn, nil},
		{"own direction", a, header, pn, sealed},
		{"wrong pair", b, header, pn, forged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.open.Open(nil, tc.header, tc.pn, tc.sealed)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("err = %v, want ErrOpen", err)
			}
			if got != nil {
				t.Fatalf("returned %x on failure", got)
			}
		})
	}
}

func TestSessionIDsChangeKeys(t *testing.T) {
	kpA, kpB := mustKeyPair(t), mustKeyPair(t)
	pa := mustPair(t, kpA, kpB, idA, idB)
	pb := mustPair(t, kpB, kpA, idB, idA)
	header := []byte{0xE1}
	msg := []byte("same plaintext, same pn")

	s1 := mustSession(t, pa, 11, 22)
	for _, other := range []struct {
		name        string
		local, peer uint64
	}{
		{"new local session", 12, 22},
		{"new remote session", 11, 23},
		{"swapped sessions", 22, 11},
	} {
		t.Run(other.name, func(t *testing.T) {
			s2 := mustSession(t, pa, other.local, other.peer)
			x, y := s1.Seal(nil, header, 0, msg), s2.Seal(nil, header, 0, msg)
			if bytes.Equal(x, y) {
				t.Fatal("different session IDs sealed identically")
			}
			// The peer's keys for the old session must refuse the new one.
			old := mustSession(t, pb, 22, 11)
			if _, err := old.Open(nil, header, 0, y); !errors.Is(err, ErrOpen) {
				t.Fatalf("old session opened new session's packet: err = %v", err)
			}
		})
	}
}

func TestSteamIDsAreBound(t *testing.T) {
	kpA, kpB := mustKeyPair(t), mustKeyPair(t)
	pb := mustPair(t, kpB, kpA, idB, idA)
	// Same key pairs, but A claims another SteamID.
	liar := mustPair(t, kpA, kpB, idC, idB)

	header := []byte{0xE0}
	if _, err := pb.OpenHandshake(nil, header, liar.SealHandshake(nil, header, []byte("hi"))); !errors.Is(err, ErrOpen) {
		t.Fatalf("handshake under a different SteamID opened: err = %v", err)
	}
	sb := mustSession(t, pb, 22, 11)
	sl := mustSession(t, liar, 11, 22)
	if _, err := sb.Open(nil, header, 0, sl.Seal(nil, header, 0, []byte("hi"))); !errors.Is(err, ErrOpen) {
		t.Fatalf("data under a different SteamID opened: err = %v", err)
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	kpA, kpB := mustKeyPair(t), mustKeyPair(t)
	pa := mustPair(t, kpA, kpB, idA, idB)
	pb := mustPair(t, kpB, kpA, idB, idA)
	header := []byte{0xE0, 0, 1}
	msg := []byte("offer: session 11")

	sealed := pa.SealHandshake([]byte{0xAA}, header, msg)
	if sealed[0] != 0xAA {
		t.Fatal("SealHandshake overwrote dst's existing bytes")
	}
	sealed = sealed[1:]
	if len(sealed) != len(msg)+HandshakeOverhead {
		t.Fatalf("sealed length %d, want %d", len(sealed), len(msg)+HandshakeOverhead)
	}
	got, err := pb.OpenHandshake(nil, header, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("opened %q, want %q", got, msg)
	}
	// The reply goes the other way under the same key.
	reply, err := pa.OpenHandshake(nil, header, pb.SealHandshake(nil, header, msg))
	if err != nil || !bytes.Equal(reply, msg) {
		t.Fatalf("reply: %q, %v", reply, err)
	}

	// Random nonces: sealing twice must not give the same bytes.
	if bytes.Equal(sealed, pa.SealHandshake(nil, header, msg)) {
		t.Fatal("two handshake seals are identical")
	}

	bad := bytes.Clone(sealed)
	bad[len(bad)/2] ^= 0x80
	for name, tc := range map[string]struct{ header, sealed []byte }{
		"wrong header": {[]byte{0xE0, 0, 2}, sealed},
		"flipped bit":  {header, bad},
		"too short":    {header, sealed[:HandshakeOverhead-1]},
		"empty":        {header, nil},
	} {
		if _, err := pb.OpenHandshake(nil, tc.header, tc.sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func TestBadPublicKey(t *testing.T) {
	kp := mustKeyPair(t)
	// The all-zero point and the point of order 8 below have low order:
	// every private key turns them into the all-zero secret.
	lowOrder := [][32]byte{
		{},
		{1},
		{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
			0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	}
	for i, pub := range lowOrder {
		if _, err := NewPairKey(kp, pub, idA, idB); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("low-order key %d: err = %v, want ErrBadPublicKey", i, err)
		}
	}
}

func TestSealOpenDoNotAllocate(t *testing.T) {
	a, b := sessionPair(t)
	header := make([]byte, 16)
	msg := make([]byte, 1200)
	sealed := make([]byte, 0, len(msg)+Overhead)
	opened := make([]byte, 0, len(msg))
	var pn uint64

	sealed = a.Seal(sealed[:0], header, pn, msg)
	if n := testing.AllocsPerRun(100, func() {
		sealed = a.Seal(sealed[:0], header, pn, msg)
	}); n != 0 {
		t.Errorf("Seal: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		var err error
		opened, err = b.Open(opened[:0], header, pn, sealed)
		if err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Open: %v allocations per call, want 0", n)
	}
}

func TestSessionKeysConcurrent(t *testing.T) {
	// Run under -race: Seal and Open may be called from different goroutines.
	a, b := sessionPair(t)
	header := []byte{0xE1}
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for i := range 50 {
				pn := uint64(g*1000 + i)
				msg := []byte{byte(g), byte(i)}
				out, oerr := b.Open(nil, header, pn, a.Seal(nil, header, pn, msg))
				if oerr != nil {
					err = oerr
					break
				}
				if !bytes.Equal(out, msg) {
					err = fmt.Errorf("pn %d: opened %x, want %x", pn, out, msg)
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkSeal1200(b *testing.B) {
	s, _ := sessionPair(b)
	header := make([]byte, 16)
	msg := make([]byte, 1200)
	dst := make([]byte, 0, len(msg)+Overhead)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	var pn uint64
	for b.Loop() {
		dst = s.Seal(dst[:0], header, pn, msg)
		pn++
	}
}

func BenchmarkOpen1200(b *testing.B) {
	sa, sb := sessionPair(b)
	header := make([]byte, 16)
	msg := make([]byte, 1200)
	sealed := sa.Seal(nil, header, 1, msg)
	dst := make([]byte, 0, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = sb.Open(dst[:0], header, 1, sealed)
		if err != nil {
			b.Fatal(err)
		}
	}
}

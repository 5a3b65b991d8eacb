package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/p2pcompat/p2pcompat/rendezvous"
)

func TestSmokeEndToEnd(t *testing.T) {
	srv, err := rendezvous.NewServer(rendezvous.ServerConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a, err := New(Config{SteamID: 1, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Config{SteamID: 2, AppID: 480, RendezvousAddr: srv.Addr().String(), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.OnP2PSessionRequest(func(r P2PSessionRequest) { b.AcceptP2PSessionWithUser(r.SteamIDRemote) })
	start := time.Now()
	if !a.SendP2PPacket(2, []byte("hello"), P2PSendReliable, 0) {
		t.Fatal("send")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			b.RunCallbacks()
			time.Sleep(time.Millisecond)
		}
	}()
	p, err := b.Receive(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("got %q from %d after %v", p.Data, p.Remote, time.Since(start))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i)
	}
	start = time.Now()
	if err := a.Send(2, big, P2PSendReliable, 1); err != nil {
		t.Fatal(err)
	}
	p, err = b.Receive(ctx, 1)
	if err != nil || len(p.Data) != 1<<20 {
		t.Fatal(err, len(p.Data))
	}
	t.Logf("1 MiB after %v", time.Since(start))
	st, _ := a.GetP2PSessionState(2)
	t.Logf("state %+v", st)
}

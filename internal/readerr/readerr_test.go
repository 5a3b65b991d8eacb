package readerr

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&os.SyscallError{Syscall: "recvmsg", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", syscall.EMSGSIZE), true},
		{os.ErrDeadlineExceeded, true}, // a net.Error that is Temporary
		{errors.New("broken"), false},
		{&os.SyscallError{Syscall: "recvmsg", Err: syscall.EBADF}, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for range 10 {
		got = append(got, b.Next())
	}
	want := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond,
		16 * time.Millisecond, 32 * time.Millisecond, 64 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	b.Reset()
	if b.Next() != 0 {
		t.Fatal("no fresh start after Reset")
	}
}

// Wait goes on at once the first time, and stops when done is closed.
func TestBackoffWait(t *testing.T) {
	var b Backoff
	if !b.Wait(nil) {
		t.Fatal("the first Wait stopped")
	}
	done := make(chan struct{})
	close(done)
	if b.Wait(done) {
		t.Fatal("Wait went on with done closed")
	}
}

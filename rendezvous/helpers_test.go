package rendezvous

import (
	"reflect"
	"testing"
	"time"
)

// Helpers of the older tests, which use the standard library alone; newer
// ones (amplification_test.go) use testify.

func equal[T any](t testing.TB, got, want T, format string, args ...any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf(format+":\n got %+v\nwant %+v", append(args, got, want)...)
	}
}

func noError(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf(format+": %v", append(args, err)...)
	}
}

// eventuallyWithin bounds how long a condition may take before the test
// fails; it is a guard against hanging, far above anything expected.
const eventuallyWithin = 20 * time.Second

// poll reports whether cond came to hold within eventuallyWithin. Unlike
// eventually it may run on any goroutine.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(eventuallyWithin)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// eventually polls cond until it holds.
func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("never happened: "+format, args...)
	}
}

// await receives from ch, failing the test if nothing comes.
func await[T any](t testing.TB, ch <-chan T, format string, args ...any) T {
	t.Helper()
	timer := time.NewTimer(eventuallyWithin)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("nothing arrived: "+format, args...)
		panic("unreachable")
	}
}

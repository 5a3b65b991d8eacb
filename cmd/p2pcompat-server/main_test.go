package main

import (
	"reflect"
	"testing"
)

func TestParseApps(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint32
		bad  bool
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "480", want: []uint32{480}},
		{in: "480,730", want: []uint32{480, 730}},
		{in: " 480 , 730 ", want: []uint32{480, 730}},
		{in: "4294967295", want: []uint32{4294967295}},
		{in: "4294967296", bad: true},
		{in: "480,", bad: true},
		{in: "-1", bad: true},
		{in: "abc", bad: true},
	} {
		got, err := parseApps(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseApps(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseApps(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	if code := run([]string{"-apps", "x"}); code != 2 {
		t.Errorf("run with a bad -apps = %d, want 2", code)
	}
	if code := run([]string{"extra"}); code != 2 {
		t.Errorf("run with a stray argument = %d, want 2", code)
	}
}

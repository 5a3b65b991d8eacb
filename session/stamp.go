package session

import "time"

// stamp is a time of the Manager's clock as nanoseconds since its epoch, a
// moment before its first step: the times a session keeps take 8 bytes
// each where a time.Time takes 24, and with a dozen of them that is the
// difference of a size class for every session in the table. The zero
// stamp is no time, as the zero time.Time is. Durations between stamps
// are those of the clock (monotonic, for time.Now).
type stamp int64

func (s stamp) IsZero() bool              { return s == 0 }
func (s stamp) Before(u stamp) bool       { return s < u }
func (s stamp) After(u stamp) bool        { return s > u }
func (s stamp) Add(d time.Duration) stamp { return s + stamp(d) }
func (s stamp) Sub(u stamp) time.Duration { return time.Duration(s - u) }

// stampOf is t as a stamp; the zero time is the zero stamp.
func (m *Manager) stampOf(t time.Time) stamp {
	if t.IsZero() {
		return 0
	}
	return stamp(t.Sub(m.epoch))
}

// timeOf is s as a time; the zero stamp is the zero time.
func (m *Manager) timeOf(s stamp) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return m.epoch.Add(time.Duration(s))
}

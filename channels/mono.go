package channels

import "time"

// mono is a time of the engine's clock as nanoseconds since its epoch (a
// second before the time New was given): the engine's deadlines take 8
// bytes each where a time.Time takes 24, which keeps an idle session's
// engine in a smaller size class. The zero mono is no time. Durations
// between monos are those of the clock passed in (monotonic, for
// time.Now).
type mono int64

func (m mono) IsZero() bool             { return m == 0 }
func (m mono) Before(u mono) bool       { return m < u }
func (m mono) Add(d time.Duration) mono { return m + mono(d) }
func (m mono) Sub(u mono) time.Duration { return time.Duration(m - u) }
func (e *Engine) mono(t time.Time) mono { return mono(t.Sub(e.epoch)) }
func (e *Engine) timeOf(m mono) time.Time {
	if m == 0 {
		return time.Time{}
	}
	return e.epoch.Add(time.Duration(m))
}

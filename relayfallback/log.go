package relayfallback

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace sits below slog's Debug for pion's per-packet trace lines.
const levelTrace = slog.LevelDebug - 4

// slogFactory hands pion loggers that write to one slog.Logger, with pion's
// scope as an attribute.
type slogFactory struct{ l *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLeveled{f.l.With("pion", scope)}
}

type slogLeveled struct{ l *slog.Logger }

func (s slogLeveled) log(level slog.Level, msg string) {
	s.l.Log(context.Background(), level, msg)
}

// logf formats only when the level is enabled: pion traces every packet.
func (s slogLeveled) logf(level slog.Level, format string, args ...any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (s slogLeveled) Trace(msg string)                  { s.log(levelTrace, msg) }
func (s slogLeveled) Tracef(format string, args ...any) { s.logf(levelTrace, format, args...) }
func (s slogLeveled) Debug(msg string)                  { s.log(slog.LevelDebug, msg) }
func (s slogLeveled) Debugf(format string, args ...any) { s.logf(slog.LevelDebug, format, args...) }
func (s slogLeveled) Info(msg string)                   { s.log(slog.LevelInfo, msg) }
func (s slogLeveled) Infof(format string, args ...any)  { s.logf(slog.LevelInfo, format, args...) }
func (s slogLeveled) Warn(msg string)                   { s.log(slog.LevelWarn, msg) }
func (s slogLeveled) Warnf(format string, args ...any)  { s.logf(slog.LevelWarn, format, args...) }
func (s slogLeveled) Error(msg string)                  { s.log(slog.LevelError, msg) }
func (s slogLeveled) Errorf(format string, args ...any) { s.logf(slog.LevelError, format, args...) }

package nat

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace is the slog level of pion's Trace messages: below Debug, so a
// Debug handler does not see the per-packet chatter.
const levelTrace = slog.LevelDebug - 4

// slogFactory bridges pion's logging to log/slog. Every pion message is
// logged at Debug (Trace below it) whatever pion's own level, with that
// level as the attribute "pion": for this package pion's warnings (a check
// with a wrong password, a response nobody waits for) are what a peer or
// the network did, not faults of the node.
type slogFactory struct{ l *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.l.With("scope", "pion/"+scope)}
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) log(level slog.Level, pionLevel string, msg string) {
	s.l.Log(context.Background(), level, msg, "pion", pionLevel)
}

// logf formats only when the level is enabled. It formats with fmt.Errorf
// because pion's format strings use %w.
func (s slogLogger) logf(level slog.Level, pionLevel string, format string, args []any) {
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	s.log(level, pionLevel, fmt.Errorf(format, args...).Error())
}

func (s slogLogger) Trace(msg string) {
	if s.l.Enabled(context.Background(), levelTrace) {
		s.log(levelTrace, "trace", msg)
	}
}
func (s slogLogger) Tracef(format string, args ...any) { s.logf(levelTrace, "trace", format, args) }
func (s slogLogger) Debug(msg string)                  { s.log(slog.LevelDebug, "debug", msg) }
func (s slogLogger) Debugf(format string, args ...any) {
	s.logf(slog.LevelDebug, "debug", format, args)
}
func (s slogLogger) Info(msg string)                  { s.log(slog.LevelDebug, "info", msg) }
func (s slogLogger) Infof(format string, args ...any) { s.logf(slog.LevelDebug, "info", format, args) }
func (s slogLogger) Warn(msg string)                  { s.log(slog.LevelDebug, "warn", msg) }
func (s slogLogger) Warnf(format string, args ...any) { s.logf(slog.LevelDebug, "warn", format, args) }
func (s slogLogger) Error(msg string)                 { s.log(slog.LevelDebug, "error", msg) }
func (s slogLogger) Errorf(format string, args ...any) {
	s.logf(slog.LevelDebug, "error", format, args)
}

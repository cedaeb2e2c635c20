package turn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLoggers routes pion/turn's log lines into the server's slog.Logger.
// pion logs per packet at Info (e.g. data from a peer without permission),
// so Trace, Debug and Info all go to slog.LevelDebug; Warn and Error keep
// their level.
type pionLoggers struct{ log *slog.Logger }

func (f pionLoggers) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) emitf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(msg string)                  { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.emitf(slog.LevelDebug, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.emitf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.emitf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.emitf(slog.LevelWarn, format, args...) }
func (l pionLogger) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.emitf(slog.LevelError, format, args...) }

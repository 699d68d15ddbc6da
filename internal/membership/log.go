package membership

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
)

// libLogger returns a *log.Logger for serf and memberlist that forwards
// each line to l at the level of its "[LEVEL] " prefix.
func libLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{l: l}, "", 0)
}

// levelWriter turns serf's and memberlist's "[WARN] memberlist: ..." lines
// into slog records.
type levelWriter struct{ l *slog.Logger }

var _ io.Writer = (*levelWriter)(nil)

// levelPrefixes maps the libraries' prefixes to slog levels.
var levelPrefixes = []struct {
	prefix string
	level  slog.Level
}{
	{"[TRACE]", slog.LevelDebug - 4},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

func (w *levelWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\r\n")
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if rest, ok := strings.CutPrefix(msg, lp.prefix); ok {
			level, msg = lp.level, strings.TrimLeft(rest, " ")
			break
		}
	}
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// discardLogger is used when Config.Logger is nil.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

package consensus

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's Trace maps to (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

// slogLevel maps an hclog level to slog's.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, DefaultLevel
		return slog.LevelInfo
	}
}

// hclogAdapter implements hclog.Logger over a *slog.Logger. The slog
// handler decides what is emitted; SetLevel adds a floor on top, shared by
// every logger derived with With or Named (hclog's default semantics).
type hclogAdapter struct {
	base    *slog.Logger // carries the implied args
	name    string       // emitted as the "logger" attribute
	implied []any
	floor   *atomic.Int32 // hclog.Level; NoLevel = no floor
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// NewHCLogger returns an hclog.Logger (what raft wants) that writes to l
// under the given name. A nil l discards everything.
func NewHCLogger(l *slog.Logger, name string) hclog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &hclogAdapter{base: l, name: name, floor: new(atomic.Int32)}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lvl := slogLevel(level)
	if !a.enabled(level, lvl) {
		return
	}
	if len(args)%2 == 1 {
		// hclog's convention for a dangling value.
		args = append(args[:len(args)-1:len(args)-1], "EXTRA_VALUE_AT_END", args[len(args)-1])
	}
	if a.name != "" {
		args = append([]any{"logger", a.name}, args...)
	}
	a.base.Log(context.Background(), lvl, msg, args...)
}

func (a *hclogAdapter) enabled(level hclog.Level, lvl slog.Level) bool {
	if floor := hclog.Level(a.floor.Load()); floor != hclog.NoLevel && level < floor {
		return false
	}
	return a.base.Enabled(context.Background(), lvl)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace, LevelTrace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug, slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info, slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn, slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error, slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.base = a.base.With(args...)
	c.implied = append(a.ImpliedArgs(), args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.floor.Store(int32(level)) }

// GetLevel returns the floor set by SetLevel, or the level the slog handler
// lets through when none was set.
func (a *hclogAdapter) GetLevel() hclog.Level {
	if floor := hclog.Level(a.floor.Load()); floor != hclog.NoLevel {
		return floor
	}
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.base.Enabled(context.Background(), slogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer that logs each write as one record, at
// opts.ForceLevel if set, else at the level of a leading "[ERROR]",
// "[WARN]", ... tag when opts.InferLevels, else Info.
func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{a: a, opts: *opts}
}

type stdWriter struct {
	a    *hclogAdapter
	opts hclog.StandardLoggerOptions
}

// levelTags are the tags InferLevels recognises, as hclog does.
var levelTags = []struct {
	tag   string
	level hclog.Level
}{
	{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error},
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, " \t\n"))
	level := hclog.Info
	switch {
	case w.opts.ForceLevel != hclog.NoLevel:
		level = w.opts.ForceLevel
	case w.opts.InferLevels:
		for _, t := range levelTags {
			if rest, ok := strings.CutPrefix(msg, t.tag); ok {
				level, msg = t.level, strings.TrimSpace(rest)
				break
			}
		}
	}
	w.a.Log(level, msg)
	return len(p), nil
}

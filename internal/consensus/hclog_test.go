package consensus

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// jsonLogger returns an adapter over a JSON slog handler at level, and a
// function returning the records written so far.
func jsonLogger(t *testing.T, level slog.Level, name string) (hclog.Logger, func() []map[string]any) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
	return NewHCLogger(l, name), func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("bad JSON line %q: %v", line, err)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}
}

func TestHCLogLevels(t *testing.T) {
	h, records := jsonLogger(t, LevelTrace, "raft")
	h.Trace("t")
	h.Debug("d")
	h.Info("i")
	h.Warn("w")
	h.Error("e")
	h.Log(hclog.NoLevel, "nolevel")
	h.Log(hclog.Off, "off")
	want := []struct{ msg, level string }{
		{"t", "DEBUG-4"}, {"d", "DEBUG"}, {"i", "INFO"}, {"w", "WARN"}, {"e", "ERROR"}, {"nolevel", "INFO"},
	}
	got := records()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i]["msg"] != w.msg || got[i]["level"] != w.level || got[i]["logger"] != "raft" {
			t.Errorf("record %d = %v, want msg %q level %q logger raft", i, got[i], w.msg, w.level)
		}
	}
}

func TestHCLogHandlerLevelAndSetLevel(t *testing.T) {
	h, records := jsonLogger(t, slog.LevelInfo, "")
	if h.IsTrace() || h.IsDebug() || !h.IsInfo() || !h.IsError() {
		t.Fatalf("Is* at an Info handler: trace %v debug %v info %v error %v", h.IsTrace(), h.IsDebug(), h.IsInfo(), h.IsError())
	}
	if h.GetLevel() != hclog.Info {
		t.Fatalf("GetLevel = %v, want Info (from the handler)", h.GetLevel())
	}
	h.Debug("hidden")
	child := h.Named("sub").With("k", 1)
	h.SetLevel(hclog.Warn) // applies to loggers derived before and after
	child.Info("hidden too")
	h.Info("hidden three")
	child.Warn("shown")
	if h.IsInfo() || !child.IsWarn() || h.GetLevel() != hclog.Warn {
		t.Fatalf("after SetLevel(Warn): IsInfo %v, child IsWarn %v, GetLevel %v", h.IsInfo(), child.IsWarn(), h.GetLevel())
	}
	got := records()
	if len(got) != 1 || got[0]["msg"] != "shown" || got[0]["logger"] != "sub" || got[0]["k"] != float64(1) {
		t.Fatalf("records = %v, want only the child's warning with logger sub and k=1", got)
	}
}

func TestHCLogArgsAndNames(t *testing.T) {
	h, records := jsonLogger(t, slog.LevelDebug, "raft")
	w := h.With("node", "n1")
	if name := w.Named("net").Name(); name != "raft.net" {
		t.Fatalf("Named name = %q, want raft.net", name)
	}
	if name := w.Named("net").ResetNamed("snap").Name(); name != "snap" {
		t.Fatalf("ResetNamed name = %q, want snap", name)
	}
	if args := w.ImpliedArgs(); len(args) != 2 || args[0] != "node" || args[1] != "n1" {
		t.Fatalf("ImpliedArgs = %v", args)
	}
	if len(h.ImpliedArgs()) != 0 {
		t.Fatalf("With changed the parent's implied args: %v", h.ImpliedArgs())
	}
	w.Named("net").Info("dial", "peer", "n2", "error", errors.New("refused"), "dangling")
	got := records()
	if len(got) != 1 {
		t.Fatalf("got %v", got)
	}
	r := got[0]
	for k, v := range map[string]any{
		"msg": "dial", "logger": "raft.net", "node": "n1", "peer": "n2", "error": "refused", "EXTRA_VALUE_AT_END": "dangling",
	} {
		if r[k] != v {
			t.Errorf("record[%q] = %v, want %v (record %v)", k, r[k], v, r)
		}
	}
}

func TestHCLogStandardLogger(t *testing.T) {
	h, records := jsonLogger(t, slog.LevelDebug, "")
	h.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[WARN] disk slow")
	h.StandardLogger(nil).Print("[WARN] not inferred")
	h.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("forced")
	_, _ = h.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}).Write([]byte("[DEBUG] raw\n"))
	want := []struct{ msg, level string }{
		{"disk slow", "WARN"}, {"[WARN] not inferred", "INFO"}, {"forced", "ERROR"}, {"raw", "DEBUG"},
	}
	got := records()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i]["msg"] != w.msg || got[i]["level"] != w.level {
			t.Errorf("record %d = %v, want msg %q level %q", i, got[i], w.msg, w.level)
		}
	}
}

func TestHCLogNilDiscards(t *testing.T) {
	h := NewHCLogger(nil, "x")
	h.Error("nobody hears this")
	if h.IsError() {
		t.Fatal("a nil slog logger should discard everything")
	}
}

package histcheck

import (
	"slices"
	"strings"
	"testing"
)

// lostRef names a lost write in a test: its key and call time.
type lostRef struct {
	key  string
	call int64
}

func TestLost(t *testing.T) {
	tests := []struct {
		name     string
		ops      []Op
		final    map[string]Output
		lost     []lostRef
		phantoms []string
	}{
		// Nothing lost.
		{
			name:  "last acknowledged write survives",
			ops:   []Op{op(0, 0, 10, Set("x", "a"), Stored()), op(0, 20, 30, Set("x", "b"), Stored())},
			final: map[string]Output{"x": Found("b")},
		},
		{
			name: "either of two concurrent writes may win (first)",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 5, 15, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
		},
		{
			name: "either of two concurrent writes may win (second)",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 5, 15, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("b")},
		},
		{
			name: "touching intervals are concurrent",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 10, 20, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
		},
		{
			name: "unknown write may land after later acknowledged ones",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Unknown(nil)),
				op(1, 20, 30, Set("x", "b"), Stored()),
				op(1, 40, 50, Cas("x", "b", "c"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
		},
		{
			name: "unknown write may never land",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Set("x", "b"), Unknown(nil)),
			},
			final: map[string]Output{"x": Found("a")},
		},
		{
			name: "write begun but never ended counts as unknown",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Output{Err: "no reply recorded"}),
				op(1, 20, 30, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
		},
		{
			name: "acknowledged delete",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(0, 20, 30, Delete("x"), Deleted()),
			},
			final: map[string]Output{"x": NotFound()},
		},
		{
			name: "unknown delete may land late",
			ops: []Op{
				op(1, 0, 5, Delete("x"), Unknown(nil)),
				op(0, 10, 20, Set("x", "a"), Stored()),
			},
			final: map[string]Output{"x": NotFound()},
		},
		{
			name: "delete concurrent with the set may come first",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 5, 15, Delete("x"), Deleted()),
			},
			final: map[string]Output{"x": Found("a")},
		},
		{
			name: "acknowledged cas survives",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Cas("x", "a", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("b")},
		},
		{
			name: "failed cas and reads write nothing",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Cas("x", "z", "b"), Exists()),
				op(1, 40, 50, Delete("y"), NotFound()),
				op(2, 60, 70, Get("x"), Found("a")),
			},
			final: map[string]Output{"x": Found("a"), "y": NotFound()},
		},
		{
			name:  "untouched key missing",
			final: map[string]Output{"z": NotFound()},
		},

		// Lost.
		{
			name: "final value older than an acknowledged write",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(0, 20, 30, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
			lost:  []lostRef{{"x", 20}},
		},
		{
			name: "every acknowledged write after the final value is lost",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Set("x", "b"), Stored()),
				op(2, 25, 35, Set("x", "c"), Stored()),
				op(0, 40, 50, Cas("x", "c", "d"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
			lost:  []lostRef{{"x", 20}, {"x", 25}, {"x", 40}},
		},
		{
			name: "an unknown write elsewhere does not excuse the loss",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 2, 4, Set("x", "u"), Unknown(nil)),
				op(0, 20, 30, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
			lost:  []lostRef{{"x", 20}},
		},
		{
			name: "key missing although a set was acknowledged after the last delete",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(0, 20, 30, Delete("x"), Deleted()),
				op(1, 40, 50, Set("x", "b"), Stored()),
			},
			final: map[string]Output{"x": NotFound()},
			lost:  []lostRef{{"x", 40}},
		},
		{
			name: "key missing and never deleted",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Delete("x"), NotFound()),
			},
			final: map[string]Output{"x": NotFound()},
			lost:  []lostRef{{"x", 0}},
		},
		{
			name: "acknowledged delete lost (resurrection)",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(0, 20, 30, Delete("x"), Deleted()),
			},
			final: map[string]Output{"x": Found("a")},
			lost:  []lostRef{{"x", 20}},
		},
		{
			name: "acknowledged cas lost",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Cas("x", "a", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("a")},
			lost:  []lostRef{{"x", 20}},
		},
		{
			name: "only the key with the loss",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(0, 0, 10, Set("y", "a"), Stored()),
				op(0, 20, 30, Set("x", "b"), Stored()),
				op(0, 20, 30, Set("y", "b"), Stored()),
			},
			final: map[string]Output{"x": Found("b"), "y": Found("a")},
			lost:  []lostRef{{"y", 20}},
		},

		// Phantoms.
		{
			name:     "final value never written",
			ops:      []Op{op(0, 0, 10, Set("x", "a"), Stored())},
			final:    map[string]Output{"x": Found("zz")},
			phantoms: []string{"x"},
		},
		{
			name: "final value from a cas that failed",
			ops: []Op{
				op(0, 0, 10, Set("x", "a"), Stored()),
				op(1, 20, 30, Cas("x", "z", "b"), Exists()),
			},
			final:    map[string]Output{"x": Found("b")},
			phantoms: []string{"x"},
		},
		{
			name:     "final value on an untouched key",
			final:    map[string]Output{"z": Found("a")},
			phantoms: []string{"z"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Lost(tc.ops, tc.final)
			if err != nil {
				t.Fatal(err)
			}
			var lost []lostRef
			for _, w := range r.Lost {
				if !w.Op.acked() || w.Op.Call <= w.After || w.Final != tc.final[w.Op.Input.Key] {
					t.Errorf("inconsistent lost write %v", w)
				}
				lost = append(lost, lostRef{w.Op.Input.Key, w.Op.Call})
			}
			var phantoms []string
			for _, p := range r.Phantoms {
				phantoms = append(phantoms, p.Key)
			}
			if !slices.Equal(lost, tc.lost) || !slices.Equal(phantoms, tc.phantoms) {
				t.Errorf("lost %v, phantoms %q; want lost %v, phantoms %q\n%v", lost, phantoms, tc.lost, tc.phantoms, r)
			}
			if r.OK() != (len(tc.lost) == 0 && len(tc.phantoms) == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
			if r.Keys != len(tc.final) {
				t.Errorf("Keys = %d, want %d", r.Keys, len(tc.final))
			}
		})
	}
}

func TestLostCountsAcked(t *testing.T) {
	ops := []Op{
		op(0, 0, 10, Set("x", "a"), Stored()),
		op(0, 20, 30, Cas("x", "a", "b"), Stored()),
		op(0, 40, 50, Cas("x", "a", "c"), Exists()),
		op(0, 60, 70, Delete("x"), Deleted()),
		op(0, 80, 90, Set("x", "d"), Unknown(nil)),
		op(0, 100, 110, Get("x"), Found("d")),
	}
	r, err := Lost(ops, map[string]Output{"x": Found("d")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Acked != 3 || !r.OK() {
		t.Errorf("report %v, want 3 acknowledged writes and no loss", r)
	}
}

func TestLostErrors(t *testing.T) {
	ops := []Op{op(0, 0, 10, Set("x", "a"), Stored()), op(0, 0, 10, Get("y"), NotFound())}
	tests := []struct {
		name  string
		final map[string]Output
		want  string
	}{
		{"missing key", map[string]Output{"x": Found("a")}, "no final read of key y"},
		{"unknown final read", map[string]Output{"x": Unknown(nil), "y": NotFound()}, "final read of key x is unknown"},
		{"not a read", map[string]Output{"x": Stored(), "y": NotFound()}, "want Found or NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Lost(ops, tc.final)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckLost(t *testing.T) {
	rec := NewRecorder()
	rec.End(rec.Begin(0, Set("x", "c0-1")), Stored())
	rec.End(rec.Begin(0, Set("x", "c0-2")), Stored())

	ft := &fakeTB{TB: t}
	if r := CheckLost(ft, rec, map[string]Output{"x": Found("c0-2")}); !r.OK() || ft.failed() != "" {
		t.Errorf("report %v, failures %q", r, ft.failed())
	}

	ft = &fakeTB{TB: t}
	r := CheckLost(ft, rec, map[string]Output{"x": Found("c0-1")})
	if len(r.Lost) != 1 || r.Lost[0].Op.Input != Set("x", "c0-2") {
		t.Fatalf("report %v, want set(x, c0-2) lost", r)
	}
	if got := ft.failed(); !strings.Contains(got, "1 lost of 2 acknowledged writes") || !strings.Contains(got, `lost acknowledged set(x, "c0-2")`) {
		t.Errorf("failure = %q", got)
	}

	ft = &fakeTB{TB: t}
	CheckLost(ft, rec, map[string]Output{})
	if !strings.Contains(ft.failed(), "no final read of key x") {
		t.Errorf("failure = %q", ft.failed())
	}
}

package membership

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.NodeName = "127.0.0.1_11211"
		return c
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults with a NodeName: %v", err)
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Config.NodeName", func(c *Config) { c.NodeName = "" }},
		{"Config.NodeName", func(c *Config) { c.NodeName = "a b" }},
		{"Config.NodeName", func(c *Config) { c.NodeName = "a\tb" }},
		{"Config.NodeName", func(c *Config) { c.NodeName = strings.Repeat("n", 129) }},
		{"Config.BindAddr", func(c *Config) { c.BindAddr = "" }},
		{"Config.BindAddr", func(c *Config) { c.BindAddr = "localhost" }},
		{"Config.BindPort", func(c *Config) { c.BindPort = -1 }},
		{"Config.BindPort", func(c *Config) { c.BindPort = 65536 }},
		{"Config.AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "example.com" }},
		{"Config.AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }},
		{"Config.AdvertisePort", func(c *Config) { c.AdvertisePort = 70000 }},
		{"Config.AdvertisePort", func(c *Config) { c.AdvertisePort = 7946 }}, // with BindPort 0
		{"Config.ClusterName", func(c *Config) { c.ClusterName = "" }},
		{"Config.ClusterName", func(c *Config) { c.ClusterName = strings.Repeat("c", 250) }},
		{"Config.SecretKey", func(c *Config) { c.SecretKey = []byte("short") }},
		{"Config.Tags", func(c *Config) { c.Tags = map[string]string{"k": strings.Repeat("v", 600)} }},
		{"Config.Profile", func(c *Config) { c.Profile = "" }},
		{"Config.Profile", func(c *Config) { c.Profile = "fast" }},
		{"Config.EventQueueSize", func(c *Config) { c.EventQueueSize = 0 }},
		{"Config.ProbeInterval", func(c *Config) { c.ProbeInterval = -time.Second }},
		{"Config.RejoinInterval", func(c *Config) { c.RejoinInterval = -1 }},
		{"Config.SuspicionMult", func(c *Config) { c.SuspicionMult = -1 }},
		{"Config.SuspicionMaxTimeoutMult", func(c *Config) { c.SuspicionMaxTimeoutMult = -1 }},
		{"Config.ProbeTimeout", func(c *Config) { c.ProbeTimeout = time.Second }}, // >= lan's 400ms interval
		{"Config.GossipInterval", func(c *Config) { c.GossipInterval = 2 * time.Second }},
	}
	for _, tc := range cases {
		c := valid()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want an ErrInvalidConfig naming %s", tc.field, err, tc.field)
		}
	}
	for _, edit := range []func(*Config){
		func(c *Config) { c.SecretKey = make([]byte, 16) },
		func(c *Config) { c.SecretKey = make([]byte, 24) },
		func(c *Config) { c.SecretKey = make([]byte, 32) },
		func(c *Config) { c.BindPort, c.AdvertisePort = 7946, 17946 },
		func(c *Config) { c.BindAddr, c.AdvertiseAddr = "::", "2001:db8::1" },
		func(c *Config) { c.Profile = ProfileWAN },
		func(c *Config) {
			c.Profile, c.ProbeInterval, c.ProbeTimeout = ProfileLocal, time.Second, 500*time.Millisecond
		},
	} {
		c := valid()
		edit(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestConfigResolvedAndEstimate(t *testing.T) {
	c := Default()
	r := c.Resolved()
	if r.ProbeInterval != 400*time.Millisecond || r.SuspicionMult != 3 || r.RejoinInterval != 30*time.Second ||
		r.ReconnectTimeout != 72*time.Hour || r.TombstoneTimeout != 24*time.Hour {
		t.Errorf("lan profile resolved to %+v", r)
	}
	c.ProbeInterval = time.Second
	if r := c.Resolved(); r.ProbeInterval != time.Second || r.ProbeTimeout != 200*time.Millisecond {
		t.Errorf("an explicit knob was not kept: %+v", r)
	}
	// The documented figures (package doc, DetectionEstimate doc).
	for _, tc := range []struct {
		profile        string
		n              int
		typical, bound time.Duration
	}{
		{ProfileLAN, 3, 1900 * time.Millisecond, 5 * time.Second},
		{ProfileLAN, 10, 1900 * time.Millisecond, 5 * time.Second},
		{ProfileLAN, 2, 1900 * time.Millisecond, 2600 * time.Millisecond}, // nobody to confirm: the minimum
		{ProfileLocal, 3, 950 * time.Millisecond, 2500 * time.Millisecond},
		{ProfileWAN, 5, 38 * time.Second, 46 * time.Second}, // 3 confirmations needed, only 3 peers: k = 0
	} {
		c := Default()
		c.Profile = tc.profile
		typical, bound := c.DetectionEstimate(tc.n)
		if typical != tc.typical || bound != tc.bound {
			t.Errorf("%s n=%d: DetectionEstimate = %s, %s; want %s, %s", tc.profile, tc.n, typical, bound, tc.typical, tc.bound)
		}
	}
	c = Default()
	c.Profile = ProfileLAN
	t100, _ := c.DetectionEstimate(100)
	if t100 != 3100*time.Millisecond { // suspicion doubles at log10(100) = 2
		t.Errorf("lan n=100: typical %s", t100)
	}
}

func TestTagsSize(t *testing.T) {
	if n := TagsSize(nil); n != 2 { // magic byte + empty fixmap
		t.Errorf("TagsSize(nil) = %d", n)
	}
	// msgpack: fixmap header, then each string with a 1-byte header below
	// 32 bytes and a 3-byte one from 32 up.
	if n := TagsSize(map[string]string{"role": "kv"}); n != 1+1+5+3 {
		t.Errorf("TagsSize(role=kv) = %d", n)
	}
	if n := TagsSize(map[string]string{"k": strings.Repeat("v", 40)}); n != 1+1+2+43 {
		t.Errorf("TagsSize(40-byte value) = %d", n)
	}
}

func TestLevelWriter(t *testing.T) {
	var buf bytes.Buffer
	l := libLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, line := range []string{
		"[DEBUG] memberlist: probe", "[INFO] serf: EventMemberJoin: a", "[WARN] memberlist: slow",
		"[ERR] memberlist: Conflicting address", "[ERROR] serf: x", "no prefix", "[TRACE] hidden",
	} {
		l.Print(line)
	}
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="memberlist: probe"`, `level=INFO msg="serf: EventMemberJoin: a"`,
		`level=WARN msg="memberlist: slow"`, `level=ERROR msg="memberlist: Conflicting address"`,
		`level=ERROR msg="serf: x"`, `level=INFO msg="no prefix"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("a TRACE line passed a DEBUG logger:\n%s", out)
	}
}

func TestEventQueue(t *testing.T) {
	q := eventQueue{max: 40}
	ev := func(i int) Event { return Event{Kind: UserEvent, LTime: uint64(i)} }
	next := 0 // LTime expected at the front
	pushed := 0
	for round := range 5 {
		for range 30 {
			if q.push(ev(pushed)) {
				next++
			}
			pushed++
		}
		for range 10 + round {
			if q.front().LTime != uint64(next) {
				t.Fatalf("front = %d, want %d", q.front().LTime, next)
			}
			q.pop()
			next++
		}
		if q.n > q.max || len(q.buf) > q.max {
			t.Fatalf("queue holds %d in %d slots, max %d", q.n, len(q.buf), q.max)
		}
	}
	for q.n > 0 {
		if q.front().LTime != uint64(next) {
			t.Fatalf("front = %d, want %d", q.front().LTime, next)
		}
		q.pop()
		next++
	}
	if next != pushed {
		t.Fatalf("drained up to %d, pushed %d", next, pushed)
	}
}

func TestEventKindAndStatusNames(t *testing.T) {
	want := []string{"member-join", "member-leave", "member-failed", "member-update", "member-reap", "user", "query"}
	for i, w := range want {
		if got := EventKind(i + 1).String(); got != w {
			t.Errorf("EventKind(%d) = %q, want %q", i+1, got, w)
		}
	}
	if got := EventKind(99).String(); got != "EventKind(99)" {
		t.Errorf("unknown kind: %q", got)
	}
	for s, w := range map[MemberStatus]string{StatusNone: "none", StatusAlive: "alive", StatusLeaving: "leaving", StatusLeft: "left", StatusFailed: "failed"} {
		if s.String() != w {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), w)
		}
	}
}

func TestSplitSeed(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port uint16
		bad  bool
	}{
		{in: "10.0.0.1:7946", host: "10.0.0.1", port: 7946},
		{in: "node1/10.0.0.1:7000", host: "10.0.0.1", port: 7000},
		{in: "10.0.0.1", host: "10.0.0.1", port: 1234},
		{in: "[::1]:7000", host: "::1", port: 7000},
		{in: "::1", host: "::1", port: 1234},
		{in: "db.example:7000", host: "db.example", port: 7000},
		{in: "h:port", bad: true},
		{in: "h:70000", bad: true},
		{in: "", bad: true},
		{in: ":7000", bad: true},
	} {
		host, port, err := splitSeed(tc.in, 1234)
		if tc.bad {
			if err == nil {
				t.Errorf("splitSeed(%q) = %s, %d; want an error", tc.in, host, port)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("splitSeed(%q) = %q, %d, %v; want %q, %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}

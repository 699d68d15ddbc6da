package membership

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestThreeMembers: three encrypted members join through one seed, see each
// other with their tags, and exchange tag updates, user events and queries.
func TestThreeMembers(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, nil)
	a0, a1, a2 := nodes[0], nodes[1], nodes[2]

	// Everyone sees three alive members with the right tags and addresses.
	for _, o := range nodes {
		ms := o.Members()
		if len(ms) != 3 {
			t.Fatalf("%s sees %d members: %+v", o.Name(), len(ms), ms)
		}
		for i, m := range ms {
			want := nodes[i]
			if m.Name != want.Name() || m.Status != StatusAlive || m.HostPort() != want.Addr().String() {
				t.Errorf("%s sees %+v, want %s alive at %s", o.Name(), m, want.Name(), want.Addr())
			}
			if !maps.Equal(m.Tags, map[string]string{"role": "kv", "name": want.Name()}) {
				t.Errorf("%s sees %s's tags %v", o.Name(), m.Name, m.Tags)
			}
		}
	}
	if lm := a1.LocalMember(); lm.Name != "a1" || lm.Status != StatusAlive || lm.HostPort() != a1.Addr().String() {
		t.Errorf("LocalMember = %+v", lm)
	}
	// Every member reported the other two joining.
	for _, o := range nodes {
		for _, other := range nodes {
			o.rec.waitEvent(t, 5*time.Second, MemberJoin, other.Name(), time.Time{})
		}
	}

	// SetTags reaches the others as MemberUpdate.
	since := time.Now()
	newTags := map[string]string{"role": "kv", "name": "a2", "routing": "42"}
	if err := a2.SetTags(newTags); err != nil {
		t.Fatal(err)
	}
	for _, o := range nodes {
		o.rec.waitEvent(t, 5*time.Second, MemberUpdate, "a2", since)
		eventually(t, 5*time.Second, "a2's new tags", func() error {
			for _, m := range o.Members() {
				if m.Name == "a2" && !maps.Equal(m.Tags, newTags) {
					return fmt.Errorf("%s sees a2's tags %v", o.Name(), m.Tags)
				}
			}
			return nil
		})
	}
	if got := a2.LocalMember().Tags; !maps.Equal(got, newTags) {
		t.Errorf("a2's own tags %v", got)
	}

	// A user event reaches every member, the sender included.
	if err := a0.UserEvent("deploy", []byte("v1"), false); err != nil {
		t.Fatal(err)
	}
	for _, o := range nodes {
		o.rec.waitEvent(t, 5*time.Second, UserEvent, "deploy", since)
		if got := o.rec.userPayloads("deploy"); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("%s got deploy payloads %q", o.Name(), got)
		}
	}

	// Queries: all, by node, by tag regexp (unanchored, like serf). Queries
	// and responses are UDP gossip, best effort: a query is repeated until
	// every expected member has answered, and no other may ever answer.
	query := func(opts QueryOptions) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts.Timeout = 300 * time.Millisecond
		rs, err := a1.Query(ctx, "load", []byte("?"), opts)
		if err != nil {
			return nil, err
		}
		var got []string
		for _, r := range rs {
			if string(r.Payload) != "load:"+r.From {
				t.Errorf("response from %s: %q", r.From, r.Payload)
			}
			got = append(got, r.From)
		}
		slices.Sort(got)
		return got, nil
	}
	for _, tc := range []struct {
		opts QueryOptions
		want []string
	}{
		{QueryOptions{}, []string{"a0", "a1", "a2"}},
		{QueryOptions{Nodes: []string{"a0", "a2"}}, []string{"a0", "a2"}},
		{QueryOptions{Tags: map[string]string{"routing": "^4"}}, []string{"a2"}},
		{QueryOptions{Tags: map[string]string{"name": "a[01]"}}, []string{"a0", "a1"}},
		{QueryOptions{Tags: map[string]string{"role": "^kv$", "name": "^a1$"}}, []string{"a1"}},
		{QueryOptions{Nodes: []string{"a0"}, Tags: map[string]string{"name": "a1"}}, nil},
	} {
		answered := map[string]bool{}
		eventually(t, 10*time.Second, fmt.Sprintf("answers to %+v", tc.opts), func() error {
			got, err := query(tc.opts)
			if err != nil {
				t.Fatalf("query %+v: %v", tc.opts, err)
			}
			for _, from := range got {
				if !slices.Contains(tc.want, from) {
					t.Fatalf("query %+v answered by %v, want only %v", tc.opts, got, tc.want)
				}
				answered[from] = true
			}
			if len(answered) != len(tc.want) {
				return fmt.Errorf("answered so far by %v, want %v", slices.Sorted(maps.Keys(answered)), tc.want)
			}
			return nil
		})
	}

	// The query event carries its sender, and a bad filter is refused.
	if _, ok := a0.rec.find(QueryEvent, "load", since); !ok {
		t.Error("a0 recorded no query event")
	}
	if _, err := a1.Query(context.Background(), "load", nil, QueryOptions{Tags: map[string]string{"x": "("}}); !errors.Is(err, ErrBadFilter) {
		t.Errorf("bad regexp: %v, want ErrBadFilter", err)
	}
}

// TestQueryContext: a query ends early with the context, returning what it
// has, and a member that does not answer is just missing.
func TestQueryContext(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	rs, err := nodes[0].Query(ctx, "slow", nil, QueryOptions{Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query = %v, %v; want the context's deadline", rs, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Query returned after %s, long after its context ended", d)
	}
	if len(rs) != 2 {
		t.Logf("responses before the context ended: %v", rs)
	}
}

// TestUserEventAndQueryRefusals: reserved names, sizes and Respond on a
// non-query.
func TestUserEventAndQueryRefusals(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "solo"))
	ctx := context.Background()
	if err := n.UserEvent("_serf_x", nil, false); !errors.Is(err, ErrReservedName) {
		t.Errorf("reserved user event: %v", err)
	}
	if err := n.UserEvent("", nil, false); err == nil {
		t.Error("empty user event name accepted")
	}
	if err := n.UserEvent("big", make([]byte, MaxUserEventSize), false); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized user event: %v", err)
	}
	if _, err := n.Query(ctx, "_serf_ping", nil, QueryOptions{}); !errors.Is(err, ErrReservedName) {
		t.Errorf("reserved query: %v", err)
	}
	if _, err := n.Query(ctx, "big", make([]byte, 2*MaxQuerySize), QueryOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized query: %v", err)
	}
	if err := (Event{Kind: UserEvent}).Respond(nil); !errors.Is(err, ErrNotQuery) {
		t.Errorf("Respond on a user event: %v", err)
	}
	if _, err := n.Join(nil); !errors.Is(err, ErrJoinFailed) {
		t.Errorf("Join(nil): %v", err)
	}
	if _, err := n.Join([]string{"127.0.0.1:notaport"}); !errors.Is(err, ErrJoinFailed) {
		t.Errorf("Join(bad port): %v", err)
	}
}

// TestTagsTooLarge: tags over memberlist's 512-byte metadata limit are
// refused, at Start and by SetTags, with an error that says why.
func TestTagsTooLarge(t *testing.T) {
	t.Parallel()
	big := map[string]string{"blob": strings.Repeat("x", 600)}
	c := testConfig(t, "big")
	c.Tags = big
	_, err := Start(c)
	if !errors.Is(err, ErrTagsTooLarge) || !errors.Is(err, ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "Config.Tags") || !strings.Contains(err.Error(), "512") {
		t.Fatalf("Start with big tags: %v", err)
	}
	t.Log(err)

	n := startNode(t, testConfig(t, "small"))
	before := n.LocalMember().Tags
	err = n.SetTags(big)
	if !errors.Is(err, ErrTagsTooLarge) || !strings.Contains(err.Error(), "512") {
		t.Fatalf("SetTags with big tags: %v", err)
	}
	if got := n.LocalMember().Tags; !maps.Equal(got, before) {
		t.Errorf("tags changed to %v after a refused SetTags", got)
	}
	// Just under the limit is fine; TagsSize agrees with serf's encoding.
	fit := map[string]string{"blob": ""}
	for TagsSize(fit) < MaxTagsSize {
		fit["blob"] += "y"
	}
	if TagsSize(fit) != MaxTagsSize {
		t.Fatalf("TagsSize = %d, want %d", TagsSize(fit), MaxTagsSize)
	}
	if err := n.SetTags(fit); err != nil {
		t.Fatalf("SetTags of exactly %d bytes: %v", MaxTagsSize, err)
	}
	fit["blob"] += "y"
	if err := n.SetTags(fit); !errors.Is(err, ErrTagsTooLarge) {
		t.Fatalf("SetTags of %d bytes: %v", TagsSize(fit), err)
	}
}

// TestClustersNeverMerge: two clusters with the same key but different
// names (gossip labels) on one machine cannot join each other, even with
// the periodic re-join retrying, and a member with another key cannot join.
func TestClustersNeverMerge(t *testing.T) {
	t.Parallel()
	red := startCluster(t, 2, func(i int, c *Config) { c.ClusterName = "red"; c.NodeName = fmt.Sprintf("red%d", i) })
	blue := startCluster(t, 2, func(i int, c *Config) { c.ClusterName = "blue"; c.NodeName = fmt.Sprintf("blue%d", i) })

	n, err := blue[1].Join([]string{red[0].Addr().String()})
	if n != 0 || !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("join across labels = %d, %v; want ErrJoinFailed", n, err)
	}
	t.Logf("join across labels: %v", err)

	c := testConfig(t, "wrongkey")
	c.ClusterName = "red"
	c.SecretKey = []byte("fedcba9876543210")
	wrong := startNode(t, c)
	n, err = wrong.Join([]string{red[0].Addr().String()})
	if n != 0 || !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("join with another key = %d, %v; want ErrJoinFailed", n, err)
	}
	t.Logf("join with another key: %v", err)

	c = testConfig(t, "plain")
	c.ClusterName = "red"
	c.SecretKey = nil
	plain := startNode(t, c)
	if n, err = plain.Join([]string{red[0].Addr().String()}); n != 0 || !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("plaintext join of an encrypted cluster = %d, %v; want ErrJoinFailed", n, err)
	}

	// blue1 and wrongkey keep retrying every RejoinInterval (1 s here). Give
	// them a few rounds, then check nobody merged.
	deadline := time.Now().Add(3 * c.Resolved().RejoinInterval)
	eventually(t, 10*time.Second, "three re-join rounds", func() error {
		if time.Now().Before(deadline) {
			return errors.New("waiting")
		}
		return nil
	})
	for _, o := range red {
		if got := aliveNames(o.Membership); !slices.Equal(got, []string{"red0", "red1"}) {
			t.Errorf("%s sees %v", o.Name(), got)
		}
	}
	for _, o := range blue {
		if got := aliveNames(o.Membership); !slices.Equal(got, []string{"blue0", "blue1"}) {
			t.Errorf("%s sees %v", o.Name(), got)
		}
	}
	for _, o := range []*node{wrong, plain} {
		if got := aliveNames(o.Membership); len(got) != 1 {
			t.Errorf("%s sees %v", o.Name(), got)
		}
	}
}

// TestStartErrors: a taken port and an unusable snapshot path fail Start
// with a clear error and leave no goroutine behind (goleak in TestMain).
func TestStartErrors(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "first"))

	c := testConfig(t, "second")
	c.BindPort = int(n.Addr().Port())
	c.SnapshotPath = snapshotPath(t)
	_, err := Start(c)
	if err == nil || !strings.Contains(err.Error(), "listen on 127.0.0.1:") {
		t.Fatalf("Start on a taken port: %v", err)
	}
	t.Log(err)

	c = testConfig(t, "third")
	c.SnapshotPath = t.TempDir() // a directory, not a file
	if _, err := Start(c); err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("Start with a directory as snapshot: %v", err)
	}
}

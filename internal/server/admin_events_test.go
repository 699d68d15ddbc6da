package server

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseMessageArgs(t *testing.T) {
	words := func(s string) [][]byte { return bytes.Fields([]byte(s)) }
	for _, tc := range []struct {
		line, allowed string
		want          messageArgs
		err           string
	}{
		{line: "deploy v1  now", allowed: " -coalesce -base64 ", want: messageArgs{name: "deploy", payload: []byte("v1 now")}},
		{line: "-coalesce reload", allowed: " -coalesce -base64 ", want: messageArgs{name: "reload", payload: []byte{}, coalesce: true}},
		{line: "-base64 x YQogYg==", allowed: " -coalesce -base64 ", want: messageArgs{name: "x", payload: []byte("a\n b")}},
		{line: "-base64 x a b", allowed: " -base64 ", err: "one base64 word"},
		{line: "-base64 x ***", allowed: " -base64 ", err: "not base64"},
		{line: "-coalesce", allowed: " -coalesce ", err: "NAME is missing"},
		{line: "-node n", allowed: " -coalesce ", err: `unknown option "-node"`},
		{line: "-node a -node b -tag role=^web$ -timeout 2s load", allowed: " -node -tag -timeout -base64 ",
			want: func() messageArgs {
				m := messageArgs{name: "load", payload: []byte{}}
				m.opts.Nodes = []string{"a", "b"}
				m.opts.Tags = map[string]string{"role": "^web$"}
				m.opts.Timeout = 2 * time.Second
				return m
			}()},
		{line: "-tag role load", allowed: " -tag ", err: "not KEY=REGEXP"},
		{line: "-tag role=( load", allowed: " -tag ", err: "not a regular expression"},
		{line: "-timeout 0s load", allowed: " -timeout ", err: "-timeout"},
		{line: "-timeout 10m load", allowed: " -timeout ", err: "-timeout"},
		{line: "-node", allowed: " -node ", err: "-node needs a value"},
	} {
		got, err := parseMessageArgs(words(tc.line), tc.allowed)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.line, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.line, err)
		case !reflect.DeepEqual(got, tc.want):
			t.Errorf("%q: got %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

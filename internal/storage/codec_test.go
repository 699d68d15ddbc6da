package storage

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestRecordCodec(t *testing.T) {
	r := Record{Value: []byte("hello"), Flags: math.MaxUint32, Exptime: -3, CAS: 1 << 63,
		Version: Version{Time: 42, Origin: 7}}
	b := make([]byte, recordValueLen(&r))
	putRecordValue(b, &r)
	var got Record
	if err := decodeRecordValue(b, &got); err != nil || fmtRecord(&got) != fmtRecord(&r) {
		t.Fatalf("round trip: %s %v", fmtRecord(&got), err)
	}
	for _, bad := range [][]byte{nil, b[:recordHeaderLen-1], append([]byte{2}, b[1:]...)} {
		if err := decodeRecordValue(bad, &got); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode %x: %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestChangeCodec(t *testing.T) {
	for _, c := range []*Change{
		{Op: OpPut, Namespace: "ns", Key: []byte("k\x00"), Record: Record{Value: []byte("v"), Flags: 1, Exptime: 2, CAS: 3, Version: Version{4, 5}}},
		{Op: OpDelete, Namespace: "n", Key: bytes.Repeat([]byte("k"), 300), Record: Record{Version: Version{9, 1}}},
		{Op: OpPut, Namespace: "x", Key: nil},
	} {
		b := make([]byte, changeValueLen(c))
		putChangeValue(b, c)
		var got Change
		if err := decodeChangeValue(b, &got); err != nil || fmtChange(&got) != fmtChange(c) {
			t.Fatalf("round trip: %s %v, want %s", fmtChange(&got), err, fmtChange(c))
		}
		for n := 0; n < len(b)-len(c.Record.Value); n++ { // every truncation of the header
			if err := decodeChangeValue(b[:n], &got); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated to %d: %v, want ErrCorrupt", n, err)
			}
		}
	}
}

func TestKeys(t *testing.T) {
	k := appendDataKey(nil, 0x0102, "ns", []byte("k\x00"))
	if want := "d\x01\x02ns\x00k\x00"; string(k) != want || len(k) != dataKeyLen("ns", []byte("k\x00")) {
		t.Fatalf("data key %q, want %q", k, want)
	}
	v, ns, key, err := decodeDataKey(k)
	if err != nil || v != 0x0102 || string(ns) != "ns" || string(key) != "k\x00" {
		t.Fatalf("decode data key: %d %q %q %v", v, ns, key, err)
	}
	if _, _, _, err := decodeDataKey([]byte("d\x00\x01\x00k")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty namespace: %v", err)
	}
	// Expiry keys sort by signed exptime.
	prev := appendExpiryKey(nil, math.MinInt64, 0, "a", nil)
	for _, e := range []int64{-1, 0, 1, math.MaxInt64} {
		cur := appendExpiryKey(nil, e, 0, "a", nil)
		if bytes.Compare(prev, cur) >= 0 {
			t.Fatalf("expiry key of %d does not sort after the previous one", e)
		}
		if len(cur) != expiryKeyLen("a", nil) {
			t.Fatal("expiryKeyLen")
		}
		ref, err := decodeExpiryKey(append(cur, 'k'))
		if err != nil || ref.Exptime != e || ref.Namespace != "a" || string(ref.Key) != "k" {
			t.Fatalf("decode expiry key: %+v %v", ref, err)
		}
		prev = cur
	}
	for _, tc := range []struct{ in, want string }{
		{"a", "b"}, {"a\xff", "b"}, {"\xff\xff", ""}, {"l\xff\xff", "m"},
	} {
		if got := prefixEnd([]byte(tc.in)); string(got) != tc.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

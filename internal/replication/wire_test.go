package replication

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"testing"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/storage"
)

// TestFrameRoundTrip: frames written back to back read back one by one,
// with their type, id and body (an empty body included).
func TestFrameRoundTrip(t *testing.T) {
	frames := []frame{
		{typ: tForward, id: 1, body: []byte("hello")},
		{typ: tResult, id: math.MaxUint64, body: nil},
		{typ: tReplicate, id: 7, body: bytes.Repeat([]byte{0xAB}, 70000)}, // larger than the buffers
		{typ: 255, id: 0, body: []byte{0}},
	}
	var buf bytes.Buffer
	w := bufio.NewWriterSize(&buf, 16)
	for _, f := range frames {
		if err := writeFrame(w, f.typ, f.id, f.body); err != nil {
			t.Fatalf("writeFrame: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(&buf, 16)
	for i, want := range frames {
		got, err := readFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.typ != want.typ || got.id != want.id || !bytes.Equal(got.body, want.body) {
			t.Fatalf("frame %d: got typ %d id %d body %d bytes, want typ %d id %d body %d bytes",
				i, got.typ, got.id, len(got.body), want.typ, want.id, len(want.body))
		}
	}
	if _, err := readFrame(r); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestReadFrameErrors: lengths below the header or above maxFrame are
// refused before any allocation; a cut frame is an unexpected EOF.
func TestReadFrameErrors(t *testing.T) {
	hdr := func(n uint32) []byte {
		return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, make([]byte, 9)...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"length 0", hdr(0), errFrameTooLarge},
		{"length 8", hdr(8), errFrameTooLarge},
		{"length above max", hdr(maxFrame + 1), errFrameTooLarge},
		{"length max uint32", hdr(math.MaxUint32), errFrameTooLarge},
		{"cut header", hdr(20)[:7], io.ErrUnexpectedEOF},
		{"cut body", append(hdr(20), 1, 2, 3), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readFrame(bufio.NewReader(bytes.NewReader(tc.in)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("readFrame = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDecBounds: every reader of dec fails cleanly on a short or bad body,
// and the first error sticks.
func TestDecBounds(t *testing.T) {
	d := newDec(nil)
	if d.u8() != 0 || d.done() == nil {
		t.Fatalf("u8 of nothing did not fail")
	}
	// A length that points past the end.
	var e enc
	e.u64(10)
	e.b = append(e.b, "abc"...)
	d = newDec(e.b)
	if b := d.bytes(); b != nil || !errors.Is(d.done(), errShortBody) {
		t.Fatalf("bytes past the end = %q, %v", b, d.done())
	}
	if d.u64() != 0 || d.i64() != 0 || d.str() != "" || d.bool() {
		t.Fatalf("reads after an error returned data")
	}
	// An overlong varint (11 bytes of continuation).
	d = newDec(bytes.Repeat([]byte{0xFF}, 11))
	if d.u64(); d.done() == nil {
		t.Fatalf("overlong uvarint accepted")
	}
	d = newDec(bytes.Repeat([]byte{0xFF}, 11))
	if d.i64(); d.done() == nil {
		t.Fatalf("overlong varint accepted")
	}
	// A byte slice read is capped: appending to it cannot clobber what
	// follows.
	e = enc{}
	e.bytes([]byte("ab"))
	e.bytes([]byte("cd"))
	d = newDec(e.b)
	first := d.bytes()
	_ = append(first, 'X')
	if second := d.bytes(); string(second) != "cd" {
		t.Fatalf("append to a decoded slice clobbered the next field: %q", second)
	}
}

func sampleChange() storage.Change {
	return storage.Change{
		Vnode: 513, Seq: 1<<40 + 3, Op: storage.OpPut, Namespace: "users", Key: []byte("k\x00ey"),
		Record: storage.Record{
			Value: []byte("value"), Flags: math.MaxUint32, Exptime: -1, CAS: 99,
			Version: storage.Version{Time: 1<<60 + 5, Origin: math.MaxUint32},
		},
	}
}

// TestChangeRoundTrip: a change and its epoch survive the frame body.
func TestChangeRoundTrip(t *testing.T) {
	for _, c := range []storage.Change{
		sampleChange(),
		{Vnode: 0, Seq: 1, Op: storage.OpDelete, Namespace: "default", Key: []byte("k"),
			Record: storage.Record{Value: []byte{}, Version: storage.Version{Time: 1}}},
		{Vnode: math.MaxUint16, Seq: math.MaxUint64, Op: storage.OpPut, Namespace: "n", Key: []byte("k"),
			Record: storage.Record{Value: []byte{}, Exptime: math.MinInt64, CAS: math.MaxUint64}},
	} {
		var e enc
		e.change(42, &c)
		d := newDec(e.b)
		epoch, got := d.change()
		if err := d.done(); err != nil {
			t.Fatalf("decoding: %v", err)
		}
		if epoch != 42 || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip:\n got %d %+v\nwant 42 %+v", epoch, got, c)
		}
		if len(d.b) != 0 {
			t.Fatalf("%d bytes left over", len(d.b))
		}
		// Every cut of the body fails.
		for n := range len(e.b) {
			d := newDec(e.b[:n])
			d.change()
			if d.done() == nil {
				t.Fatalf("a body cut at %d of %d decoded", n, len(e.b))
			}
		}
	}
}

// requests has one request of every forwarded op, as View builds them.
func requests() []request {
	store := kv.StoreRequest{Op: kv.OpCAS, Namespace: "ns", Key: []byte("key"), Value: []byte("v"), Flags: 7, Exptime: -5, CAS: 1 << 50}
	return []request{
		{op: opGet, ns: "default", key: []byte("k")},
		{op: opGet, readSecondary: true, ns: "default", key: []byte("k")},
		{op: opStore, ns: "ns", key: []byte("key"), store: store},
		{op: opDelete, ns: "default", key: []byte("gone")},
		{op: opDeleteCAS, ns: "default", key: []byte("k"), cas: math.MaxUint64},
		{op: opGetAndTouch, ns: "default", key: []byte("k"), exptime: math.MinInt64},
		{op: opArith, ns: "default", key: []byte("n"), delta: math.MaxUint64, incr: true},
		{op: opArith, ns: "default", key: []byte("n"), delta: 1, incr: false},
		{op: opMetaArith, ns: "default", key: []byte("n"), arith: kv.ArithRequest{
			Delta: 3, Incr: true, CAS: 4, Vivify: true, Initial: 5, NewExptime: -6, Touch: true, Exptime: 7,
		}},
	}
}

// TestRequestRoundTrip: every op survives encode/decode, and a cut body or
// an unknown op is refused.
func TestRequestRoundTrip(t *testing.T) {
	for _, q := range requests() {
		b := q.encode()
		got, err := decodeRequest(b)
		if err != nil {
			t.Fatalf("op %d: %v", q.op, err)
		}
		if !reflect.DeepEqual(got, q) {
			t.Fatalf("op %d round trip:\n got %+v\nwant %+v", q.op, got, q)
		}
		if q.write() == (q.op == opGet) {
			t.Errorf("op %d: write() = %v", q.op, q.write())
		}
		for n := range len(b) {
			if _, err := decodeRequest(b[:n]); err == nil {
				t.Fatalf("op %d: a body cut at %d of %d decoded", q.op, n, len(b))
			}
		}
	}
	for _, op := range []byte{0, opMetaArith + 1, 255} {
		b := (&request{op: op, ns: "default", key: []byte("k")}).encode()
		if _, err := decodeRequest(b); err == nil {
			t.Errorf("unknown op %d accepted", op)
		}
	}
}

// TestResponseRoundTrip: a response survives encode/decode after an OK
// error kind.
func TestResponseRoundTrip(t *testing.T) {
	p := response{
		res: kv.Exists, found: true, cas: 12,
		item:        kv.Item{Value: []byte("v"), Flags: 3, CAS: 4, Exptime: -9},
		prevExptime: math.MinInt64, value: math.MaxUint64,
		arith: kv.ArithResult{Value: 8, Item: kv.Item{Value: []byte("8"), Flags: 1, CAS: 2, Exptime: 3}, PrevExptime: 4, Created: true},
	}
	var e enc
	encodeError(&e, nil)
	p.encode(&e)
	d := newDec(e.b)
	if err := decodeError(d); err != nil {
		t.Fatalf("decodeError: %v", err)
	}
	got, err := decodeResponse(d)
	if err != nil {
		t.Fatalf("decodeResponse: %v", err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
	}
	// The zero response re-encodes to the same bytes (empty values come
	// back as empty, not nil, slices).
	var z enc
	(&response{}).encode(&z)
	zd := newDec(z.b)
	back, err := decodeResponse(zd)
	if err != nil {
		t.Fatal(err)
	}
	var z2 enc
	back.encode(&z2)
	if !bytes.Equal(z.b, z2.b) {
		t.Fatalf("zero response does not re-encode identically")
	}
	for n := range len(e.b) - 1 {
		d := newDec(e.b[1 : 1+n])
		if _, err := decodeResponse(d); err == nil {
			t.Fatalf("a response cut at %d decoded", n)
		}
	}
}

// TestErrorRoundTrip: nil stays nil; NotPrimaryError keeps its fields,
// also when wrapped; every wire sentinel keeps its identity (errors.Is)
// and message, and matches no other sentinel; other errors keep their
// message only; a remote error re-encoded (forwarded twice) keeps its kind.
func TestErrorRoundTrip(t *testing.T) {
	roundTrip := func(err error) error {
		t.Helper()
		b := errorBody(err)
		d := newDec(b)
		got := decodeError(d)
		if d.done() != nil || len(d.b) != 0 {
			t.Fatalf("%v: decoding left %d bytes, err %v", err, len(d.b), d.done())
		}
		return got
	}
	if err := roundTrip(nil); err != nil {
		t.Fatalf("nil came back as %v", err)
	}
	np := &NotPrimaryError{Vnode: 511, Primary: "10.0.0.1_11211", Version: 77}
	for _, err := range []error{np, fmt.Errorf("context: %w", np)} {
		var got *NotPrimaryError
		if !errors.As(roundTrip(err), &got) || *got != *np {
			t.Fatalf("%v came back as %#v", err, got)
		}
		if got.Error() != "NOT_PRIMARY 511 10.0.0.1_11211 77" {
			t.Fatalf("Error() = %q", got.Error())
		}
	}
	for i, s := range wireSentinels {
		wrapped := fmt.Errorf("vnode 3: %w", s)
		got := roundTrip(wrapped)
		if !errors.Is(got, s) {
			t.Errorf("sentinel %d (%v) lost its identity: %#v", i, s, got)
		}
		if got.Error() != wrapped.Error() {
			t.Errorf("sentinel %d message %q, want %q", i, got.Error(), wrapped.Error())
		}
		for j, o := range wireSentinels {
			if j != i && errors.Is(got, o) && !errors.Is(s, o) {
				t.Errorf("sentinel %d (%v) also matches %d (%v)", i, s, j, o)
			}
		}
		// Forwarded once more: the kind survives.
		if again := roundTrip(got); !errors.Is(again, s) || again.Error() != wrapped.Error() {
			t.Errorf("sentinel %d lost its identity on a second hop: %v", i, again)
		}
	}
	// unavailable() is ErrUnavailable on the other side.
	if got := roundTrip(unavailable(4, "because %s", "reasons")); !errors.Is(got, ErrUnavailable) || got.Error() != "vnode 4 unavailable: because reasons" {
		t.Errorf("unavailable came back as %v", got)
	}
	plain := errors.New("some local failure")
	got := roundTrip(plain)
	if got.Error() != plain.Error() {
		t.Errorf("plain error message %q", got.Error())
	}
	for _, s := range wireSentinels {
		if errors.Is(got, s) {
			t.Errorf("a plain error matches %v", s)
		}
	}
	// An unknown kind (a newer peer) decodes as a plain error.
	var e enc
	e.u8(200)
	e.str("from the future")
	if got := decodeError(newDec(e.b)); got == nil || got.Error() != "from the future" {
		t.Errorf("unknown kind came back as %v", got)
	}
	// An empty body is a broken peer.
	if got := decodeError(newDec(nil)); !errors.Is(got, ErrPeerDown) {
		t.Errorf("empty body: %v, want ErrPeerDown", got)
	}
	// The wire values are fixed: appending is fine, reordering is not.
	fixed := []error{
		ErrUnavailable, ErrLost, ErrStaleEpoch,
		kv.ErrNonNumeric, kv.ErrNoNamespace, kv.ErrSeqGap,
		meta.ErrStaleEpoch, meta.ErrNotReplica, meta.ErrUnknownMember, meta.ErrNamespaceExists,
		meta.ErrNoNamespace, meta.ErrDefaultNamespace, meta.ErrNotInitialized, meta.ErrBadCommand,
		storage.ErrBadNamespace, ErrNotLeader,
	}
	if len(wireSentinels) < len(fixed) {
		t.Fatalf("wireSentinels lost entries: the index is the wire value")
	}
	for i, s := range fixed {
		if wireSentinels[i] != s {
			t.Errorf("wireSentinels[%d] = %v, want %v: the index is the wire value (append only)", i, wireSentinels[i], s)
		}
	}
	if int(kindOther)+len(wireSentinels) > 255 {
		t.Errorf("too many wire sentinels for a one-byte kind")
	}
}

// TestForwardBatchBody: the batch body of forwardBatch decodes as
// handleForwardBatch expects.
func TestForwardBatchBody(t *testing.T) {
	qs := requests()
	var e enc
	e.u64(uint64(len(qs)))
	for _, q := range qs {
		e.bytes(q.encode())
	}
	d := newDec(e.b)
	n := d.u64()
	if n != uint64(len(qs)) {
		t.Fatalf("count %d", n)
	}
	for i := range n {
		q, err := decodeRequest(d.bytes())
		if err != nil || !reflect.DeepEqual(q, qs[i]) {
			t.Fatalf("request %d: %+v, %v", i, q, err)
		}
	}
	if d.done() != nil || len(d.b) != 0 {
		t.Fatalf("left over: %d, %v", len(d.b), d.done())
	}
}

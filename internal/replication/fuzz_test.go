package replication

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// The fuzz targets feed arbitrary bytes to the decoders of peer traffic,
// which any connection that sent the 0xF3 marker reaches. None may panic;
// what decodes must re-encode to a body that decodes to the same value.
// Seeds: the f.Add calls below and testdata/fuzz/<target>/.

// FuzzDecodeRequest: decodeRequest never panics, and a request it accepts
// re-encodes canonically (encode(decode(encode(q))) == encode(q)).
func FuzzDecodeRequest(f *testing.F) {
	for _, q := range requests() {
		f.Add(q.encode())
	}
	f.Add([]byte{})
	f.Add([]byte{opStore, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeRequest(b)
		if err != nil {
			return
		}
		enc1 := q.encode()
		q2, err := decodeRequest(enc1)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if enc2 := q2.encode(); !bytes.Equal(enc1, enc2) {
			t.Fatalf("request does not re-encode identically:\n%x\n%x", enc1, enc2)
		}
		if q.op == opStore && (q.store.Namespace != q.ns || !bytes.Equal(q.store.Key, q.key)) {
			t.Fatalf("store request namespace/key differ from the request's")
		}
	})
}

// FuzzReadFrame: readFrame never panics on a stream of arbitrary bytes, and
// every frame it returns writes back as the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	_ = writeFrame(w, tForward, 1, (&request{op: opGet, ns: "default", key: []byte("k")}).encode())
	_ = writeFrame(w, tResult, 1, errorBody(nil))
	_ = writeFrame(w, tAck, 2, nil)
	_ = w.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 9, tStatus, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		consumed := 0
		for {
			// readFrame allocates the declared length before reading it
			// (up to maxFrame, 1 GiB); a declared length far beyond the
			// input only exercises the allocator, so such inputs stop here.
			if h, err := r.Peek(4); err == nil {
				if n := binary.BigEndian.Uint32(h); n >= 9 && n <= maxFrame && int(n) > len(b)-consumed+64 {
					return
				}
			}
			fr, err := readFrame(r)
			if err != nil {
				// A clean io.EOF only at a frame boundary, or (as
				// io.ReadFull reports a body it read nothing of) right
				// after a whole header.
				if err == io.EOF && consumed != len(b) && len(b)-consumed != 13 {
					t.Fatalf("io.EOF with %d of %d bytes consumed", consumed, len(b))
				}
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			if err := writeFrame(w, fr.typ, fr.id, fr.body); err != nil {
				t.Fatal(err)
			}
			_ = w.Flush()
			n := out.Len()
			if consumed+n > len(b) || !bytes.Equal(out.Bytes(), b[consumed:consumed+n]) {
				t.Fatalf("frame at %d does not write back as read", consumed)
			}
			consumed += n
		}
	})
}

// FuzzDecodeChange: a replication body never panics the decoder, and a
// change it accepts re-encodes identically.
func FuzzDecodeChange(f *testing.F) {
	c := sampleChange()
	var e enc
	e.change(3, &c)
	f.Add(e.b)
	e = enc{}
	e.change(0, &storage.Change{Op: storage.OpDelete})
	f.Add(e.b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newDec(b)
		epoch, c := d.change()
		if d.done() != nil {
			return
		}
		var e1 enc
		e1.change(epoch, &c)
		d2 := newDec(e1.b)
		epoch2, c2 := d2.change()
		if d2.done() != nil || len(d2.b) != 0 {
			t.Fatalf("re-encoded change does not decode: %v", d2.done())
		}
		var e2 enc
		e2.change(epoch2, &c2)
		if !bytes.Equal(e1.b, e2.b) {
			t.Fatalf("change does not re-encode identically")
		}
	})
}

// FuzzDecodeResponse: response bodies (error kind, then fields) never
// panic the decoders.
func FuzzDecodeResponse(f *testing.F) {
	var e enc
	encodeError(&e, nil)
	(&response{found: true, item: kv.Item{Value: []byte("v")}}).encode(&e)
	f.Add(e.b)
	f.Add(errorBody(&NotPrimaryError{Vnode: 1, Primary: "a_1", Version: 2}))
	f.Add(errorBody(ErrStaleEpoch))
	f.Add([]byte{kindNotPrimary})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newDec(b)
		if err := decodeError(d); err != nil {
			_ = err.Error()
			for _, s := range wireSentinels {
				_ = errors.Is(err, s)
			}
			return
		}
		if p, err := decodeResponse(d); err == nil {
			var e enc
			p.encode(&e)
		}
	})
}

// FuzzHandleFrame: whatever frame a peer sends, a node answers it (or
// applies it) without panicking or blocking. The node is alone, the
// primary of every vnode; proposals are refused (no Raft), so the
// metadata stays put.
func FuzzHandleFrame(f *testing.F) {
	c := newCluster(f, []routing.NodeID{nA}, quiet, withTimeout(50*time.Millisecond))
	c.layout([][]routing.NodeID{{nA}, {nA}, {nA}, {nA}}, nil)
	n := c.node(nA)
	n.failPropose.Store(true)
	r := n.rep
	for _, q := range requests() {
		f.Add(tForward, q.encode())
	}
	var e enc
	e.u64(2)
	e.bytes((&request{op: opGet, ns: "default", key: []byte("k")}).encode())
	e.bytes((&request{op: opArith, ns: "default", key: []byte("k"), delta: 1}).encode())
	f.Add(tForwardBatch, e.b)
	ch := sampleChange()
	ch.Vnode, ch.Namespace = 1, "default"
	e = enc{}
	e.change(2, &ch)
	f.Add(tReplicate, e.b)
	f.Add(tLoad, e.b)
	e = enc{}
	e.u64(1)
	e.u64(2)
	e.u64(5)
	f.Add(tReset, e.b)
	f.Add(tSetSeq, e.b)
	f.Add(tStatus, []byte{3})
	f.Add(tFlush, append([]byte{7}, "default\x00"...))
	f.Add(tPropose, meta.Command{Op: meta.OpRemoveMember, Node: nA}.Encode())
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		fr := frame{typ: typ, id: 1, body: body}
		done := make(chan []byte, 1)
		go func() {
			switch typ {
			case tReplicate, tLoad, tReset, tSetSeq:
				done <- r.handleReplica(fr)
			default:
				done <- r.handleRequest(fr)
			}
		}()
		select {
		case out := <-done:
			d := newDec(out)
			if err := decodeError(d); err != nil {
				_ = err.Error()
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame type %d did not get an answer", typ)
		}
	})
}

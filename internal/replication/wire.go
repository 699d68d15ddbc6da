package replication

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/sonae-kv/sonae/internal/storage"
)

// Frame types. Their values travel on the wire: append new ones at the end.
const (
	// tForward asks the receiver to run a data command as the vnode's
	// primary (forwarding). Answered by tResult.
	tForward byte = iota + 1
	tResult
	// tReplicate carries one change of a vnode at an epoch; tLoad one
	// record of a full copy. Answered by tAck.
	tReplicate
	tLoad
	tAck
	// tStatus asks a replica where its copy of a vnode stands; tReset
	// makes it drop the vnode and restart its log at a seq. Answered by
	// tResult.
	tStatus
	tReset
	// tPropose asks the receiver (the Raft leader) to commit a metadata
	// command. Answered by tResult.
	tPropose
	// tFlush runs flush_all on the receiver's own data.
	tFlush
	// tForwardBatch carries several reads for the receiver to answer as
	// primary (a multi-key get grouped by primary). Answered by tResult.
	tForwardBatch
	// tApplied asks for the Raft index of the receiver's metadata.
	// Answered by tResult.
	tApplied
	// tSetSeq ends a full copy: the vnode's records are all there, its log
	// continues after the given seq. Answered by tAck.
	tSetSeq
	// tLease asks the receiver, the Raft leader, for a read lease for the
	// node named in the body. Answered by tResult with the leader's commit
	// index: the lease counts only once the asker has applied it.
	tLease
)

// maxFrame bounds a frame: the largest item plus headroom.
const maxFrame = 1<<30 + 1<<20

var errFrameTooLarge = errors.New("replication: frame too large")

// frame is one message.
type frame struct {
	typ  byte
	id   uint64
	body []byte
}

func writeFrame(w *bufio.Writer, typ byte, id uint64, body []byte) error {
	var h [13]byte
	binary.BigEndian.PutUint32(h[:4], uint32(9+len(body)))
	h[4] = typ
	binary.BigEndian.PutUint64(h[5:], id)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

func readFrame(r *bufio.Reader) (frame, error) {
	var h [13]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < 9 || n > maxFrame {
		return frame{}, fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
	}
	// Grow the body as it arrives rather than trusting the header: a
	// peer cannot make this node allocate a gigabyte with 13 bytes.
	size := int(n - 9)
	body := make([]byte, 0, min(size, 64<<10))
	for len(body) < size {
		chunk := min(size-len(body), max(cap(body)-len(body), 64<<10))
		body = slices.Grow(body, chunk)
		m, err := io.ReadFull(r, body[len(body):len(body)+chunk])
		body = body[:len(body)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return frame{}, err
		}
	}
	return frame{typ: h[4], id: binary.BigEndian.Uint64(h[5:]), body: body}, nil
}

// enc appends fields to a body.
type enc struct{ b []byte }

func (e *enc) u8(v byte)    { e.b = append(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i64(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(v []byte) {
	e.u64(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *enc) str(v string) {
	e.u64(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// dec reads fields from a body; the first error sticks.
type dec struct {
	b   []byte
	err error
}

var errShortBody = errors.New("replication: truncated frame body")

func (d *dec) u8() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) u64() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i64() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.u64()
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }
func (d *dec) bool() bool  { return d.u8() != 0 }
func (d *dec) fail()       { d.err = errShortBody }
func (d *dec) done() error { return d.err }
func newDec(b []byte) *dec { return &dec{b: b} }

// change encodes a storage change with the epoch of its vnode.
func (e *enc) change(epoch uint64, c *storage.Change) {
	e.u64(uint64(c.Vnode))
	e.u64(epoch)
	e.u64(c.Seq)
	e.u8(byte(c.Op))
	e.str(c.Namespace)
	e.bytes(c.Key)
	e.bytes(c.Record.Value)
	e.u64(uint64(c.Record.Flags))
	e.i64(c.Record.Exptime)
	e.u64(c.Record.CAS)
	e.u64(c.Record.Version.Time)
	e.u64(uint64(c.Record.Version.Origin))
}

func (d *dec) change() (epoch uint64, c storage.Change) {
	c.Vnode = uint16(d.u64())
	epoch = d.u64()
	c.Seq = d.u64()
	c.Op = storage.Op(d.u8())
	c.Namespace = d.str()
	c.Key = d.bytes()
	c.Record.Value = d.bytes()
	c.Record.Flags = uint32(d.u64())
	c.Record.Exptime = d.i64()
	c.Record.CAS = d.u64()
	c.Record.Version.Time = d.u64()
	c.Record.Version.Origin = uint32(d.u64())
	return epoch, c
}

package storage

import (
	"encoding/binary"
	"fmt"
)

// formatV1 is the first byte of every record value and log entry written by
// this version of the code. Readers reject other values with ErrCorrupt, so
// a future format can be told apart.
const formatV1 byte = 1

// recordFieldsLen is the size of the fixed record fields: flags u32 |
// exptime i64 | cas u64 | version.time u64 | version.origin u32.
const recordFieldsLen = 4 + 8 + 8 + 8 + 4

// recordHeaderLen is the header in front of a stored value: format byte and
// the record fields.
const recordHeaderLen = 1 + recordFieldsLen

// putRecordFields writes the fixed fields of r into b[:recordFieldsLen].
func putRecordFields(b []byte, r *Record) {
	_ = b[recordFieldsLen-1]
	binary.BigEndian.PutUint32(b[0:4], r.Flags)
	binary.BigEndian.PutUint64(b[4:12], uint64(r.Exptime))
	binary.BigEndian.PutUint64(b[12:20], r.CAS)
	binary.BigEndian.PutUint64(b[20:28], r.Version.Time)
	binary.BigEndian.PutUint32(b[28:32], r.Version.Origin)
}

// getRecordFields reads the fixed fields from b[:recordFieldsLen].
func getRecordFields(b []byte, r *Record) {
	_ = b[recordFieldsLen-1]
	r.Flags = binary.BigEndian.Uint32(b[0:4])
	r.Exptime = int64(binary.BigEndian.Uint64(b[4:12]))
	r.CAS = binary.BigEndian.Uint64(b[12:20])
	r.Version.Time = binary.BigEndian.Uint64(b[20:28])
	r.Version.Origin = binary.BigEndian.Uint32(b[28:32])
}

// recordValueLen is the stored size of r.
func recordValueLen(r *Record) int { return recordHeaderLen + len(r.Value) }

// putRecordValue encodes r into b, which must be recordValueLen(r) long.
func putRecordValue(b []byte, r *Record) {
	b[0] = formatV1
	putRecordFields(b[1:], r)
	copy(b[recordHeaderLen:], r.Value)
}

// decodeRecordValue decodes a stored value. r.Value aliases b.
func decodeRecordValue(b []byte, r *Record) error {
	if len(b) < recordHeaderLen || b[0] != formatV1 {
		return fmt.Errorf("%w: bad record value (%d bytes)", ErrCorrupt, len(b))
	}
	getRecordFields(b[1:], r)
	r.Value = b[recordHeaderLen:]
	return nil
}

// changeValueLen is the encoded size of c in the change log.
func changeValueLen(c *Change) int {
	return 3 + len(c.Namespace) + uvarintLen(uint64(len(c.Key))) + len(c.Key) +
		recordFieldsLen + len(c.Record.Value)
}

// putChangeValue encodes c (everything except Vnode and Seq, which are in
// the log key) into b, which must be changeValueLen(c) long:
//
//	format u8 | op u8 | nsLen u8 | ns | keyLen uvarint | key | record fields | value
func putChangeValue(b []byte, c *Change) {
	b[0] = formatV1
	b[1] = byte(c.Op)
	b[2] = byte(len(c.Namespace))
	i := 3 + copy(b[3:], c.Namespace)
	i += binary.PutUvarint(b[i:], uint64(len(c.Key)))
	i += copy(b[i:], c.Key)
	putRecordFields(b[i:], &c.Record)
	copy(b[i+recordFieldsLen:], c.Record.Value)
}

// decodeChangeValue decodes a log entry into c. c.Key and c.Record.Value
// alias b; Vnode and Seq are left alone.
func decodeChangeValue(b []byte, c *Change) error {
	if len(b) < 3 || b[0] != formatV1 {
		return fmt.Errorf("%w: bad change (%d bytes)", ErrCorrupt, len(b))
	}
	c.Op = Op(b[1])
	nsLen := int(b[2])
	i := 3
	if c.Op != OpPut && c.Op != OpDelete || nsLen == 0 || len(b) < i+nsLen {
		return fmt.Errorf("%w: bad change header %x", ErrCorrupt, b[:3])
	}
	c.Namespace = string(b[i : i+nsLen])
	i += nsLen
	keyLen, n := binary.Uvarint(b[i:])
	if n <= 0 || uint64(len(b)-i-n) < keyLen+recordFieldsLen {
		return fmt.Errorf("%w: bad change key length", ErrCorrupt)
	}
	i += n
	c.Key = b[i : i+int(keyLen)]
	i += int(keyLen)
	getRecordFields(b[i:], &c.Record)
	c.Record.Value = b[i+recordFieldsLen:]
	return nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// logged returns the form of c kept in the change log: a delete keeps only
// the version of its record.
func logged(c *Change) *Change {
	r := &c.Record
	if c.Op != OpDelete || (len(r.Value) == 0 && r.Flags == 0 && r.Exptime == 0 && r.CAS == 0) {
		return c
	}
	d := *c
	d.Record = Record{Version: r.Version}
	return &d
}

// validateChange checks what Apply needs before writing anything.
func validateChange(c *Change) error {
	if c.Op != OpPut && c.Op != OpDelete {
		return fmt.Errorf("%w: op %d", ErrBadChange, c.Op)
	}
	return ValidNamespace(c.Namespace)
}

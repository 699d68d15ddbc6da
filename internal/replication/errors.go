package replication

import (
	"errors"
	"fmt"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// Error kinds on the wire: the first byte of every response body. The
// sentinels of the kinds after kindNotPrimary survive the trip: the error a
// caller gets from a peer matches them with errors.Is.
const (
	kindOK byte = iota
	kindNotPrimary
	kindOther
)

// wireSentinels are the errors that keep their identity across peers; the
// kind of wireSentinels[i] is kindOther+1+i. Append only: the index is
// the wire value.
var wireSentinels = []error{
	ErrUnavailable, ErrLost, ErrStaleEpoch,
	kv.ErrNonNumeric, kv.ErrNoNamespace, kv.ErrSeqGap,
	meta.ErrStaleEpoch, meta.ErrNotReplica, meta.ErrUnknownMember, meta.ErrNamespaceExists,
	meta.ErrNoNamespace, meta.ErrDefaultNamespace, meta.ErrNotInitialized, meta.ErrBadCommand,
	storage.ErrBadNamespace, ErrNotLeader, ErrDiverged,
}

// ErrNotLeader: a proposal reached a node that is not the Raft leader.
var ErrNotLeader = errors.New("not the metadata leader")

// errorBody encodes err (nil: kindOK) as a response body; a successful
// response appends its fields after it.
func errorBody(err error) []byte {
	var e enc
	encodeError(&e, err)
	return e.b
}

func encodeError(e *enc, err error) {
	var np *NotPrimaryError
	switch {
	case err == nil:
		e.u8(kindOK)
		return
	case errors.As(err, &np):
		e.u8(kindNotPrimary)
		e.u64(uint64(np.Vnode))
		e.str(string(np.Primary))
		e.u64(np.Version)
		return
	}
	kind := kindOther
	for i, s := range wireSentinels {
		if errors.Is(err, s) {
			kind = kindOther + 1 + byte(i)
			break
		}
	}
	e.u8(kind)
	e.str(err.Error())
}

// remoteError is an error a peer returned; Is matches the sentinel of its
// kind, so callers test it exactly as a local error.
type remoteError struct {
	kind byte
	msg  string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	i := int(e.kind) - int(kindOther) - 1
	return i >= 0 && i < len(wireSentinels) && wireSentinels[i] == target
}

// decodeError reads the leading error of a response body; nil means the
// fields of a successful response follow in d.
func decodeError(d *dec) error {
	k := d.u8()
	if d.err != nil {
		return fmt.Errorf("%w: %v", ErrPeerDown, d.err)
	}
	switch k {
	case kindOK:
		return nil
	case kindNotPrimary:
		e := &NotPrimaryError{Vnode: int(d.u64()), Primary: routing.NodeID(d.str()), Version: d.u64()}
		return e
	}
	return &remoteError{kind: k, msg: d.str()}
}

// unavailable builds the error for a vnode that cannot serve now.
func unavailable(v int, format string, args ...any) error {
	return fmt.Errorf("vnode %d %w: %s", v, ErrUnavailable, fmt.Sprintf(format, args...))
}

package kv

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// Sentinel errors of the kv package.
var (
	// ErrNoNamespace means the namespace does not exist.
	ErrNoNamespace = errors.New("kv: no such namespace")
	// ErrNamespaceExists means createhash named an existing namespace.
	ErrNamespaceExists = errors.New("kv: namespace already exists")
	// ErrDefaultNamespace means an attempt to delete the default namespace.
	ErrDefaultNamespace = errors.New("kv: the default namespace cannot be deleted")
	// ErrNonNumeric means incr/decr found a value that is not a number.
	ErrNonNumeric = errors.New("kv: non-numeric value")
)

// DefaultNamespace always exists.
const DefaultNamespace = "default"

// MaxRelativeExptime is memcached's REALTIME_MAXDELTA: larger exptimes are
// absolute unix times.
const MaxRelativeExptime = 60 * 60 * 24 * 30

// Result is the outcome of a storage command, as memcached names it.
type Result uint8

// Results of storage commands.
const (
	Stored Result = iota + 1
	NotStored
	Exists
	NotFound
	// Deleted is DeleteCAS's success.
	Deleted
)

// Item is what a read returns.
type Item struct {
	Value []byte
	Flags uint32
	CAS   uint64
	// Exptime is the absolute unix expiry time, 0 for never.
	Exptime int64
}

// Options configures a Store.
type Options struct {
	// DivBits fixes the vnode count at 2^DivBits.
	DivBits uint
	// MaxItemSize bounds items, including ones grown by append/prepend.
	MaxItemSize int
	// ItemFits decides whether an item of this shape is within MaxItemSize;
	// the server passes memcached's accounting (header, key, flags). Nil
	// compares the value length alone.
	ItemFits func(keyLen int, flags uint32, valueLen int) bool
	// Origin is this cluster's id, stamped on every version.
	Origin uint32
	// RetainEntries keeps at most this many change-log entries per vnode.
	RetainEntries int
	// RetainAge drops change-log entries older than this.
	RetainAge time.Duration
	// ExpiryScanInterval is the period of the background reclaimer.
	ExpiryScanInterval time.Duration
	// Replicate, when set, is called with every change the Store applies
	// on a client's behalf (all writes and deletes; not the reclaiming of
	// expired or flushed items, nor the changes of ApplyReplicated and
	// LoadReplicated), right after the engine applied it and while the
	// vnode lock is held, so that calls for one vnode come in seq order.
	// The Change is valid only during the call: Replicate copies what it
	// keeps. It must not block for long and must not call the Store.
	//
	// The func it returns (nil for none) is called after the vnode lock is
	// released and before the Store method returns, for example to wait
	// for replicas to acknowledge. If it returns an error, the Store method
	// returns that error, wrapped, although the change stays applied
	// locally. Nil Replicate (a single node) replicates nothing.
	Replicate func(c *storage.Change) func() error
}

// DefaultOptions matches config.Default.
func DefaultOptions() Options {
	return Options{
		DivBits: routing.DefaultDivBits, MaxItemSize: 1 << 20, RetainEntries: 10000,
		RetainAge: time.Hour, ExpiryScanInterval: time.Second,
	}
}

// Validate reports a bad option by name.
func (o *Options) Validate() error {
	switch {
	case routing.ValidateDivBits(int(o.DivBits)) != nil:
		return fmt.Errorf("kv: DivBits %d out of range 1..%d", o.DivBits, routing.MaxDivBits)
	case o.MaxItemSize < 1:
		return fmt.Errorf("kv: MaxItemSize %d must be positive", o.MaxItemSize)
	case o.RetainEntries < 1:
		return fmt.Errorf("kv: RetainEntries %d must be positive", o.RetainEntries)
	case o.RetainAge <= 0:
		return fmt.Errorf("kv: RetainAge %s must be positive", o.RetainAge)
	case o.ExpiryScanInterval <= 0:
		return fmt.Errorf("kv: ExpiryScanInterval %s must be positive", o.ExpiryScanInterval)
	}
	return nil
}

// Counters are cumulative totals since start.
type Counters struct {
	Writes, Deletes, Reclaimed, Flushes int64
	// GetExpired and GetFlushed count reads that found an item hidden by
	// its exptime or by flush_all (memcached's get_expired, get_flushed).
	GetExpired, GetFlushed int64
}

// Store applies memcached semantics to an Engine. It is safe for concurrent use.
type Store struct {
	eng  storage.Engine
	clk  clock.Clock
	hlc  *HLC
	opts Options
	log  *slog.Logger

	locks []sync.Mutex // one per vnode: orders read-modify-write and seq
	// waits[vn] is the Replicate wait of the write in progress in vnode
	// vn, guarded by locks[vn]; nil when Options.Replicate is nil.
	waits []func() error

	items atomic.Int64
	bytes atomic.Int64

	writes, deletes, reclaimed, flushes atomic.Int64
	getExpired, getFlushed              atomic.Int64

	// nsMu serialises namespace changes; readers use the copy-on-write
	// snapshot in namespaces and never lock, so the hot path does not bounce
	// a shared lock word between cores.
	nsMu       sync.Mutex
	namespaces atomic.Pointer[map[string]*nsState]
}

// nsState is per-namespace metadata.
type nsState struct {
	flush atomic.Pointer[flushHorizon]
}

// Open builds a Store over eng, restoring counters, namespaces and flush
// horizons from it.
func Open(eng storage.Engine, clk clock.Clock, opts Options, log *slog.Logger) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	u, err := eng.Usage()
	if err != nil {
		return nil, fmt.Errorf("kv: scanning engine: %w", err)
	}
	s := &Store{
		eng: eng, clk: clk, opts: opts, log: log,
		hlc:   NewHLC(clk, u.MaxVersion),
		locks: make([]sync.Mutex, routing.VnodeCount(opts.DivBits)),
	}
	if opts.Replicate != nil {
		s.waits = make([]func() error, len(s.locks))
	}
	s.items.Store(u.Items)
	s.bytes.Store(u.Bytes)
	if err := s.loadNamespaces(); err != nil {
		return nil, err
	}
	return s, nil
}

// Engine returns the underlying engine.
func (s *Store) Engine() storage.Engine { return s.eng }

// Vnode returns the vnode of key.
func (s *Store) Vnode(key []byte) uint16 { return routing.Vnode(key, s.opts.DivBits) }

// VnodeCount is the number of vnodes.
func (s *Store) VnodeCount() int { return len(s.locks) }

// Usage returns the live counters: records held and their key+value bytes.
func (s *Store) Usage() (items, bytes int64) { return s.items.Load(), s.bytes.Load() }

// Counters returns cumulative totals.
func (s *Store) Counters() Counters {
	return Counters{
		Writes: s.writes.Load(), Deletes: s.deletes.Load(),
		Reclaimed: s.reclaimed.Load(), Flushes: s.flushes.Load(),
		GetExpired: s.getExpired.Load(), GetFlushed: s.getFlushed.Load(),
	}
}

// AbsExptime turns a memcached exptime into an absolute unix time (0 for
// never). A result <= now means the item is already expired.
func AbsExptime(exptime int64, now time.Time) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		return 1 // memcached maps negatives to a time long past
	case exptime > MaxRelativeExptime:
		return exptime
	default:
		return now.Unix() + exptime
	}
}

func expired(exptime int64, now time.Time) bool {
	return exptime != 0 && now.Unix() >= exptime
}

// visible reports whether r can be returned to a client.
func (s *Store) visible(ns *nsState, r *storage.Record, now time.Time) bool {
	return !expired(r.Exptime, now) && !s.flushed(ns, r, now)
}

func (s *Store) flushed(ns *nsState, r *storage.Record, now time.Time) bool {
	f := ns.flush.Load()
	return f != nil && f.hides(r.Version.Time, now)
}

// Get returns the visible item under ns/key.
func (s *Store) Get(name string, key []byte) (Item, bool, error) {
	ns, err := s.namespace(name)
	if err != nil {
		return Item{}, false, err
	}
	now := s.clk.Now()
	r, err := s.eng.Get(s.Vnode(key), name, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Item{}, false, nil
	}
	if err != nil {
		return Item{}, false, err
	}
	switch {
	case expired(r.Exptime, now):
		s.getExpired.Add(1)
		return Item{}, false, nil
	case s.flushed(ns, &r, now):
		s.getFlushed.Add(1)
		return Item{}, false, nil
	}
	return itemOf(&r), true, nil
}

func itemOf(r *storage.Record) Item {
	return Item{Value: r.Value, Flags: r.Flags, CAS: r.CAS, Exptime: r.Exptime}
}

// put writes r under ns/key as the vnode's next change and hands the change
// to Options.Replicate. Callers hold the lock, under withKey, which runs the
// Replicate wait after the unlock.
func (s *Store) put(vn uint16, name string, key []byte, old *storage.Record, r storage.Record) error {
	c := storage.Change{Vnode: vn, Seq: s.eng.LastSeq(vn) + 1, Op: storage.OpPut, Namespace: name, Key: key, Record: r}
	if err := s.eng.Apply(&c); err != nil {
		return err
	}
	s.replicate(&c)
	s.writes.Add(1)
	size := int64(len(key) + len(r.Value))
	if old != nil {
		s.bytes.Add(size - int64(len(key)+len(old.Value)))
	} else {
		s.items.Add(1)
		s.bytes.Add(size)
	}
	return nil
}

// remove deletes ns/key as the vnode's next change and hands the change to
// Options.Replicate. Callers hold the lock, under withKey.
func (s *Store) remove(vn uint16, name string, key []byte, old *storage.Record) error {
	c := storage.Change{
		Vnode: vn, Seq: s.eng.LastSeq(vn) + 1, Op: storage.OpDelete, Namespace: name, Key: key,
		Record: storage.Record{Version: s.version()},
	}
	if err := s.eng.Apply(&c); err != nil {
		return err
	}
	s.replicate(&c)
	s.deletes.Add(1)
	s.items.Add(-1)
	s.bytes.Add(-int64(len(key) + len(old.Value)))
	return nil
}

func (s *Store) fits(keyLen int, flags uint32, valueLen int) bool {
	if s.opts.ItemFits != nil {
		return s.opts.ItemFits(keyLen, flags, valueLen)
	}
	return valueLen <= s.opts.MaxItemSize
}

func (s *Store) version() storage.Version {
	return storage.Version{Time: s.hlc.Now(), Origin: s.opts.Origin}
}

// withKey runs fn under the vnode lock with the current record of ns/key.
// found reports a record in the engine (visible or not); live, a visible one.
// Once the lock is released, it waits for the replication of what fn wrote
// (see Options.Replicate).
func (s *Store) withKey(name string, key []byte, fn func(vn uint16, old storage.Record, found, live bool, now time.Time) error) error {
	vn := s.Vnode(key)
	wait, err := s.withKeyLocked(vn, name, key, fn)
	if wait != nil {
		if werr := wait(); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return err
}

// withKeyLocked is withKey's part under the vnode lock. It returns the
// Replicate wait of what fn wrote, for the caller to run after the unlock.
func (s *Store) withKeyLocked(vn uint16, name string, key []byte, fn func(vn uint16, old storage.Record, found, live bool, now time.Time) error) (wait func() error, err error) {
	mu := &s.locks[vn]
	mu.Lock()
	defer func() {
		// Whatever fn returned, a change it applied went to Replicate: its wait must run.
		wait = s.takeWait(vn)
		mu.Unlock()
	}()
	// Looked up under the vnode lock: DeleteNamespace takes every vnode lock
	// after unlisting the namespace, so no write can land after its drop.
	ns, err := s.namespace(name)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	old, err := s.eng.Get(vn, name, key)
	found := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	live := found && s.visible(ns, &old, now)
	return nil, fn(vn, old, found, live, now)
}

// oldPtr returns &old when found, for byte accounting.
func oldPtr(old *storage.Record, found bool) *storage.Record {
	if found {
		return old
	}
	return nil
}

// StoreRequest is one storage command.
type StoreRequest struct {
	Op        Op
	Namespace string
	Key       []byte
	Value     []byte
	Flags     uint32
	Exptime   int64 // as sent by the client
	// CAS is the expected CAS of OpCAS. For OpAppend and OpPrepend a
	// non-zero CAS must also match (memcached's ms with C), else Exists.
	CAS uint64
}

// Op is a storage command.
type Op uint8

// Storage commands.
const (
	OpSet Op = iota + 1
	OpAdd
	OpReplace
	OpAppend
	OpPrepend
	OpCAS
)

// Store runs one storage command.
func (s *Store) Store(req StoreRequest) (Result, error) {
	res, _, err := s.StoreCAS(req)
	return res, err
}

// StoreCAS runs one storage command and also returns the new CAS when the
// item was stored (0 otherwise).
func (s *Store) StoreCAS(req StoreRequest) (Result, uint64, error) {
	var res Result
	var cas uint64
	err := s.withKey(req.Namespace, req.Key, func(vn uint16, old storage.Record, found, live bool, now time.Time) error {
		switch req.Op {
		case OpAdd:
			if live {
				res = NotStored
				return nil
			}
		case OpReplace, OpAppend, OpPrepend:
			if !live {
				res = NotStored
				return nil
			}
			if req.Op != OpReplace && req.CAS != 0 && old.CAS != req.CAS {
				res = Exists
				return nil
			}
		case OpCAS:
			if !live {
				res = NotFound
				return nil
			}
			if old.CAS != req.CAS {
				res = Exists
				return nil
			}
		}
		v := s.version()
		r := storage.Record{
			Value: req.Value, Flags: req.Flags, Exptime: AbsExptime(req.Exptime, now),
			CAS: v.Time, Version: v,
		}
		switch req.Op {
		case OpAppend, OpPrepend:
			// memcached keeps the old flags and exptime on append/prepend,
			// and answers NOT_STORED when the joined item is too large.
			if !s.fits(len(req.Key), old.Flags, len(old.Value)+len(req.Value)) {
				res = NotStored
				return nil
			}
			joined := make([]byte, 0, len(old.Value)+len(req.Value))
			if req.Op == OpAppend {
				joined = append(append(joined, old.Value...), req.Value...)
			} else {
				joined = append(append(joined, req.Value...), old.Value...)
			}
			r.Value, r.Flags, r.Exptime = joined, old.Flags, old.Exptime
		}
		res, cas = Stored, r.CAS
		return s.putOrExpire(vn, req.Namespace, req.Key, &old, found, r, now)
	})
	return res, cas, err
}

// putOrExpire writes r, or, when r is already expired, removes whatever
// record is there so that nothing stays visible. Callers hold the lock.
func (s *Store) putOrExpire(vn uint16, name string, key []byte, old *storage.Record, found bool, r storage.Record, now time.Time) error {
	if expired(r.Exptime, now) {
		if found {
			return s.remove(vn, name, key, old)
		}
		return nil
	}
	return s.put(vn, name, key, oldPtr(old, found), r)
}

// Delete removes ns/key and reports whether a visible item was there.
func (s *Store) Delete(name string, key []byte) (bool, error) {
	var deleted bool
	err := s.withKey(name, key, func(vn uint16, old storage.Record, found, live bool, _ time.Time) error {
		if !found {
			return nil
		}
		deleted = live
		return s.remove(vn, name, key, &old)
	})
	return deleted, err
}

// Drop removes ns/key whatever its state; the server uses it when a set is
// refused for size, as memcached drops the stale value then.
func (s *Store) Drop(name string, key []byte) error {
	_, err := s.Delete(name, key)
	return err
}

// Touch sets a new exptime on a visible item. With get it also returns the
// item (gat).
func (s *Store) Touch(name string, key []byte, exptime int64) (Item, bool, error) {
	it, _, ok, err := s.GetAndTouch(name, key, exptime)
	return it, ok, err
}

// GetAndTouch is Touch that also returns the item's exptime from before the
// touch (meta mg with T reports either, depending on the flag order).
func (s *Store) GetAndTouch(name string, key []byte, exptime int64) (it Item, prevExptime int64, ok bool, err error) {
	err = s.withKey(name, key, func(vn uint16, old storage.Record, found, live bool, now time.Time) error {
		if !live {
			return nil
		}
		ok, prevExptime = true, old.Exptime
		r := old
		r.Exptime = AbsExptime(exptime, now)
		r.Version = s.version() // touch is a change replicas must see; CAS stays
		it = itemOf(&r)
		return s.putOrExpire(vn, name, key, &old, true, r, now)
	})
	return it, prevExptime, ok, err
}

// Arith runs incr (incr=true) or decr with memcached's rules: the value must
// be a decimal number; incr wraps at 2^64; decr stops at 0; a shorter result
// is padded with spaces to the old length, as memcached updates in place.
func (s *Store) Arith(name string, key []byte, delta uint64, incr bool) (uint64, Result, error) {
	var out uint64
	res := NotFound
	err := s.withKey(name, key, func(vn uint16, old storage.Record, found, live bool, now time.Time) error {
		if !live {
			return nil
		}
		num, cur, ok := applyDelta(old.Value, delta, incr)
		if !ok {
			return ErrNonNumeric
		}
		out, res = cur, Stored
		v := s.version()
		r := old
		r.Value, r.CAS, r.Version = num, v.Time, v
		return s.put(vn, name, key, &old, r)
	})
	return out, res, err
}

// applyDelta computes incr/decr on a stored value: the new value to store
// (padded to the old length when shorter) and the number, or false when the
// value is not a number.
func applyDelta(value []byte, delta uint64, incr bool) ([]byte, uint64, bool) {
	cur, ok := parseCounter(value)
	if !ok {
		return nil, 0, false
	}
	switch {
	case incr:
		cur += delta
	case delta > cur:
		cur = 0
	default:
		cur -= delta
	}
	num := strconv.AppendUint(nil, cur, 10)
	if len(num) < len(value) {
		pad := make([]byte, len(value))
		copy(pad, num)
		for i := len(num); i < len(pad); i++ {
			pad[i] = ' '
		}
		num = pad
	}
	return num, cur, true
}

// parseCounter reads a stored value as memcached's safe_strtoull does on the
// item data (which is followed by "\r\n" in memcached's memory).
func parseCounter(v []byte) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	i := 0
	for i < len(v) && isSpace(v[i]) {
		i++
	}
	neg := false
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		neg = v[i] == '-'
		i++
	}
	start := i
	var n uint64
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		d := uint64(v[i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		i++
	}
	if i == start || (i < len(v) && !isSpace(v[i])) {
		return 0, false
	}
	if neg {
		n = -n
		if int64(n) < 0 {
			return 0, false
		}
	}
	return n, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

package histcheck

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Kind is the command an operation sends.
type Kind uint8

// The commands of the model. The zero Kind is invalid, so a forgotten Input
// is caught by Recorder.Begin.
const (
	KindSet    Kind = iota + 1 // set key value
	KindGet                    // get (or gets) key
	KindCas                    // cas key with the cas id of Expect, value Value
	KindDelete                 // delete key
)

func (k Kind) String() string {
	switch k {
	case KindSet:
		return "set"
	case KindGet:
		return "get"
	case KindCas:
		return "cas"
	case KindDelete:
		return "delete"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Input is the request of an operation. Build it with Set, Get, Cas or
// Delete.
type Input struct {
	Kind Kind
	Key  string
	// Value is the value a set or cas writes. Every write to a key must
	// write a value never written to that key before (see the package
	// documentation).
	Value string
	// Expect is, for a cas, the value the client read with gets and whose
	// cas id it sends.
	Expect string
}

// Set is "set key value".
func Set(key, value string) Input { return Input{Kind: KindSet, Key: key, Value: value} }

// Get is "get key" (or "gets key").
func Get(key string) Input { return Input{Kind: KindGet, Key: key} }

// Cas is "cas key value" sent with the cas id that gets returned together
// with expect: it stores value if the item still holds expect.
func Cas(key, expect, value string) Input {
	return Input{Kind: KindCas, Key: key, Value: value, Expect: expect}
}

// Delete is "delete key".
func Delete(key string) Input { return Input{Kind: KindDelete, Key: key} }

// writes reports whether the input may change the key's state.
func (in Input) writes() bool { return in.Kind != KindGet }

func (in Input) String() string {
	switch in.Kind {
	case KindSet:
		return fmt.Sprintf("set(%s, %q)", in.Key, in.Value)
	case KindGet:
		return fmt.Sprintf("get(%s)", in.Key)
	case KindCas:
		return fmt.Sprintf("cas(%s, %q -> %q)", in.Key, in.Expect, in.Value)
	case KindDelete:
		return fmt.Sprintf("delete(%s)", in.Key)
	}
	return fmt.Sprintf("%v(%s)", in.Kind, in.Key)
}

// Status is the outcome of an operation.
type Status uint8

// The outcomes. The zero Status is StatusUnknown: an operation whose reply
// was never recorded claims nothing.
const (
	// StatusUnknown: no definite answer (timeout, connection error,
	// SERVER_ERROR). The operation may have taken effect at any time after
	// its call, or never.
	StatusUnknown  Status = iota
	StatusStored          // set, cas: STORED
	StatusExists          // cas: EXISTS (the item changed since the gets)
	StatusNotFound        // cas, delete: NOT_FOUND; get: a miss
	StatusDeleted         // delete: DELETED
	StatusFound           // get: a hit, Output.Value holds the value
)

func (s Status) String() string {
	switch s {
	case StatusUnknown:
		return "unknown"
	case StatusStored:
		return "STORED"
	case StatusExists:
		return "EXISTS"
	case StatusNotFound:
		return "NOT_FOUND"
	case StatusDeleted:
		return "DELETED"
	case StatusFound:
		return "found"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Output is the reply to an operation. Build it with Stored, Exists,
// NotFound, Deleted, Found or Unknown.
type Output struct {
	Status Status
	// Value is the value a get returned (StatusFound only).
	Value string
	// Err says why the outcome is unknown (StatusUnknown only); it is shown
	// in reports and ignored by the checks.
	Err string
}

// Stored is the reply STORED to a set or cas.
func Stored() Output { return Output{Status: StatusStored} }

// Exists is the reply EXISTS to a cas.
func Exists() Output { return Output{Status: StatusExists} }

// NotFound is the reply NOT_FOUND to a cas or delete, or a get that missed.
func NotFound() Output { return Output{Status: StatusNotFound} }

// Deleted is the reply DELETED to a delete.
func Deleted() Output { return Output{Status: StatusDeleted} }

// Found is a get that returned value.
func Found(value string) Output { return Output{Status: StatusFound, Value: value} }

// Unknown is an operation without a definite answer: a timeout, a connection
// error, a SERVER_ERROR, or any reply the model does not know (record
// NOT_STORED to a set this way, for example). err may be nil.
func Unknown(err error) Output {
	msg := "unknown"
	if err != nil {
		msg = err.Error()
	}
	return Output{Status: StatusUnknown, Err: msg}
}

// Unknown reports whether the operation has no definite outcome.
func (o Output) Unknown() bool { return o.Status == StatusUnknown }

func (o Output) String() string {
	switch o.Status {
	case StatusFound:
		return strconv.Quote(o.Value)
	case StatusUnknown:
		if o.Err != "" && o.Err != "unknown" {
			return "unknown (" + o.Err + ")"
		}
		return "unknown"
	}
	return o.Status.String()
}

// valid reports whether o is a possible reply to a command of kind k.
func (o Output) valid(k Kind) bool {
	switch o.Status {
	case StatusUnknown:
		return true
	case StatusStored:
		return k == KindSet || k == KindCas
	case StatusExists:
		return k == KindCas
	case StatusNotFound:
		return k == KindCas || k == KindDelete || k == KindGet
	case StatusDeleted:
		return k == KindDelete
	case StatusFound:
		return k == KindGet
	}
	return false
}

// acked reports whether the operation is a write the server acknowledged.
func (op Op) acked() bool {
	switch op.Input.Kind {
	case KindSet, KindCas:
		return op.Output.Status == StatusStored
	case KindDelete:
		return op.Output.Status == StatusDeleted
	}
	return false
}

// mayWrite reports whether the operation may have changed its key: an
// acknowledged write, or a write whose outcome is unknown.
func (op Op) mayWrite() bool {
	return op.Input.writes() && (op.acked() || op.Output.Unknown())
}

// Op is one recorded operation. Times are nanoseconds on the recorder's
// monotonic clock (since NewRecorder); hand-built histories may use any
// scale.
type Op struct {
	// Client identifies the client goroutine (a small number from 0, used
	// to draw one line per client in the visualization).
	Client int
	Input  Input
	Output Output
	// Call is when the request was about to be sent.
	Call int64
	// Return is when the reply arrived. For an unknown outcome it is when
	// the client gave up; the checks ignore it and let the operation take
	// effect at any time after Call, or never.
	Return int64
}

func (op Op) String() string {
	ret := time.Duration(op.Return).String()
	if op.Output.Unknown() {
		ret = "?"
	}
	return fmt.Sprintf("client %d [%v, %s] %v -> %v", op.Client, time.Duration(op.Call), ret, op.Input, op.Output)
}

// OpID names an operation between Recorder.Begin and Recorder.End.
type OpID int

// Recorder collects the history of concurrent clients. It is safe for
// concurrent use.
type Recorder struct {
	start time.Time // carries the monotonic clock reading

	mu   sync.Mutex
	ops  []Op   // guarded by mu; in order of Begin
	done []bool // guarded by mu; done[i] once End(i) was called
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// now is the time since the recorder started, on the monotonic clock.
func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

// Begin records that client is about to send in. Call it before the request
// goes out. It panics if in has no Kind.
func (r *Recorder) Begin(client int, in Input) OpID {
	if in.Kind < KindSet || in.Kind > KindDelete {
		panic(fmt.Sprintf("histcheck: Begin with invalid input %v", in))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, Op{Client: client, Input: in, Output: Unknown(nil), Call: r.now()})
	r.done = append(r.done, false)
	return OpID(len(r.ops) - 1)
}

// End records the reply to operation id, or Unknown(err) when there is no
// definite answer. Call it after the reply was read. It panics if id was
// already ended or out is not a possible reply to the command.
func (r *Recorder) End(id OpID, out Output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id < 0 || int(id) >= len(r.ops) {
		panic(fmt.Sprintf("histcheck: End of unknown operation %d", id))
	}
	op := &r.ops[id]
	if r.done[id] {
		panic(fmt.Sprintf("histcheck: End called twice for %v", op.Input))
	}
	if !out.valid(op.Input.Kind) {
		panic(fmt.Sprintf("histcheck: %v is not a reply to %v", out.Status, op.Input))
	}
	op.Output, op.Return = out, r.now()
	r.done[id] = true
}

// Ops returns a copy of the history in order of Begin. Operations not yet
// ended have an unknown outcome ("no reply recorded") and Return set to now.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ops := make([]Op, len(r.ops))
	copy(ops, r.ops)
	for i := range ops {
		if !r.done[i] {
			ops[i].Output = Output{Status: StatusUnknown, Err: "no reply recorded"}
			ops[i].Return = now
		}
	}
	return ops
}

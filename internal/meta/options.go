package meta

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The cluster's runtime options. They live in the metadata, so one
// set_option commit changes them on every node at once (ROMA relays each
// such command to every node instead, and a node that misses it keeps the
// old value). State.Options holds only the options an operator set; Tuning
// fills in the defaults.
const (
	// OptDCNice is ROMA's dcnice, 1 (fastest) to 5 (gentlest): a preset of
	// the data-movement rate and parallelism.
	OptDCNice = "dcnice"
	// OptMoveRate is the bytes per second each node may send for vnode
	// copies and catch-up; 0 takes dcnice's preset.
	OptMoveRate = "move_rate"
	// OptMoveParallel is how many replicas each node may copy to at once;
	// 0 takes dcnice's preset.
	OptMoveParallel = "move_parallel"
	// OptAutoBalance: the leader evens out the positions on its own (after
	// a join, a recovery, a release). Off, only `balance` does.
	OptAutoBalance = "auto_balance"
	// OptFailover: a confirmed failed node's vnodes get new primaries.
	OptFailover = "failover"
	// OptFailThreshold is how many consecutive direct probes of a node that
	// gossip reports failed must fail before the leader acts.
	OptFailThreshold = "fail_threshold"
	// OptFailGap is the time between those probes.
	OptFailGap = "fail_gap"
	// OptFailGrace is how long gossip must have reported the node failed
	// before the leader acts.
	OptFailGrace = "fail_grace"
	// OptAutoRecover: short vnodes get new replicas on the other nodes once
	// they have been short for OptAutoRecoverTime.
	OptAutoRecover     = "auto_recover"
	OptAutoRecoverTime = "auto_recover_time"
	// OptLostAction is what happens to a vnode whose every replica failed:
	// no_action (its keys are refused until a replica returns),
	// auto_assign (it starts empty on a live node) or shutdown (every node
	// stops).
	OptLostAction = "lost_action"
	// OptEventLimit bounds the routing history.
	OptEventLimit = "event_limit_line"
)

// Lost actions.
const (
	LostNoAction   = "no_action"
	LostAutoAssign = "auto_assign"
	LostShutdown   = "shutdown"
)

// Tuning is the typed view of the options, defaults filled in.
type Tuning struct {
	DCNice       int
	MoveRate     int64 // bytes/s per node; 0 = unlimited
	MoveParallel int
	// MoveRateSet and MoveParallelSet say the value was set explicitly,
	// not taken from dcnice.
	MoveRateSet, MoveParallelSet bool
	AutoBalance                  bool
	Failover                     bool
	FailThreshold                int
	FailGap                      time.Duration
	FailGrace                    time.Duration
	AutoRecover                  bool
	AutoRecoverTime              time.Duration
	LostAction                   string
	EventLimit                   int
}

// dcnicePreset gives each dcnice level's move rate (bytes/s per node, 0 =
// unlimited) and parallel copies per node. Level 3, the default, is
// measured to keep client p99 within 2x of idle while data moves on the
// 2-core machines of the benchmarks, three senders feeding one joining
// node (scripts/bench-rebalance.sh; docs/operations.md has the numbers).
var dcnicePreset = [6]struct {
	rate     int64
	parallel int
}{
	1: {0, 8},
	2: {16 << 20, 4},
	3: {2 << 20, 2},
	4: {1 << 20, 1},
	5: {256 << 10, 1},
}

type option struct {
	def   string
	parse func(string) (string, error) // returns the canonical form
	help  string
}

var options = map[string]option{
	OptDCNice:          {"3", intIn(1, 5), "1 (fastest) .. 5 (gentlest)"},
	OptMoveRate:        {"0", byteSize, "bytes per second per node, 0 = dcnice's preset (k, m, g suffixes allowed)"},
	OptMoveParallel:    {"0", intIn(0, 64), "0 = dcnice's preset, else 1..64"},
	OptAutoBalance:     {"true", boolean, "true or false"},
	OptFailover:        {"true", boolean, "on/true or off/false"},
	OptFailThreshold:   {"1", intIn(1, 100), "1..100 probes"},
	OptFailGap:         {"0.2", seconds(0.01, 60), "seconds between probes, 0.01..60"},
	OptFailGrace:       {"0", seconds(0, 3600), "seconds, 0..3600"},
	OptAutoRecover:     {"true", boolean, "true or false"},
	OptAutoRecoverTime: {"60", seconds(0, 30*86400), "seconds, 0..2592000"},
	OptLostAction:      {LostNoAction, oneOf(LostNoAction, LostAutoAssign, LostShutdown), "no_action, auto_assign or shutdown"},
	OptEventLimit:      {"1000", intIn(10, 100000), "10..100000 lines"},
}

// OptionNames lists the options, sorted.
func OptionNames() []string {
	names := make([]string, 0, len(options))
	for n := range options {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckOption validates a value for an option and returns its canonical
// form; the error names the option and what it accepts.
func CheckOption(name, value string) (string, error) {
	o, ok := options[name]
	if !ok {
		return "", fmt.Errorf("%w: %q (options: %s)", ErrUnknownOption, name, strings.Join(OptionNames(), ", "))
	}
	v, err := o.parse(value)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: want %s", ErrBadOption, name, value, o.help)
	}
	return v, nil
}

// Option returns an option's current value (its default when unset).
func (s *State) Option(name string) string {
	if v, ok := s.Options[name]; ok {
		return v
	}
	return options[name].def
}

// Tuning returns the options, typed.
func (s *State) Tuning() Tuning {
	get := s.Option
	t := Tuning{
		LostAction: get(OptLostAction),
	}
	t.DCNice, _ = strconv.Atoi(get(OptDCNice))
	t.MoveRate, _ = strconv.ParseInt(get(OptMoveRate), 10, 64)
	t.MoveParallel, _ = strconv.Atoi(get(OptMoveParallel))
	t.MoveRateSet, t.MoveParallelSet = t.MoveRate > 0, t.MoveParallel > 0
	p := dcnicePreset[t.DCNice]
	if !t.MoveRateSet {
		t.MoveRate = p.rate
	}
	if !t.MoveParallelSet {
		t.MoveParallel = p.parallel
	}
	t.AutoBalance = get(OptAutoBalance) == "true"
	t.Failover = get(OptFailover) == "true"
	t.FailThreshold, _ = strconv.Atoi(get(OptFailThreshold))
	t.FailGap = secondsOf(get(OptFailGap))
	t.FailGrace = secondsOf(get(OptFailGrace))
	t.AutoRecover = get(OptAutoRecover) == "true"
	t.AutoRecoverTime = secondsOf(get(OptAutoRecoverTime))
	t.EventLimit, _ = strconv.Atoi(get(OptEventLimit))
	return t
}

func secondsOf(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}

func intIn(lo, hi int) func(string) (string, error) {
	return func(s string) (string, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return "", ErrBadOption
		}
		return strconv.Itoa(n), nil
	}
}

func boolean(s string) (string, error) {
	switch strings.ToLower(s) {
	case "true", "on", "yes", "1":
		return "true", nil
	case "false", "off", "no", "0":
		return "false", nil
	}
	return "", ErrBadOption
}

func seconds(lo, hi float64) func(string) (string, error) {
	return func(s string) (string, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < lo || f > hi {
			return "", ErrBadOption
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
}

func oneOf(vals ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		for _, v := range vals {
			if s == v {
				return v, nil
			}
		}
		return "", ErrBadOption
	}
}

// byteSize accepts a count of bytes with an optional k, m or g suffix
// (powers of 1024).
func byteSize(s string) (string, error) {
	mult := int64(1)
	t := strings.ToLower(s)
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return "", ErrBadOption
	}
	return strconv.FormatInt(n*mult, 10), nil
}

package storage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// killChildEnv, when set, makes TestKillChild act as the child process of
// TestKillDurability; its value is the data directory.
const killChildEnv = "SONAE_STORAGE_KILL_CHILD"

const killVnodes = 4

// killValue is the value the child writes for vnode/seq.
func killValue(vnode uint16, seq uint64) string { return fmt.Sprintf("v%d-%d", vnode, seq) }

// TestKillDurability checks the default durability policy against kill -9:
// a child process applies changes to a pebble engine and prints each one
// after Apply returns; the parent SIGKILLs it mid-stream, reopens the
// directory and checks that every acknowledged change is there.
func TestKillDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	for round := range 2 { // the second round also recovers a killed WAL
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1", "-test.v=false")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		cmd.Stderr = &prefixWriter{t: t, prefix: "child: "}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[uint16]uint64{}
		start := map[uint16]uint64{}
		n := 0
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || (f[0] != "ack" && f[0] != "start") {
				continue
			}
			v, _ := strconv.ParseUint(f[1], 10, 16)
			s, _ := strconv.ParseUint(f[2], 10, 64)
			if f[0] == "start" {
				start[uint16(v)] = s
				continue
			}
			if s != acked[uint16(v)]+1 && acked[uint16(v)] != 0 {
				t.Fatalf("child acked vnode %d seq %d after %d", v, s, acked[uint16(v)])
			}
			acked[uint16(v)] = s
			n++
			if n == 3000 && !killed {
				// Keep reading: lines already written were acknowledged.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child not killed as planned: killed=%v err=%v", round, killed, err)
		}
		t.Logf("round %d: %d acknowledged changes before kill", round, n)

		p := mustOpenPebble(t, dir, DurabilityInterval)
		for v := uint16(0); v < killVnodes; v++ {
			last := p.LastSeq(v)
			if last < acked[v] {
				t.Errorf("round %d vnode %d: LastSeq %d < acknowledged %d", round, v, last, acked[v])
			}
			// Every acknowledged key of this round is there, with its log entry.
			for s := start[v]; s >= 1 && s <= acked[v]; s++ {
				r, err := p.Get(v, "default", []byte(strconv.FormatUint(s, 10)))
				if err != nil || string(r.Value) != killValue(v, s) {
					t.Fatalf("round %d vnode %d seq %d: got %q, %v", round, v, s, r.Value, err)
				}
			}
			seen := uint64(0)
			err := p.ScanLog(v, 1, func(c *Change) error {
				if c.Seq != seen+1 {
					return fmt.Errorf("log gap: %d after %d", c.Seq, seen)
				}
				seen = c.Seq
				return nil
			})
			if err != nil || seen != last {
				t.Errorf("round %d vnode %d: log scan: last %d, LastSeq %d, %v", round, v, seen, last, err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKillChild is the child of TestKillDurability. It writes until killed
// (or for 30 seconds), one goroutine per vnode.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestKillDurability")
	}
	p, err := OpenPebble(dir, testOptions(nil, DurabilityInterval))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // one line per write(2)
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for v := uint16(0); v < killVnodes; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := p.LastSeq(v) + 1
			mu.Lock()
			fmt.Fprintf(os.Stdout, "start %d %d\n", v, seq)
			mu.Unlock()
			for ; time.Now().Before(deadline); seq++ {
				k := strconv.FormatUint(seq, 10)
				c := &Change{Vnode: v, Seq: seq, Op: OpPut, Namespace: "default", Key: []byte(k),
					Record: Record{Value: []byte(killValue(v, seq)), Version: Version{Time: seq}}}
				if err := p.Apply(c); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %d\n", v, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(4) // not killed in time
}

// prefixWriter logs a child's stderr.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

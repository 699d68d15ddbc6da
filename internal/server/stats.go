package server

import (
	"fmt"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/sonae-kv/sonae/internal/protocol"
)

type stat struct{ name, value string }

// cmdStats answers memcached's "stats [group]".
func (c *conn) cmdStats(toks [][]byte) {
	group := ""
	if len(toks) > 1 {
		group = string(toks[1])
	}
	var lines []stat
	switch group {
	case "":
		lines = c.srv.generalStats()
	case "reset":
		c.srv.resetCounters()
		c.line("RESET")
		return
	case "settings":
		lines = c.srv.settingsStats()
	case "items", "slabs", "sizes", "conns":
		// sonae has no slab allocator; these groups are empty.
	default:
		c.line(protocol.ReplyError)
		return
	}
	for _, s := range lines {
		c.w.WriteString("STAT ")
		c.w.WriteString(s.name)
		c.w.WriteByte(' ')
		c.w.WriteString(s.value)
		c.w.WriteString("\r\n")
	}
	c.line(protocol.ReplyEnd)
}

func i64(v int64) string { return strconv.FormatInt(v, 10) }

func rusage() (user, sys string) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return "0.000000", "0.000000"
	}
	tv := func(t syscall.Timeval) string { return fmt.Sprintf("%d.%06d", t.Sec, t.Usec) }
	return tv(ru.Utime), tv(ru.Stime)
}

// generalStats are memcached's general-purpose statistics, in its order,
// with the ones that make no sense for sonae (slabs, LRU) left out.
func (s *Server) generalStats() []stat {
	now := s.clk.Now()
	user, sys := rusage()
	items, bytes := s.store.Usage()
	kc := s.store.Counters()
	out := []stat{
		{"pid", strconv.Itoa(s.pid)},
		{"uptime", i64(int64(now.Sub(s.started) / time.Second))},
		{"time", i64(now.Unix())},
		{"version", ProtocolLevel + "-sonae-" + Version},
		{"pointer_size", strconv.Itoa(strconv.IntSize)},
		{"rusage_user", user},
		{"rusage_system", sys},
		{"max_connections", strconv.Itoa(s.cfg.MaxConnections)},
		{"curr_connections", i64(s.currConns.Load())},
		{"total_connections", i64(s.totalConns.Load())},
		{"rejected_connections", i64(s.rejectedConn.Load())},
	}
	for _, f := range s.sumCounters().fields() {
		out = append(out, stat{f.name, i64(f.v.Load())})
		if f.name == "get_misses" {
			out = append(out, stat{"get_expired", i64(kc.GetExpired)}, stat{"get_flushed", i64(kc.GetFlushed)})
		}
	}
	out = append(out,
		stat{"limit_maxbytes", "0"},
		stat{"threads", strconv.Itoa(runtime.GOMAXPROCS(0))},
		stat{"pending_value_bytes", strconv.Itoa(s.budget.Used())},
		stat{"pending_value_waiters", strconv.Itoa(s.budget.Waiters())},
		stat{"bytes", i64(bytes)},
		stat{"curr_items", i64(items)},
		stat{"total_items", i64(kc.Writes)},
		stat{"reclaimed", i64(kc.Reclaimed)},
		stat{"evictions", "0"},
		stat{"engine", s.cfg.Engine},
	)
	return out
}

func (s *Server) settingsStats() []stat {
	return []stat{
		{"maxconns", strconv.Itoa(s.cfg.MaxConnections)},
		{"tcpport", strconv.Itoa(s.cfg.Port)},
		{"interface", s.cfg.Addr},
		{"item_size_max", strconv.Itoa(s.cfg.MaxItemSize)},
		{"idle_timeout", i64(int64(time.Duration(s.cfg.IdleTimeout) / time.Second))},
		{"max_line_length", strconv.Itoa(s.cfg.MaxLineLength)},
		{"evictions", "off"},
		{"cas_enabled", "yes"},
		{"flush_enabled", "yes"},
		{"engine", s.cfg.Engine},
		{"durability", s.cfg.Durability},
		{"sync_interval", time.Duration(s.cfg.SyncInterval).String()},
	}
}

package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/protocol"
	"github.com/sonae-kv/sonae/internal/storage"
)

// admin runs the ROMA-style admin commands. It returns false for a word it
// does not know, which the caller answers with ERROR as memcached does.
func (c *conn) admin(toks [][]byte) bool {
	args := toks[1:]
	switch string(toks[0]) {
	case "stat":
		c.cmdStat(args)
	case "whoami":
		c.line(c.srv.cfg.Name)
	case "nodelist":
		c.line(strings.Join(c.srv.nodeList(), " "))
	case "hashlist":
		c.line(strings.Join(c.srv.store.Namespaces(), " "))
	case "createhash":
		c.cmdCreateHash(args)
	case "deletehash":
		c.cmdDeleteHash(args)
	case "defhash":
		c.cmdDefHash(args)
	case "auth":
		c.cmdAuth(args)
	default:
		if !c.clusterAdmin(toks) {
			return false
		}
	}
	c.stats.adminCmds.Add(1)
	return true
}

// usage answers a wrong argument count.
func (c *conn) usage(form string) {
	c.line("CLIENT_ERROR usage: " + form)
}

// authorized checks a state-changing command: loopback clients may run it,
// others only after `auth TOKEN` with the configured token.
func (c *conn) authorized(r *protocol.Request, cmd string) bool {
	if c.trusted {
		return true
	}
	msg := "CLIENT_ERROR " + cmd + " is refused: state-changing commands need a loopback client"
	if c.srv.cfg.AuthToken != "" {
		msg += " or `auth <token>` first"
	} else {
		msg += " (no auth_token is configured)"
	}
	c.reply(r, msg)
	return false
}

func (c *conn) cmdAuth(args [][]byte) {
	if len(args) != 1 {
		c.usage("auth <token>")
		return
	}
	c.stats.authCmds.Add(1)
	tok := c.srv.cfg.AuthToken
	if tok == "" {
		c.stats.authErrors.Add(1)
		c.line("CLIENT_ERROR auth is not enabled: no auth_token is configured")
		return
	}
	if subtle.ConstantTimeCompare(args[0], []byte(tok)) != 1 {
		c.stats.authErrors.Add(1)
		c.line("CLIENT_ERROR authentication failed")
		return
	}
	c.trusted = true
	c.line(protocol.ReplyOK)
}

func (c *conn) cmdCreateHash(args [][]byte) {
	if len(args) != 1 {
		c.usage("createhash <name>")
		return
	}
	if !c.authorized(&protocol.Request{}, "createhash") {
		return
	}
	err := c.srv.changeNamespace(meta.OpCreateNamespace, string(args[0]))
	switch {
	case errors.Is(err, storage.ErrBadNamespace):
		c.line("CLIENT_ERROR " + err.Error())
	case err != nil:
		c.line("SERVER_ERROR " + err.Error())
	default:
		c.srv.log.Info("namespace created", "namespace", string(args[0]))
		c.line("CREATED")
	}
}

func (c *conn) cmdDeleteHash(args [][]byte) {
	if len(args) != 1 {
		c.usage("deletehash <name>")
		return
	}
	if !c.authorized(&protocol.Request{}, "deletehash") {
		return
	}
	name := string(args[0])
	if err := c.srv.changeNamespace(meta.OpDeleteNamespace, name); err != nil {
		c.line("SERVER_ERROR " + err.Error())
		return
	}
	c.srv.log.Info("namespace deleted", "namespace", name)
	if c.namespace == name {
		c.namespace = kv.DefaultNamespace
	}
	c.line(protocol.ReplyDeleted)
}

// cmdDefHash shows or sets the connection's default namespace.
func (c *conn) cmdDefHash(args [][]byte) {
	switch len(args) {
	case 0:
		c.line(c.namespace)
	case 1:
		name := string(args[0])
		if !c.srv.store.HasNamespace(name) {
			c.line(noNamespaceReply(name))
			return
		}
		c.namespace = name
		c.line(protocol.ReplyStored)
	default:
		c.usage("defhash [name]")
	}
}

// cmdStat answers ROMA's "stat [regexp]": "name value" lines, then END.
func (c *conn) cmdStat(args [][]byte) {
	var re *regexp.Regexp
	if len(args) > 0 {
		pattern := string(args[0])
		for _, a := range args[1:] {
			pattern += " " + string(a)
		}
		var err error
		if re, err = regexp.Compile(pattern); err != nil {
			c.line("CLIENT_ERROR bad regexp: " + err.Error())
			return
		}
	}
	for _, s := range c.srv.romaStats(c) {
		if re == nil || re.MatchString(s.name) {
			c.w.WriteString(s.name)
			c.w.WriteByte(' ')
			c.w.WriteString(s.value)
			c.w.WriteString("\r\n")
		}
	}
	c.line(protocol.ReplyEnd)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// romaStats lists ROMA's stat keys (roma.md §5) for the parts of sonae that
// exist on a single node, plus sonae's own.
func (s *Server) romaStats(c *conn) []stat {
	items, bytes := s.store.Usage()
	kc := s.store.Counters()
	sum := s.sumCounters()
	cfg := s.cfg
	out := []stat{
		{"version", Version},
		{"stats.config_path", cfg.ConfigPath()},
		{"stats.address", cfg.Addr},
		{"stats.port", fmt.Sprint(cfg.Port)},
		{"stats.name", cfg.Name},
		{"stats.node_id", cfg.NodeID()},
		{"stats.uptime", i64(int64(s.clk.Now().Sub(s.started) / time.Second))},
		{"stats.run_join", fmt.Sprint(s.receiving() != nil)},
		{"stats.run_recover", fmt.Sprint(s.running(meta.OpKindRecover))},
		{"stats.run_release", fmt.Sprint(s.running(meta.OpKindRelease))},
		{"stats.run_balance", fmt.Sprint(s.running(meta.OpKindBalance))},
		{"stats.run_receive_a_vnode", jsonString(orEmpty(s.receiving()))},
		{"stats.write_count", i64(kc.Writes)},
		{"stats.read_count", i64(sum.cmdGet.Load())},
		{"stats.delete_count", i64(kc.Deletes)},
		{"stats.reclaimed_count", i64(kc.Reclaimed)},
		{"stats.flush_count", i64(kc.Flushes)},
		{"stats.log_level", cfg.LogLevel},
		{"stats.durability", cfg.Durability},
		{"stats.sync_interval", time.Duration(cfg.SyncInterval).String()},
		{"stats.curr_items", i64(items)},
		{"stats.bytes", i64(bytes)},
	}
	out = append(out, s.moveStats()...)
	eng := s.store.Engine()
	for _, ns := range s.store.Namespaces() {
		p := "storages[" + ns + "]."
		out = append(out,
			stat{p + "storage.storage_path", cfg.StoragePath()},
			stat{p + "storage.st_class", cfg.Engine},
			stat{p + "storage.divnum", fmt.Sprint(s.store.VnodeCount())},
		)
	}
	for _, es := range eng.Stats() {
		out = append(out, stat{"storage." + es.Name, es.Value})
	}
	out = append(out, s.routingStats()...)
	out = append(out,
		stat{"connection.count", i64(s.currConns.Load())},
		stat{"connection.max", fmt.Sprint(cfg.MaxConnections)},
		stat{"connection.total", i64(s.totalConns.Load())},
		stat{"connection.rejected", i64(s.rejectedConn.Load())},
		stat{"connection.idle_timeout", time.Duration(cfg.IdleTimeout).String()},
		stat{"connection.max_line_length", fmt.Sprint(cfg.MaxLineLength)},
		stat{"connection.defhash", c.namespace},
	)
	return out
}

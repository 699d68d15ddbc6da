package server

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/protocol"
)

// dispatch runs one command. Word counts and error replies follow memcached
// 1.6's process_command_ascii; ntokens there counts a terminal token, so it
// is len(words)+1 here (protocol.NTokens).
func (c *conn) dispatch(req *protocol.Request) {
	toks := req.Tokens
	if c.confirm != nil && req.Op == protocol.StorageNone {
		f := c.confirm
		c.confirm = nil
		f(string(bytes.Join(toks, []byte(" "))))
		return
	}
	if req.Op != protocol.StorageNone {
		c.cmdStore(req)
		return
	}
	nt := protocol.NTokens(toks)
	name := toks[0]
	if len(name) < 2 {
		c.line(protocol.ReplyError)
		return
	}
	switch string(name) {
	case "get", "bget":
		c.cmdGet(toks, false, false)
	case "gets":
		c.cmdGet(toks, true, false)
	case "gat":
		c.cmdGet(toks, false, true)
	case "gats":
		c.cmdGet(toks, true, true)
	case "delete":
		c.cmdDelete(toks, nt)
	case "incr", "decr":
		if nt != 4 && nt != 5 {
			c.line(protocol.ReplyError)
			return
		}
		c.cmdArith(toks, name[0] == 'i')
	case "touch":
		if nt != 4 && nt != 5 {
			c.line(protocol.ReplyError)
			return
		}
		c.cmdTouch(toks)
	case "mg", "ms", "md", "ma", "mn", "me":
		c.cmdMeta(req)
	case "flush_all":
		c.cmdFlushAll(toks, nt)
	case "version":
		c.line("VERSION " + ProtocolLevel + "-sonae-" + Version)
	case "verbosity":
		c.cmdVerbosity(toks, nt)
	case "quit":
		c.quit = true
	case "stats":
		c.cmdStats(toks)
	case "shutdown":
		// sonaed stops on SIGTERM or with shutdown_self, never from a
		// memcached client; answer as memcached without -A does.
		c.line("ERROR: shutdown not enabled")
	default:
		if !c.admin(toks) {
			c.stats.protocolErrors.Add(1)
			c.line(protocol.ReplyError)
		}
	}
}

// splitKey validates a key token and resolves its namespace. It returns the
// error line to send when the key is unusable.
func (c *conn) splitKey(tok []byte) (ns string, key []byte, errReply string) {
	if !protocol.ValidKeyToken(tok) {
		return "", nil, protocol.ReplyBadFormat
	}
	key, ns = tok, c.namespace
	if i := bytes.IndexByte(tok, protocol.KeyEscape); i >= 0 {
		key, ns = tok[:i], string(tok[i+1:])
	}
	if ns != c.namespace && !c.srv.store.HasNamespace(ns) {
		return "", nil, noNamespaceReply(ns)
	}
	return ns, key, ""
}

func noNamespaceReply(ns string) string {
	return fmt.Sprintf("SERVER_ERROR namespace %q does not exist (createhash creates it)", ns)
}

// serverError turns a store error into a reply line. A namespace error can
// reach here when the connection's defhash namespace was deleted under it.
func serverError(err error) string {
	return "SERVER_ERROR " + err.Error()
}

var storageKinds = [...]kv.Op{
	protocol.StorageSet: kv.OpSet, protocol.StorageAdd: kv.OpAdd, protocol.StorageReplace: kv.OpReplace,
	protocol.StorageAppend: kv.OpAppend, protocol.StoragePrepend: kv.OpPrepend, protocol.StorageCAS: kv.OpCAS,
}

// storageRefused applies the side effects memcached has when it refuses a
// storage command for size: counters, and a set drops the stale value.
func (c *conn) storageRefused(req *protocol.Request) {
	switch req.Reply {
	case protocol.ReplyTooLarge:
		c.stats.storeTooLarge.Add(1)
	case protocol.ReplyOutOfMemory:
		c.stats.storeNoMemory.Add(1)
	default:
		return
	}
	if req.Op == protocol.StorageSet {
		if ns, key, bad := c.splitKey(req.Key); bad == "" {
			if err := c.data.Drop(ns, key); err != nil {
				c.srv.log.Warn("dropping value refused for size", "error", err)
			}
		}
	}
}

func (c *conn) cmdStore(req *protocol.Request) {
	c.stats.cmdSet.Add(1)
	ns, key, bad := c.splitKey(req.Key)
	if bad != "" {
		c.reply(req, bad)
		return
	}
	res, err := c.data.Store(kv.StoreRequest{
		Op: storageKinds[req.Op], Namespace: ns, Key: key, Value: req.Data,
		Flags: req.Flags, Exptime: req.Exptime, CAS: req.CAS,
	})
	if err != nil {
		c.reply(req, serverError(err))
		return
	}
	if req.Op == protocol.StorageCAS {
		switch res {
		case kv.Stored:
			c.stats.casHits.Add(1)
		case kv.Exists:
			c.stats.casBadval.Add(1)
		case kv.NotFound:
			c.stats.casMisses.Add(1)
		}
	}
	switch res {
	case kv.Stored:
		c.reply(req, protocol.ReplyStored)
	case kv.NotStored:
		c.reply(req, protocol.ReplyNotStored)
	case kv.Exists:
		c.reply(req, protocol.ReplyExists)
	case kv.NotFound:
		c.reply(req, protocol.ReplyNotFound)
	}
}

// cmdGet serves get, gets, gat and gats. Every key is checked before any is
// read, so a bad key yields only the error, as in memcached.
func (c *conn) cmdGet(toks [][]byte, withCAS, touch bool) {
	if protocol.NTokens(toks) < 3 {
		c.line(protocol.ReplyError)
		return
	}
	keys := toks[1:]
	var exptime int64
	if touch {
		e, ok := protocol.ParseInt32(toks[1])
		if !ok {
			c.line(protocol.ReplyInvalidExptime)
			return
		}
		exptime = int64(e)
		keys = toks[2:]
	}
	for _, k := range keys {
		if _, _, bad := c.splitKey(k); bad != "" {
			c.line(bad)
			return
		}
	}
	var prefetched multiGetResult
	if mg, isMulti := c.data.(multiGetter); isMulti && !touch && len(keys) > 1 {
		prefetched = c.prefetch(mg, keys)
	}
	for i, k := range keys {
		ns, key, _ := c.splitKey(k)
		var it kv.Item
		var ok bool
		var err error
		if prefetched.items != nil {
			c.stats.cmdGet.Add(1)
			it, ok, err = prefetched.items[i], prefetched.found[i], prefetched.errs[i]
		} else if touch {
			c.stats.cmdTouch.Add(1)
			it, ok, err = c.data.Touch(ns, key, exptime)
		} else {
			c.stats.cmdGet.Add(1)
			it, ok, err = c.data.Get(ns, key)
		}
		if err != nil {
			c.line(serverError(err))
			return
		}
		switch {
		case !ok && touch:
			c.stats.touchMisses.Add(1)
		case !ok:
			c.stats.getMisses.Add(1)
		case touch:
			c.stats.touchHits.Add(1)
		default:
			c.stats.getHits.Add(1)
		}
		if ok {
			c.writeValue(key, &it, withCAS)
		}
	}
	c.line(protocol.ReplyEnd)
}

// writeValue writes "VALUE key flags bytes [cas]\r\ndata\r\n". The echoed key
// has no namespace suffix, as ROMA does.
func (c *conn) writeValue(key []byte, it *kv.Item, withCAS bool) {
	b := append(c.scratch[:0], "VALUE "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(it.Flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(it.Value)), 10)
	if withCAS {
		b = append(b, ' ')
		b = strconv.AppendUint(b, it.CAS, 10)
	}
	b = append(b, '\r', '\n')
	c.w.Write(b)
	c.w.Write(it.Value)
	c.w.WriteString("\r\n")
	c.scratch = b[:0]
}

// cmdDelete follows memcached: "delete key [0] [noreply]"; any other time
// argument is refused with the usage line.
func (c *conn) cmdDelete(toks [][]byte, nt int) {
	if nt < 3 || nt > 5 {
		c.line(protocol.ReplyError)
		return
	}
	noreply := false
	if nt > 3 {
		holdZero := string(toks[2]) == "0"
		noreply = protocol.HasNoreply(toks)
		valid := (nt == 4 && (holdZero || noreply)) || (nt == 5 && holdZero && noreply)
		if !valid {
			if !noreply {
				c.line(protocol.ReplyBadDeleteTimeArg)
			}
			return
		}
	}
	r := &protocol.Request{Noreply: noreply}
	ns, key, bad := c.splitKey(toks[1])
	if bad != "" {
		c.reply(r, bad)
		return
	}
	ok, err := c.data.Delete(ns, key)
	switch {
	case err != nil:
		c.reply(r, serverError(err))
	case ok:
		c.stats.deleteHits.Add(1)
		c.reply(r, protocol.ReplyDeleted)
	default:
		c.stats.deleteMisses.Add(1)
		c.reply(r, protocol.ReplyNotFound)
	}
}

func (c *conn) cmdArith(toks [][]byte, incr bool) {
	r := &protocol.Request{Noreply: protocol.HasNoreply(toks)}
	ns, key, bad := c.splitKey(toks[1])
	if bad != "" {
		c.reply(r, bad)
		return
	}
	delta, ok := protocol.ParseUint64(toks[2])
	if !ok {
		c.reply(r, protocol.ReplyInvalidDelta)
		return
	}
	v, res, err := c.data.Arith(ns, key, delta, incr)
	switch {
	case errors.Is(err, kv.ErrNonNumeric):
		c.reply(r, protocol.ReplyNonNumeric)
	case err != nil:
		c.reply(r, serverError(err))
	case res == kv.NotFound:
		if incr {
			c.stats.incrMisses.Add(1)
		} else {
			c.stats.decrMisses.Add(1)
		}
		c.reply(r, protocol.ReplyNotFound)
	default:
		if incr {
			c.stats.incrHits.Add(1)
		} else {
			c.stats.decrHits.Add(1)
		}
		c.reply(r, strconv.FormatUint(v, 10))
	}
}

func (c *conn) cmdTouch(toks [][]byte) {
	r := &protocol.Request{Noreply: protocol.HasNoreply(toks)}
	ns, key, bad := c.splitKey(toks[1])
	if bad != "" {
		c.reply(r, bad)
		return
	}
	e, ok := protocol.ParseInt32(toks[2])
	if !ok {
		c.reply(r, protocol.ReplyInvalidExptime)
		return
	}
	c.stats.cmdTouch.Add(1)
	_, found, err := c.data.Touch(ns, key, int64(e))
	switch {
	case err != nil:
		c.reply(r, serverError(err))
	case found:
		c.stats.touchHits.Add(1)
		c.reply(r, protocol.ReplyTouched)
	default:
		c.stats.touchMisses.Add(1)
		c.reply(r, protocol.ReplyNotFound)
	}
}

// cmdFlushAll: "flush_all [delay] [noreply]", for the connection's namespace.
func (c *conn) cmdFlushAll(toks [][]byte, nt int) {
	if nt < 2 || nt > 4 {
		c.line(protocol.ReplyError)
		return
	}
	r := &protocol.Request{Noreply: protocol.HasNoreply(toks)}
	c.stats.cmdFlush.Add(1)
	var delay int64
	want := 2
	if r.Noreply {
		want = 3
	}
	if nt != want {
		d, ok := protocol.ParseInt32(toks[1])
		if !ok {
			c.reply(r, protocol.ReplyInvalidExptime)
			return
		}
		delay = int64(d)
	}
	if !c.authorized(r, "flush_all") {
		return
	}
	if err := c.srv.flushCluster(c.namespace, delay); err != nil {
		c.reply(r, serverError(err))
		return
	}
	c.reply(r, protocol.ReplyOK)
}

func (c *conn) cmdVerbosity(toks [][]byte, nt int) {
	if nt != 3 && nt != 4 {
		c.line(protocol.ReplyError)
		return
	}
	r := &protocol.Request{Noreply: protocol.HasNoreply(toks)}
	if _, ok := protocol.ParseUint32(toks[1]); !ok {
		c.reply(r, protocol.ReplyBadFormat)
		return
	}
	c.reply(r, protocol.ReplyOK)
}

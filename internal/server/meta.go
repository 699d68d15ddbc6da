package server

import (
	"errors"
	"strconv"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/protocol"
)

// The meta commands of memcached 1.6 (mg, ms, md, ma, mn, me). The parser has
// already checked the line and the flags (protocol.Meta); here they are run
// and answered as memcached 1.6.18 does: a status code (HD, VA, EN, NF, NS,
// EX), then the flags that return something, in the order the client gave
// them. q suppresses the nominal answer of each command (EN for mg, HD for
// ms and md, HD/VA of an existing item for ma); errors are always sent.
//
// Differences from memcached, by design: mg refuses h, l, N and R, and ms and
// md refuse I (sonae keeps no fetched bit, access time, win tokens or stale
// items); k echoes a key in base64 only when this request used b (memcached
// remembers it per item); me reports la=0 and fetch=no.

// cmdMeta runs one meta command.
func (c *conn) cmdMeta(req *protocol.Request) {
	switch req.Tokens[0][1] {
	case 'g':
		c.metaGet(req)
	case 's':
		c.metaSet(req)
	case 'd':
		c.metaDelete(req)
	case 'a':
		c.metaArith(req)
	case 'n':
		c.line("MN")
	case 'e':
		c.metaDebug(req.Tokens)
	}
}

// metaKey resolves a meta request's key. A base64 key (b) is used as it
// decodes, in the connection's namespace; a text key may name its namespace.
func (c *conn) metaKey(req *protocol.Request) (ns string, key []byte, errReply string) {
	if req.Meta.Binary {
		return c.namespace, req.Key, ""
	}
	return c.splitKey(req.Key)
}

// longOpaque returns the index of the first O flag memcached finds too long
// to echo, or len(flags). memcached reports it when it reaches it while
// writing the reply, after the item was read (mg), updated (ma) or not yet
// looked up (md); flags after it are not acted on.
func longOpaque(flags [][]byte) int {
	for i, f := range flags {
		if f[0] == 'O' && len(f) > protocol.MetaMaxOpaque {
			return i
		}
	}
	return len(flags)
}

// appendKeyFlag appends " k<key>", or " k<base64> b" for a binary key.
func appendKeyFlag(b []byte, key []byte, binary bool) []byte {
	b = append(b, " k"...)
	if binary {
		b = protocol.AppendBase64Key(b, key)
		return append(b, " b"...)
	}
	return append(b, key...)
}

// appendEcho appends the flags echoed on every answer: O and k.
func appendEcho(b []byte, flags [][]byte, key []byte, binary bool) []byte {
	for _, f := range flags {
		switch f[0] {
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKeyFlag(b, key, binary)
		}
	}
	return b
}

// appendTTL appends the remaining time to live as memcached's t flag shows
// it: -1 for none, else the seconds left as a 32-bit unsigned number.
func appendTTL(b []byte, exptime, now int64) []byte {
	if exptime == 0 {
		return append(b, "-1"...)
	}
	return strconv.AppendUint(b, uint64(uint32(exptime-now)), 10)
}

// sendLine writes b and CRLF, and keeps b's buffer for reuse.
func (c *conn) sendLine(b []byte) {
	b = append(b, '\r', '\n')
	c.w.Write(b)
	c.scratch = b[:0]
}

// metaGet is mg.
func (c *conn) metaGet(req *protocol.Request) {
	m := &req.Meta
	flags := req.FlagTokens()
	ns, key, bad := c.metaKey(req)
	if bad != "" {
		c.line(bad)
		return
	}
	badO := longOpaque(flags)
	touch := false
	for _, f := range flags[:badO] {
		touch = touch || f[0] == 'T'
	}
	var it kv.Item
	var prev int64
	var ok bool
	var err error
	if touch {
		c.stats.cmdTouch.Add(1)
		it, prev, ok, err = c.data.GetAndTouch(ns, key, int64(m.TTL))
	} else {
		c.stats.cmdGet.Add(1)
		it, ok, err = c.data.Get(ns, key)
		prev = it.Exptime
	}
	if err != nil {
		c.line(serverError(err))
		return
	}
	switch {
	case touch && ok:
		c.stats.touchHits.Add(1)
	case touch:
		c.stats.touchMisses.Add(1)
	case ok:
		c.stats.getHits.Add(1)
	default:
		c.stats.getMisses.Add(1)
	}
	if badO < len(flags) {
		c.line(protocol.ReplyMetaOpaqueTooLong)
		return
	}
	b := c.scratch[:0]
	if !ok {
		if m.Quiet {
			return
		}
		c.sendLine(appendEcho(append(b, "EN"...), flags, key, m.Binary))
		return
	}
	if m.Value {
		b = strconv.AppendInt(append(b, "VA "...), int64(len(it.Value)), 10)
	} else {
		b = append(b, "HD"...)
	}
	now := c.srv.clk.Now().Unix()
	exptime := prev
	for _, f := range flags {
		switch f[0] {
		case 'T':
			exptime = it.Exptime
		case 's':
			b = strconv.AppendInt(append(b, " s"...), int64(len(it.Value)), 10)
		case 't':
			b = appendTTL(append(b, " t"...), exptime, now)
		case 'c':
			b = strconv.AppendUint(append(b, " c"...), it.CAS, 10)
		case 'f':
			b = strconv.AppendUint(append(b, " f"...), uint64(it.Flags), 10)
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKeyFlag(b, key, m.Binary)
		}
	}
	c.sendLine(b)
	if m.Value {
		c.w.Write(it.Value)
		c.w.WriteString("\r\n")
	}
}

// metaSetOps maps the ms mode letter to a storage command.
var metaSetOps = map[byte]kv.Op{0: kv.OpSet, 'S': kv.OpSet, 'E': kv.OpAdd, 'A': kv.OpAppend, 'P': kv.OpPrepend, 'R': kv.OpReplace}

// metaSet is ms. With C, set and replace become cas, append and prepend
// check the CAS, add ignores it, as in memcached.
func (c *conn) metaSet(req *protocol.Request) {
	m := &req.Meta
	c.stats.cmdSet.Add(1)
	ns, key, bad := c.metaKey(req)
	if req.Reply != "" {
		// The block was refused for its size (or memory) and swallowed;
		// memcached drops the old value whatever the mode.
		if req.Reply == protocol.ReplyTooLarge {
			c.stats.storeTooLarge.Add(1)
		} else {
			c.stats.storeNoMemory.Add(1)
		}
		if bad == "" {
			if err := c.data.Drop(ns, key); err != nil {
				c.srv.log.Warn("dropping value refused for size", "error", err)
			}
		}
		c.line(req.Reply)
		return
	}
	if bad != "" {
		c.line(bad)
		return
	}
	op := metaSetOps[m.Mode]
	var cas uint64
	if m.HasCAS {
		switch op {
		case kv.OpSet, kv.OpReplace:
			op, cas = kv.OpCAS, m.CAS
		case kv.OpAppend, kv.OpPrepend:
			cas = m.CAS
		}
	}
	res, newCAS, err := c.data.StoreCAS(kv.StoreRequest{
		Op: op, Namespace: ns, Key: key, Value: req.Data,
		Flags: m.ClientFlags, Exptime: int64(m.TTL), CAS: cas,
	})
	if err != nil {
		c.line(serverError(err))
		return
	}
	if op == kv.OpCAS {
		switch res {
		case kv.Stored:
			c.stats.casHits.Add(1)
		case kv.Exists:
			c.stats.casBadval.Add(1)
		case kv.NotFound:
			c.stats.casMisses.Add(1)
		}
	}
	if res == kv.Stored && m.Quiet {
		return
	}
	b := append(c.scratch[:0], metaCodes[res]...)
	for _, f := range req.FlagTokens() {
		switch f[0] {
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKeyFlag(b, key, m.Binary)
		case 'c':
			b = strconv.AppendUint(append(b, " c"...), newCAS, 10)
		}
	}
	c.sendLine(b)
}

// metaCodes are the status codes of ms and md.
var metaCodes = map[kv.Result]string{
	kv.Stored: "HD", kv.Deleted: "HD", kv.NotStored: "NS", kv.Exists: "EX", kv.NotFound: "NF",
}

// metaDelete is md. With C the item is only deleted if its CAS matches.
func (c *conn) metaDelete(req *protocol.Request) {
	m := &req.Meta
	flags := req.FlagTokens()
	ns, key, bad := c.metaKey(req)
	if bad != "" {
		c.line(bad)
		return
	}
	if longOpaque(flags) < len(flags) {
		c.line(protocol.ReplyMetaOpaqueTooLong)
		return
	}
	var res kv.Result
	var err error
	if m.HasCAS {
		res, err = c.data.DeleteCAS(ns, key, m.CAS)
	} else {
		var ok bool
		ok, err = c.data.Delete(ns, key)
		res = kv.NotFound
		if ok {
			res = kv.Deleted
		}
	}
	if err != nil {
		c.line(serverError(err))
		return
	}
	if res == kv.Deleted {
		c.stats.deleteHits.Add(1)
		if m.Quiet {
			return
		}
	} else {
		c.stats.deleteMisses.Add(1)
	}
	c.sendLine(appendEcho(append(c.scratch[:0], metaCodes[res]...), flags, key, m.Binary))
}

// metaArith is ma: incr (default, mode I or +) or decr (D or -) by D (1),
// creating a missing item holding J (0) with N. T and N set the exptime in
// the order given, and t reports it as of where it stands.
func (c *conn) metaArith(req *protocol.Request) {
	m := &req.Meta
	flags := req.FlagTokens()
	ns, key, bad := c.metaKey(req)
	if bad != "" {
		c.line(bad)
		return
	}
	incr := m.Mode != 'D' && m.Mode != '-'
	badO := longOpaque(flags)
	areq := kv.ArithRequest{Delta: m.Delta, Incr: incr, Vivify: m.Vivify, Initial: m.Initial}
	if m.HasCAS {
		areq.CAS = m.CAS
	}
	for _, f := range flags[:badO] {
		switch f[0] {
		case 'T':
			areq.Touch, areq.Exptime, areq.NewExptime = true, int64(m.TTL), int64(m.TTL)
		case 'N':
			areq.NewExptime = int64(m.VivifyTTL)
		}
	}
	r, res, err := c.data.MetaArith(ns, key, areq)
	switch {
	case errors.Is(err, kv.ErrNonNumeric):
		c.line(protocol.ReplyNonNumeric)
		return
	case err != nil:
		c.line(serverError(err))
		return
	}
	c.countArith(incr, res)
	if badO < len(flags) {
		c.line(protocol.ReplyMetaOpaqueTooLong)
		return
	}
	b := c.scratch[:0]
	switch res {
	case kv.NotFound, kv.Exists:
		c.sendLine(appendEcho(append(b, metaCodes[res]...), flags, key, m.Binary))
		return
	}
	if m.Quiet && !r.Created {
		return
	}
	digits := strconv.AppendUint(nil, r.Value, 10)
	if m.Value {
		b = strconv.AppendInt(append(b, "VA "...), int64(len(digits)), 10)
	} else {
		b = append(b, "HD"...)
	}
	now := c.srv.clk.Now()
	exptime := r.PrevExptime
	for _, f := range flags {
		switch f[0] {
		case 'c':
			b = strconv.AppendUint(append(b, " c"...), r.Item.CAS, 10)
		case 't':
			b = appendTTL(append(b, " t"...), exptime, now.Unix())
		case 'T':
			exptime = kv.AbsExptime(int64(m.TTL), now)
		case 'N':
			if r.Created {
				exptime = kv.AbsExptime(int64(m.VivifyTTL), now)
			}
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKeyFlag(b, key, m.Binary)
		}
	}
	c.sendLine(b)
	if m.Value {
		c.w.Write(digits)
		c.w.WriteString("\r\n")
	}
}

// countArith updates the incr/decr hit and miss counters.
func (c *conn) countArith(incr bool, res kv.Result) {
	switch {
	case res == kv.NotFound && incr:
		c.stats.incrMisses.Add(1)
	case res == kv.NotFound:
		c.stats.decrMisses.Add(1)
	case res != kv.Stored:
	case incr:
		c.stats.incrHits.Add(1)
	default:
		c.stats.decrHits.Add(1)
	}
}

// metaDebug is me: "ME <key> exp= la= cas= fetch= cls= size=" for an item,
// EN for a miss. sonae tracks no access time or fetched bit: la is 0 and
// fetch is no. cls and size are what memcached's slab allocator would say.
func (c *conn) metaDebug(toks [][]byte) {
	nt := protocol.NTokens(toks)
	if nt < 3 || len(toks[1]) > protocol.MaxKeyLength {
		c.line(protocol.ReplyBadFormat)
		return
	}
	binary := nt >= 4 && string(toks[2]) == "b"
	ns, key := c.namespace, toks[1]
	if binary {
		dec, ok := protocol.DecodeBase64Key(nil, toks[1])
		if !ok {
			c.line(protocol.ReplyBadFormat)
			return
		}
		key = dec
	} else {
		var bad string
		if ns, key, bad = c.splitKey(toks[1]); bad != "" {
			c.line(bad)
			return
		}
	}
	it, ok, err := c.data.Get(ns, key)
	switch {
	case err != nil:
		c.line(serverError(err))
		return
	case !ok:
		c.line("EN")
		return
	}
	exp := int64(-1)
	if it.Exptime != 0 {
		exp = c.srv.clk.Now().Unix() - it.Exptime
	}
	size := protocol.ItemOverhead + len(key) + 1 + len(it.Value) + 2
	if it.Flags != 0 {
		size += 4
	}
	b := append(c.scratch[:0], "ME "...)
	if binary {
		b = protocol.AppendBase64Key(b, key)
	} else {
		b = append(b, key...)
	}
	b = strconv.AppendInt(append(b, " exp="...), exp, 10)
	b = strconv.AppendUint(append(b, " la=0 cas="...), it.CAS, 10)
	b = strconv.AppendInt(append(b, " fetch=no cls="...), int64(slabClass(size)), 10)
	b = strconv.AppendInt(append(b, " size="...), int64(size), 10)
	c.sendLine(b)
}

// slabSizes are the chunk sizes of memcached 1.6's default slab classes
// (48-byte item header + -n 48, growth factor -f 1.25, 8-byte alignment, 1 MB
// pages so chunks up to 512 KB), indexed from class 1.
var slabSizes = func() []int {
	const chunkMax = 512 << 10
	sizes := []int{0}
	size := 96
	for len(sizes) < 63 && float64(size) < chunkMax/1.25 {
		if size%8 != 0 {
			size += 8 - size%8
		}
		sizes = append(sizes, size)
		size = int(float64(size) * 1.25)
	}
	return append(sizes, chunkMax)
}()

// slabClass is memcached's slabs_clsid: the smallest class whose chunks hold
// size bytes, or the largest class.
func slabClass(size int) int {
	for cls := 1; cls < len(slabSizes); cls++ {
		if size <= slabSizes[cls] {
			return cls
		}
	}
	return len(slabSizes) - 1
}

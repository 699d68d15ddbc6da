package protocol

import "bytes"

// NTokens is memcached's token count for a line: the words plus the terminal
// token, saturating at MAX_TOKENS (24) as memcached's tokenizer stops there.
func NTokens(toks [][]byte) int {
	return min(len(toks), 23) + 1
}

// HasNoreply reports memcached's set_noreply_maybe: the last word is
// "noreply", whatever position that is.
func HasNoreply(toks [][]byte) bool {
	return len(toks) > 0 && string(toks[len(toks)-1]) == "noreply"
}

// parseStorage reads a storage command line as memcached's
// process_update_command does, and either switches to reading the data block
// (returning nil) or returns an error request.
func (p *Parser) parseStorage(op StorageOp, toks [][]byte) *Request {
	nt := NTokens(toks)
	want := 6
	if op == StorageCAS {
		want = 7
	}
	if nt != want && nt != want+1 {
		// Wrong word count: ERROR, and the data block is not consumed.
		return p.errorRequest(KindError, ReplyError)
	}
	noreply := HasNoreply(toks)
	bad := func(reply string) *Request {
		r := p.errorRequest(KindError, reply)
		r.Noreply = noreply
		return r
	}
	key := toks[1]
	if !ValidKeyToken(key) {
		return bad(ReplyBadFormat)
	}
	flags, ok1 := ParseUint32(toks[2])
	exptime, ok2 := ParseInt32(toks[3])
	vlen, ok3 := ParseInt32(toks[4])
	if !ok1 || !ok2 || !ok3 {
		return bad(ReplyBadFormat)
	}
	var cas uint64
	if op == StorageCAS {
		var ok bool
		if cas, ok = ParseUint64(toks[5]); !ok {
			return bad(ReplyBadFormat)
		}
	}
	if vlen < 0 || vlen > (1<<31-1)-2 {
		return bad(ReplyBadFormat)
	}
	p.req = Request{
		Kind: KindCommand, Tokens: toks, Op: op, Key: key, Flags: flags,
		Exptime: int64(exptime), CAS: cas, Noreply: noreply,
	}
	if refusal := p.startBlock(len(key), flags, int(vlen)); refusal != "" {
		// memcached answers at once and swallows the block; set also
		// drops the old value, which the server does on seeing Op.
		p.req.Kind = KindError
		p.req.Reply = refusal
		return &p.req
	}
	return nil
}

// startBlock gets ready to read a data block of vlen bytes and its CRLF for
// the request in p.req. It returns "" when the block is to be read, or the
// reply refusing it (too large, or no memory budget); a refused block is
// swallowed.
func (p *Parser) startBlock(keyLen int, flags uint32, vlen int) string {
	total := vlen + 2
	refusal := ""
	if !ItemFits(keyLen, flags, vlen, p.maxItem) {
		refusal = ReplyTooLarge
	} else if p.budget != nil {
		if !p.budget.Acquire(total) {
			refusal = ReplyOutOfMemory
		} else {
			p.reserved = total
		}
	}
	p.remaining = total
	if refusal != "" {
		p.state = stateSwallow
		return refusal
	}
	p.state = stateData
	p.req.Data = nil
	if cap(p.data) < total && total <= 64<<10 {
		p.data = make([]byte, 0, max(total, 4096))
	}
	return ""
}

// ItemOverhead is the per-item header memcached 1.6 counts against its item
// size limit (-I), beside the key, a NUL after it and the value's CRLF.
const ItemOverhead = 56

// ItemFits reports whether an item passes memcached's size check for a limit
// of maxItem bytes: header + key + 1 + value + 2, and 4 more bytes when the
// flags are not zero. Sonae uses the same accounting so that the same values
// are refused with the same reply.
func ItemFits(keyLen int, flags uint32, valueLen int, maxItem int) bool {
	size := ItemOverhead + keyLen + 1 + valueLen + 2
	if flags != 0 {
		size += 4
	}
	return size <= maxItem
}

// KeyEscape separates a key from its namespace, as in ROMA: "key\x1bNAME".
const KeyEscape = 0x1b

// ValidKeyToken reports whether a key token is acceptable: at most 250
// bytes, and, before an optional ESC+namespace suffix, a non-empty key with no
// spaces or control characters. memcached accepts control characters; sonae
// refuses them with the same reply it gives a key that is too long, and, like
// that case, a storage command's data block is then not consumed.
func ValidKeyToken(tok []byte) bool {
	if len(tok) > MaxKeyLength {
		return false
	}
	key := tok
	if i := bytes.IndexByte(tok, KeyEscape); i >= 0 {
		key = tok[:i]
		if !validNamespaceSyntax(tok[i+1:]) {
			return false
		}
	}
	if len(key) == 0 {
		return false
	}
	for _, b := range key {
		if b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

// validNamespaceSyntax mirrors storage.ValidNamespace (1..64 bytes of
// [A-Za-z0-9_.-]) without importing storage.
func validNamespaceSyntax(ns []byte) bool {
	if len(ns) == 0 || len(ns) > 64 {
		return false
	}
	for _, b := range ns {
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-'
		if !ok {
			return false
		}
	}
	return true
}

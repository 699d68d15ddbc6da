package protocol

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
	if len(key) > MaxKeyLength {
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
	total := int(vlen) + 2
	if int(vlen) > p.maxValue {
		// memcached answers at once and swallows the block; set also
		// drops the old value, which the server does on seeing Op.
		p.state = stateSwallow
		p.remaining = total
		p.req.Kind = KindError
		p.req.Reply = ReplyTooLarge
		return &p.req
	}
	if p.budget != nil {
		if !p.budget.Acquire(total) {
			p.state = stateSwallow
			p.remaining = total
			p.req.Kind = KindError
			p.req.Reply = ReplyOutOfMemory
			return &p.req
		}
		p.reserved = total
	}
	p.state = stateData
	p.remaining = total
	p.req.Data = nil
	if cap(p.data) < total && total <= 64<<10 {
		p.data = make([]byte, 0, max(total, 4096))
	}
	return nil
}

package protocol

import "encoding/base64"

// Meta commands (memcached 1.6 "meta" protocol): mg, ms, md and ma carry a key
// and single-letter flags; ms also carries a data block. The parser checks
// what memcached checks before it touches an item (word count, key, flag
// syntax, duplicate and unknown flags, the ms/ma mode) and hands the server a
// Request with Meta filled in. mn and me are plain commands left to the
// server.

// Meta replies, memcached 1.6.18's exact strings.
const (
	ReplyMetaInvalidFlag     = "CLIENT_ERROR invalid flag"
	ReplyMetaDuplicateFlag   = "CLIENT_ERROR duplicate flag"
	ReplyMetaBadFlagToken    = "CLIENT_ERROR bad token in command line format"
	ReplyMetaBadKeyEncoding  = "CLIENT_ERROR error decoding key"
	ReplyMetaModeLength      = "CLIENT_ERROR incorrect length for M token"
	ReplyMetaBadInitial      = "CLIENT_ERROR invalid numeric initial value"
	ReplyMetaBadDelta        = "CLIENT_ERROR invalid numeric delta value"
	ReplyMetaInvalidOrDup    = "CLIENT_ERROR invalid or duplicate flag"
	ReplyMetaOpaqueTooLong   = "CLIENT_ERROR opaque token too long"
	ReplyMetaSetMode         = "CLIENT_ERROR invalid mode for ms M token"
	ReplyMetaArithMode       = "CLIENT_ERROR invalid mode for ma M token"
	ReplyMetaGetFlagsTooLong = "CLIENT_ERROR options flags are too long"
	ReplyMetaFlagsTooLong    = "CLIENT_ERROR options flags too long"
)

// MetaMaxTokens is memcached's MFLAG_MAX_OPT_LENGTH: a meta command line of
// more tokens (NTokens) is refused.
const MetaMaxTokens = 20

// MetaMaxOpaque is the longest O token (the O included) memcached echoes.
const MetaMaxOpaque = 32

// Meta is what the parser read from a meta command's flags, as memcached's
// _meta_flag_preparse does. Flags that only ask for a value in the reply
// (k, O, c, f, s, t, v...) are read again by the server from FlagTokens, in
// order, since memcached answers them in the order they were given.
type Meta struct {
	// Cmd is the second letter of the command: 'g', 's', 'd' or 'a'; 0 for
	// a request that is not one of these meta commands.
	Cmd byte
	// Binary (b): the key token was base64 and Request.Key holds the
	// decoded bytes, which are used as they are (no namespace suffix).
	Binary bool
	Quiet  bool // q
	Value  bool // v
	// Mode (M) is the mode letter, 0 if none was given. The parser has
	// checked it for ms and ma.
	Mode byte
	// HasTTL and TTL (T) are a new exptime, as a client sends it.
	HasTTL bool
	TTL    int32
	// Vivify and VivifyTTL (N): create a missing item (ma), with this exptime.
	Vivify    bool
	VivifyTTL int32
	// ClientFlags (F): the item's flags for ms.
	ClientFlags uint32
	// HasCAS and CAS (C): compare with the item's CAS.
	HasCAS bool
	CAS    uint64
	// Delta (D, default 1) and Initial (J, default 0) for ma.
	Delta   uint64
	Initial uint64
	// DataLen is the value length given to ms.
	DataLen int
	// flagStart is the index in Tokens of the first flag.
	flagStart int
}

// FlagTokens returns the flag words of a meta request, in the order given.
func (r *Request) FlagTokens() [][]byte {
	if r.Meta.Cmd == 0 || r.Meta.flagStart > len(r.Tokens) {
		return nil
	}
	return r.Tokens[r.Meta.flagStart:]
}

// metaRefused lists the flags sonae refuses although memcached 1.6.18 knows
// them, per command, because they would need per-item state sonae does not
// keep: hit-before (h), last access (l), and the stale/win-token machinery
// (N and R on mg, I on ms and md). They get memcached's reply for an
// unknown flag.
func metaRefused(cmd, flag byte) bool {
	switch cmd {
	case 'g':
		return flag == 'h' || flag == 'l' || flag == 'N' || flag == 'R'
	case 's', 'd':
		return flag == 'I'
	}
	return false
}

// isMetaCommand reports mg, ms, md and ma.
func isMetaCommand(name []byte) bool {
	if len(name) != 2 || name[0] != 'm' {
		return false
	}
	switch name[1] {
	case 'g', 's', 'd', 'a':
		return true
	}
	return false
}

// parseMeta reads mg, md, ma and ms lines in memcached 1.6.18's order of
// checks. It returns the request, or nil when the data block of an ms must
// be read first.
func (p *Parser) parseMeta(toks [][]byte) *Request {
	cmd := toks[0][1]
	nt := NTokens(toks)
	if nt < 3 {
		return p.errorRequest(KindError, ReplyError)
	}
	start := 2
	if cmd == 's' {
		start = 3
	}
	if !metaKeyOK(toks, start) {
		return p.errorRequest(KindError, ReplyBadFormat)
	}
	if cmd == 's' && nt == 3 {
		return p.errorRequest(KindError, ReplyBadFormat)
	}
	if nt > MetaMaxTokens {
		if cmd == 'g' {
			return p.errorRequest(KindError, ReplyMetaGetFlagsTooLong)
		}
		return p.errorRequest(KindError, ReplyMetaFlagsTooLong)
	}
	m := Meta{Cmd: cmd, Delta: 1, flagStart: start}
	if cmd == 's' {
		vlen, ok := ParseInt32(toks[2])
		if !ok || vlen < 0 || vlen > (1<<31-1)-2 {
			return p.errorRequest(KindError, ReplyBadFormat)
		}
		m.DataLen = int(vlen)
	}
	key, bad := p.parseMetaFlags(toks, &m)
	if bad != "" && (cmd == 'd' || cmd == 'a') {
		// md and ma report every flag error with one message.
		bad = ReplyMetaInvalidOrDup
	}
	if bad == "" {
		bad = metaModeError(&m)
	}
	if bad == "" && cmd == 's' {
		// memcached notes the opaque length while stashing the reply
		// flags, and reports it after the mode.
		for _, f := range toks[start:] {
			if f[0] == 'O' && len(f) > MetaMaxOpaque {
				bad = ReplyMetaOpaqueTooLong
				break
			}
		}
	}
	if bad != "" {
		r := p.errorRequest(KindError, bad)
		if cmd == 's' {
			// From here on memcached knows the length: the block is
			// swallowed.
			p.state = stateSwallow
			p.remaining = m.DataLen + 2
		}
		return r
	}
	p.req = Request{Kind: KindCommand, Tokens: toks, Key: key, Meta: m}
	if cmd != 's' {
		return &p.req
	}
	if refusal := p.startBlock(len(key), m.ClientFlags, m.DataLen); refusal != "" {
		// Too large or out of memory: the block is swallowed, and the
		// server answers after dropping the old value, as memcached does.
		p.req.Reply = refusal
		return &p.req
	}
	return nil
}

// metaKeyOK is memcached's key length check, plus sonae's refusal of control
// characters in a key that is not base64 (b): a decoded binary key may hold
// any byte.
func metaKeyOK(toks [][]byte, start int) bool {
	key := toks[1]
	if len(key) > MaxKeyLength {
		return false
	}
	for _, f := range toks[min(start, len(toks)):] {
		if f[0] == 'b' {
			return true
		}
	}
	return ValidKeyToken(key)
}

// metaModeError checks the M flag of ms and ma.
func metaModeError(m *Meta) string {
	switch m.Cmd {
	case 's':
		switch m.Mode {
		case 0, 'E', 'A', 'P', 'R', 'S':
			return ""
		}
		return ReplyMetaSetMode
	case 'a':
		switch m.Mode {
		case 0, 'I', '+', 'D', '-':
			return ""
		}
		return ReplyMetaArithMode
	}
	return ""
}

// parseMetaFlags is memcached's _meta_flag_preparse: it returns the key
// (decoded for b) or the error reply. A repeated or unknown flag stops at
// once; a bad argument is remembered and parsing goes on, so the last such
// error is the one reported.
func (p *Parser) parseMetaFlags(toks [][]byte, m *Meta) (key []byte, errReply string) {
	var seen [127]bool
	key = toks[1]
	failed := false
	errReply = ReplyBadFormat
	fail := func(reply string) {
		if reply != "" {
			errReply = reply
		}
		failed = true
	}
	for _, f := range toks[m.flagStart:] {
		o := f[0]
		if o >= 127 || seen[o] {
			return nil, ReplyMetaDuplicateFlag
		}
		seen[o] = true
		if metaRefused(m.Cmd, o) {
			return nil, ReplyMetaInvalidFlag
		}
		arg := f[1:]
		switch o {
		case 'b':
			dec, ok := decodeBase64Key(p.keyBuf[:0], toks[1])
			p.keyBuf = dec
			if !ok {
				fail(ReplyMetaBadKeyEncoding)
			}
			key = dec
			m.Binary = true
		case 'N':
			m.Vivify = true
			v, ok := ParseInt32(arg)
			if !ok {
				fail(ReplyMetaBadFlagToken)
			}
			m.VivifyTTL = v
		case 'T':
			v, ok := ParseInt32(arg)
			if !ok {
				fail(ReplyMetaBadFlagToken)
			} else {
				m.HasTTL, m.TTL = true, v
			}
		case 'R':
			if _, ok := ParseInt32(arg); !ok {
				fail(ReplyMetaBadFlagToken)
			}
		case 'F':
			v, ok := ParseUint32(arg)
			if !ok {
				fail("") // memcached sets no message: the default stays
			}
			m.ClientFlags = v
		case 'C':
			v, ok := ParseUint64(arg)
			if !ok {
				fail(ReplyMetaBadFlagToken)
			} else {
				m.HasCAS, m.CAS = true, v
			}
		case 'M':
			if len(f) != 2 {
				fail(ReplyMetaModeLength)
			} else {
				m.Mode = f[1]
			}
		case 'J':
			v, ok := ParseUint64(arg)
			if !ok {
				fail(ReplyMetaBadInitial)
			}
			m.Initial = v
		case 'D':
			v, ok := ParseUint64(arg)
			if !ok {
				fail(ReplyMetaBadDelta)
			}
			m.Delta = v
		case 'v':
			m.Value = true
		case 'q':
			m.Quiet = true
		case 'l', 'h', 'O', 'P', 'L', 'k', 's', 't', 'c', 'f', 'u', 'I':
			// Known; the server answers them, or they change nothing.
		default:
			return nil, ReplyMetaInvalidFlag
		}
	}
	if failed {
		return nil, errReply
	}
	return key, ""
}

// base64Value maps a byte to its base64 value; '=' reads as 0 and bytes
// outside the alphabet are 0x80 (skipped), as in memcached's base64.c.
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x80
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	t['='] = 0
	return t
}()

// decodeBase64Key decodes a b key as memcached's base64_decode does, which is
// lenient: bytes outside the alphabet are skipped, the rest must come in
// groups of four, and the first group holding padding ends the key (one or
// two '=' in it; more is an error). It appends to dst.
func decodeBase64Key(dst, src []byte) ([]byte, bool) {
	count := 0
	for _, c := range src {
		if base64Value[c] != 0x80 {
			count++
		}
	}
	if count == 0 || count%4 != 0 {
		return dst, false
	}
	var block [4]byte
	n, pad := 0, 0
	for _, c := range src {
		v := base64Value[c]
		if v == 0x80 {
			continue
		}
		if c == '=' {
			pad++
		}
		block[n] = v
		n++
		if n < 4 {
			continue
		}
		dst = append(dst, block[0]<<2|block[1]>>4, block[1]<<4|block[2]>>2, block[2]<<6|block[3])
		n = 0
		if pad > 0 {
			if pad > 2 {
				return dst, false
			}
			return dst[:len(dst)-pad], true
		}
	}
	return dst, true
}

// AppendBase64Key appends key in standard base64 with padding, as memcached
// echoes a binary key.
func AppendBase64Key(dst, key []byte) []byte {
	return base64.StdEncoding.AppendEncode(dst, key)
}

// DecodeBase64Key decodes a base64 key as memcached does (see the b flag);
// me uses it. It appends to dst.
func DecodeBase64Key(dst, src []byte) ([]byte, bool) {
	return decodeBase64Key(dst, src)
}

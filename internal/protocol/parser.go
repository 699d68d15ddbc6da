package protocol

import (
	"bytes"
)

// Reply lines shared by the parser and the server. They are memcached's exact
// strings, without the trailing CRLF.
const (
	ReplyError            = "ERROR"
	ReplyBadFormat        = "CLIENT_ERROR bad command line format"
	ReplyBadDataChunk     = "CLIENT_ERROR bad data chunk"
	ReplyTooLarge         = "SERVER_ERROR object too large for cache"
	ReplyOutOfMemory      = "SERVER_ERROR out of memory storing object"
	ReplyLineTooLong      = "CLIENT_ERROR line too long"
	ReplyStored           = "STORED"
	ReplyNotStored        = "NOT_STORED"
	ReplyExists           = "EXISTS"
	ReplyNotFound         = "NOT_FOUND"
	ReplyDeleted          = "DELETED"
	ReplyTouched          = "TOUCHED"
	ReplyOK               = "OK"
	ReplyEnd              = "END"
	ReplyNonNumeric       = "CLIENT_ERROR cannot increment or decrement non-numeric value"
	ReplyInvalidDelta     = "CLIENT_ERROR invalid numeric delta argument"
	ReplyInvalidExptime   = "CLIENT_ERROR invalid exptime argument"
	ReplyKeyTooLong       = ReplyBadFormat
	ReplyBadDeleteTimeArg = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
)

// MaxKeyLength is memcached's KEY_MAX_LENGTH.
const MaxKeyLength = 250

// Kind says what a Request is.
type Kind uint8

// Request kinds.
const (
	// KindCommand is a command line, possibly with a data block.
	KindCommand Kind = iota + 1
	// KindError is a framing error: write Reply (unless Noreply) and go on.
	KindError
	// KindFatal is an error after which the connection must be closed:
	// write Reply, flush, close.
	KindFatal
)

// StorageOp identifies the storage commands, which carry a data block.
type StorageOp uint8

// Storage commands. StorageNone means the request is not one of them.
const (
	StorageNone StorageOp = iota
	StorageSet
	StorageAdd
	StorageReplace
	StorageAppend
	StoragePrepend
	StorageCAS
)

var storageOps = map[string]StorageOp{
	"set": StorageSet, "add": StorageAdd, "replace": StorageReplace,
	"append": StorageAppend, "prepend": StoragePrepend, "cas": StorageCAS,
}

// String returns the command name.
func (o StorageOp) String() string {
	for k, v := range storageOps {
		if v == o {
			return k
		}
	}
	return "none"
}

// Request is one parsed unit of input. Its slices point into the parser's
// buffers or into the caller's input and are valid only until the next call
// to Next.
type Request struct {
	Kind Kind
	// Tokens are the space-separated words of the command line, the command
	// name first. Empty for KindError/KindFatal.
	Tokens [][]byte
	// Reply is the error line for KindError and KindFatal. On a KindCommand
	// ms it means the data block was refused (too large, out of memory) and
	// is being discarded: the server acts on it and answers Reply.
	Reply string
	// Noreply is set when the command line ended with "noreply".
	Noreply bool

	// Storage commands only: the parsed line and the data block. Key and
	// Data are also set for meta commands (Key decoded if base64).
	Op      StorageOp
	Key     []byte
	Flags   uint32
	Exptime int64
	CAS     uint64
	Data    []byte

	// Meta is set (Meta.Cmd != 0) for mg, ms, md and ma.
	Meta Meta
}

// Budget bounds the memory held by data blocks being received, across all
// connections. Acquire blocks until n bytes are available and reports false
// if it gave up (the server then answers out of memory).
type Budget interface {
	Acquire(n int) bool
	Release(n int)
}

type state uint8

const (
	stateLine    state = iota // reading a command line
	stateData                 // reading a data block into p.data
	stateSwallow              // discarding p.remaining bytes
)

// Parser turns a byte stream into Requests. The zero value is not usable: call
// NewParser. A Parser is owned by one connection and is not safe for
// concurrent use.
type Parser struct {
	maxLine int
	maxItem int
	budget  Budget

	state     state
	line      []byte // partial command line carried over between inputs
	remaining int    // data or swallow bytes still to come (data includes CRLF)
	data      []byte // data block being assembled across inputs
	reserved  int    // bytes of budget held for data
	handed    bool   // the last call returned a request that may hold data
	req       Request
	tokens    [][]byte
	keyBuf    []byte // a meta command's decoded base64 key
}

// NewParser returns a parser for lines up to maxLine bytes and items up to
// maxItem bytes, as ItemFits counts them. budget may be nil.
func NewParser(maxLine, maxItem int, budget Budget) *Parser {
	return &Parser{maxLine: maxLine, maxItem: maxItem, budget: budget}
}

// Reset drops any partial input and releases held memory, as for a fresh
// connection.
func (p *Parser) Reset() {
	p.releaseData()
	p.state = stateLine
	p.line = p.line[:0]
	p.remaining = 0
}

// Close releases any budget the parser holds. Call it when the connection ends.
func (p *Parser) Close() { p.releaseData() }

func (p *Parser) releaseData() {
	if p.reserved > 0 && p.budget != nil {
		p.budget.Release(p.reserved)
	}
	p.reserved = 0
	// Keep a small buffer for reuse; let a large one go so that idle
	// connections do not pin memory.
	if cap(p.data) > 64<<10 {
		p.data = nil
	}
	p.data = p.data[:0]
}

// Pending reports whether the parser holds part of an unfinished request.
func (p *Parser) Pending() bool {
	return p.state != stateLine || len(p.line) > 0
}

// Next parses the next request from in. It returns how many bytes of in it
// consumed and the request, or nil once in is used up without completing a
// request. Call it again with the rest of in until it returns nil.
func (p *Parser) Next(in []byte) (int, *Request) {
	if p.handed {
		// The previous call returned a request; it has been handled now.
		p.handed = false
		p.releaseData()
	}
	consumed := 0
	for {
		switch p.state {
		case stateSwallow:
			n := min(p.remaining, len(in)-consumed)
			consumed += n
			p.remaining -= n
			if p.remaining > 0 {
				return consumed, nil
			}
			p.state = stateLine
		case stateData:
			n := min(p.remaining, len(in)-consumed)
			if len(p.data) == 0 && n == p.remaining {
				// The whole block is in this input: no copy.
				p.req.Data = in[consumed : consumed+n]
			} else {
				p.data = append(p.data, in[consumed:consumed+n]...)
			}
			consumed += n
			p.remaining -= n
			if p.remaining > 0 {
				if p.req.Data != nil {
					// Cannot happen: zero-copy path only when complete.
					panic("protocol: partial zero-copy data block")
				}
				return consumed, nil
			}
			p.state = stateLine
			block := p.req.Data
			if block == nil {
				block = p.data
			}
			if !bytes.HasSuffix(block, []byte("\r\n")) {
				noreply := p.req.Noreply
				r := p.errorRequest(KindError, ReplyBadDataChunk)
				r.Noreply = noreply
				p.handed = true
				return consumed, r
			}
			p.req.Data = block[:len(block)-2]
			p.handed = true
			return consumed, &p.req
		case stateLine:
			if consumed == len(in) {
				return consumed, nil
			}
			rest := in[consumed:]
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				p.line = append(p.line, rest...)
				// The line limit is checked first, so that a limit below
				// junkLineLimit gives the same answer however the input
				// is cut (reads are smaller than the default limit, so
				// the junk rule still applies first there).
				if len(p.line) > p.maxLine {
					p.line = p.line[:0]
					return len(in), p.errorRequest(KindFatal, ReplyLineTooLong)
				}
				if len(p.line) > junkLineLimit && !isGetLine(p.line) {
					// memcached's rule: this much without a newline can
					// only be junk, unless it is a multi-get. It closes
					// without a word.
					p.line = p.line[:0]
					return len(in), p.errorRequest(KindFatal, "")
				}
				return len(in), nil
			}
			var line []byte
			if len(p.line) > 0 {
				p.line = append(p.line, rest[:i]...)
				line = p.line
			} else {
				line = rest[:i]
			}
			consumed += i + 1
			if len(line) > p.maxLine {
				p.line = p.line[:0]
				return consumed, p.errorRequest(KindFatal, ReplyLineTooLong)
			}
			line = bytes.TrimSuffix(line, []byte("\r"))
			fromInput := len(p.line) == 0
			r := p.parseLine(line)
			// p.line's bytes stay valid: the request refers to them, and
			// they are only overwritten by the next Next call.
			p.line = p.line[:0]
			if r != nil {
				return consumed, r
			}
			// parseLine switched to stateData or stateSwallow. If the
			// block does not follow in this input, the line must outlive
			// the caller's buffer, which is reused for the next read.
			if p.state == stateData && fromInput && len(in)-consumed < p.remaining {
				p.keepLine(line)
			}
		}
	}
}

// junkLineLimit is memcached's bound on an unterminated line that is not a
// get or gets: past it the connection is closed.
const junkLineLimit = 2048

// isGetLine is memcached's test for a multi-get that may run long: at most
// 100 leading spaces, then "get " or "gets ".
func isGetLine(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	rest := line[i:]
	return bytes.HasPrefix(rest, []byte("get ")) || bytes.HasPrefix(rest, []byte("gets "))
}

// keepLine copies the pending request's command line into p.line and points
// its tokens and key at the copy.
func (p *Parser) keepLine(line []byte) {
	p.line = append(p.line[:0], line...)
	for i, t := range p.req.Tokens {
		off := cap(line) - cap(t) // t is a sub-slice of line
		p.req.Tokens[i] = p.line[off : off+len(t)]
	}
	if !p.req.Meta.Binary {
		p.req.Key = p.req.Tokens[1]
	}
	// Empty again: p.line only carries a partial line. The copy stays
	// intact in the backing array until the next line is read, which is
	// after this request has been returned and handled.
	p.line = p.line[:0]
}

func (p *Parser) errorRequest(k Kind, reply string) *Request {
	p.req = Request{Kind: k, Reply: reply}
	return &p.req
}

// tokenize splits line on runs of spaces, as memcached's tokenize_command.
func (p *Parser) tokenize(line []byte) [][]byte {
	toks := p.tokens[:0]
	start := -1
	for i, c := range line {
		if c == ' ' {
			if start >= 0 {
				toks = append(toks, line[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		toks = append(toks, line[start:])
	}
	p.tokens = toks
	return toks
}

// parseLine handles one complete command line. It returns the request, or nil
// when a data block (or a swallow) must be read first.
func (p *Parser) parseLine(line []byte) *Request {
	// memcached handles the line as a C string: a NUL ends it.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	toks := p.tokenize(line)
	p.req = Request{Kind: KindCommand, Tokens: toks}
	if len(toks) == 0 {
		return p.errorRequest(KindError, ReplyError)
	}
	if isMetaCommand(toks[0]) {
		return p.parseMeta(toks)
	}
	op, ok := storageOps[string(toks[0])]
	if !ok {
		return &p.req
	}
	return p.parseStorage(op, toks)
}

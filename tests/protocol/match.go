package protocoltest

import "bytes"

type matchResult int

const (
	matchOK       matchResult = iota // the pattern matched a prefix of the buffer
	matchNeedMore                    // the buffer is a proper prefix of a possible match
	matchFail                        // the buffer can never match
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// matchPrefix matches segs against the start of buf. On matchOK it returns
// the number of bytes consumed and the variables captured by this pattern
// (vars holds the captures of earlier steps and is not modified). On
// matchFail, n is the offset of the first offending byte.
func matchPrefix(segs []segment, buf []byte, vars map[string]string) (res matchResult, n int, captured map[string]string) {
	pos := 0
	lookup := func(name string) (string, bool) {
		if v, ok := captured[name]; ok {
			return v, true
		}
		v, ok := vars[name]
		return v, ok
	}
	for _, s := range segs {
		switch s.kind {
		case segLit:
			rest := buf[pos:]
			k := len(s.lit)
			if len(rest) < k {
				if !bytes.Equal(rest, s.lit[:len(rest)]) {
					return matchFail, pos + firstDiff(rest, s.lit), nil
				}
				return matchNeedMore, pos + len(rest), nil
			}
			if !bytes.Equal(rest[:k], s.lit) {
				return matchFail, pos + firstDiff(rest[:k], s.lit), nil
			}
			pos += k
		case segNum, segVar:
			if s.kind == segVar {
				if v, ok := lookup(s.name); ok {
					// Known value: match it literally, but it must not be
					// followed by another digit.
					lit := []byte(v)
					rest := buf[pos:]
					if len(rest) < len(lit) {
						if !bytes.Equal(rest, lit[:len(rest)]) {
							return matchFail, pos + firstDiff(rest, lit), nil
						}
						return matchNeedMore, pos + len(rest), nil
					}
					if !bytes.Equal(rest[:len(lit)], lit) {
						return matchFail, pos + firstDiff(rest[:len(lit)], lit), nil
					}
					pos += len(lit)
					if pos == len(buf) {
						return matchNeedMore, pos, nil
					}
					if isDigit(buf[pos]) {
						return matchFail, pos, nil
					}
					continue
				}
			}
			start := pos
			for pos < len(buf) && isDigit(buf[pos]) {
				pos++
			}
			if pos == len(buf) {
				return matchNeedMore, pos, nil
			}
			if pos == start {
				return matchFail, pos, nil
			}
			if s.kind == segVar {
				if captured == nil {
					captured = map[string]string{}
				}
				captured[s.name] = string(buf[start:pos])
			}
		case segAny:
			for pos < len(buf) && buf[pos] != '\r' && buf[pos] != '\n' {
				pos++
			}
			if pos == len(buf) {
				return matchNeedMore, pos, nil
			}
		}
	}
	return matchOK, pos, captured
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) < len(b) {
		return len(a)
	}
	return len(b)
}

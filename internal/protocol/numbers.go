package protocol

// The number parsers below reproduce memcached's safe_strto* helpers (util.c)
// on top of C's strtoul/strtol, so that sonae accepts and refuses exactly the
// same numeric tokens: leading white space and a sign are allowed, the number
// must be followed by the end or by white space, and overflow is an error.
// A 64-bit value given for a 32-bit field is truncated, as memcached does on
// 64-bit Linux.

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// strtou64 is C's strtoull in base 10: it returns the value, whether a minus
// sign was seen, whether it overflowed, and how many bytes it used (0 if no
// digits).
func strtou64(b []byte) (v uint64, neg bool, overflow bool, n int) {
	i := 0
	for i < len(b) && isCSpace(b[i]) {
		i++
	}
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			overflow = true
		}
		v = v*10 + d
		i++
	}
	if i == start {
		return 0, false, false, 0
	}
	if neg {
		v = -v
	}
	return v, neg, overflow, i
}

// endOK is memcached's check that the number is followed by space or the end.
func endOK(b []byte, n int) bool {
	return n > 0 && (n == len(b) || isCSpace(b[n]))
}

// ParseUint64 is memcached's safe_strtoull.
func ParseUint64(b []byte) (uint64, bool) {
	v, neg, overflow, n := strtou64(b)
	if overflow || !endOK(b, n) {
		return 0, false
	}
	if int64(v) < 0 && neg {
		return 0, false
	}
	return v, true
}

// ParseUint32 is memcached's safe_strtoul into a uint32: the 64-bit result is
// truncated to 32 bits.
func ParseUint32(b []byte) (uint32, bool) {
	v, ok := ParseUint64(b)
	return uint32(v), ok
}

// ParseInt32 is memcached's safe_strtol: a 64-bit strtol (refused only on
// overflow of 64 bits) whose result is truncated to int32, so 4294967296
// reads as 0 and 4000000000 as a negative number, as memcached 1.6 does.
func ParseInt32(b []byte) (int32, bool) {
	v, neg, overflow, n := strtou64(b)
	if !endOK(b, n) || overflow {
		return 0, false
	}
	if neg {
		if -v > 1<<63 {
			return 0, false
		}
	} else if v > 1<<63-1 {
		return 0, false
	}
	return int32(int64(v)), true
}

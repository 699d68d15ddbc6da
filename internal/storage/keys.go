package storage

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Key prefixes of the pebble engine (see doc.go for the full layout).
const (
	prefixData   byte = 'd'
	prefixLog    byte = 'l'
	prefixSeq    byte = 's'
	prefixExpiry byte = 'x'
	prefixMeta   byte = 'm'
)

// nsEnd terminates the namespace inside data and expiry keys. It sorts
// before every byte allowed in a namespace, so keys order by (namespace,
// user key).
const nsEnd byte = 0x00

// Fixed key lengths.
const (
	vnodePrefixLen = 1 + 2     // prefix | vnode
	logKeyLen      = 1 + 2 + 8 // 'l' | vnode | seq
	expiryHeadLen  = 1 + 8     // 'x' | exptime
)

// appendVnodePrefix appends prefix | vnode (big endian).
func appendVnodePrefix(dst []byte, prefix byte, vnode uint16) []byte {
	return append(dst, prefix, byte(vnode>>8), byte(vnode))
}

// appendNsKey appends ns | 0x00 | key, the part shared by data and expiry keys.
func appendNsKey(dst []byte, ns string, key []byte) []byte {
	dst = append(dst, ns...)
	dst = append(dst, nsEnd)
	return append(dst, key...)
}

// dataKeyLen is len(appendDataKey(nil, vnode, ns, key)).
func dataKeyLen(ns string, key []byte) int { return vnodePrefixLen + len(ns) + 1 + len(key) }

// appendDataKey appends 'd' | vnode | ns | 0x00 | key.
func appendDataKey(dst []byte, vnode uint16, ns string, key []byte) []byte {
	return appendNsKey(appendVnodePrefix(dst, prefixData, vnode), ns, key)
}

// appendNsPrefix appends 'd' | vnode | ns | 0x00: the prefix of every record
// of ns in vnode.
func appendNsPrefix(dst []byte, vnode uint16, ns string) []byte {
	dst = appendVnodePrefix(dst, prefixData, vnode)
	dst = append(dst, ns...)
	return append(dst, nsEnd)
}

// decodeNsKey splits ns | 0x00 | key.
func decodeNsKey(b []byte) (ns []byte, key []byte, err error) {
	for i, c := range b {
		if c == nsEnd {
			if i == 0 {
				break
			}
			return b[:i], b[i+1:], nil
		}
	}
	return nil, nil, fmt.Errorf("%w: key %q has no namespace", ErrCorrupt, b)
}

// decodeDataKey splits a data key into vnode, namespace and user key.
func decodeDataKey(k []byte) (vnode uint16, ns []byte, key []byte, err error) {
	if len(k) < vnodePrefixLen+2 || k[0] != prefixData {
		return 0, nil, nil, fmt.Errorf("%w: bad data key %q", ErrCorrupt, k)
	}
	ns, key, err = decodeNsKey(k[vnodePrefixLen:])
	return binary.BigEndian.Uint16(k[1:3]), ns, key, err
}

// appendLogKey appends 'l' | vnode | seq (big endian).
func appendLogKey(dst []byte, vnode uint16, seq uint64) []byte {
	dst = appendVnodePrefix(dst, prefixLog, vnode)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// decodeLogKey returns the vnode and sequence number of a log key.
func decodeLogKey(k []byte) (vnode uint16, seq uint64, err error) {
	if len(k) != logKeyLen || k[0] != prefixLog {
		return 0, 0, fmt.Errorf("%w: bad log key %q", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint16(k[1:3]), binary.BigEndian.Uint64(k[3:]), nil
}

// appendSeqKey appends 's' | vnode.
func appendSeqKey(dst []byte, vnode uint16) []byte {
	return appendVnodePrefix(dst, prefixSeq, vnode)
}

// expiryOrder maps an exptime to a uint64 whose big-endian bytes sort like
// the signed exptime (flip the sign bit).
func expiryOrder(exptime int64) uint64 { return uint64(exptime) ^ (1 << 63) }

// appendExpiryKey appends 'x' | exptime | vnode | ns | 0x00 | key.
func appendExpiryKey(dst []byte, exptime int64, vnode uint16, ns string, key []byte) []byte {
	dst = append(dst, prefixExpiry)
	dst = binary.BigEndian.AppendUint64(dst, expiryOrder(exptime))
	dst = append(dst, byte(vnode>>8), byte(vnode))
	return appendNsKey(dst, ns, key)
}

// expiryKeyLen is len(appendExpiryKey(nil, ...)).
func expiryKeyLen(ns string, key []byte) int { return expiryHeadLen + 2 + len(ns) + 1 + len(key) }

// decodeExpiryKey decodes an expiry key into a ref whose Key aliases k.
func decodeExpiryKey(k []byte) (ExpiryRef, error) {
	if len(k) < expiryHeadLen+2+2 || k[0] != prefixExpiry {
		return ExpiryRef{}, fmt.Errorf("%w: bad expiry key %q", ErrCorrupt, k)
	}
	ns, key, err := decodeNsKey(k[expiryHeadLen+2:])
	if err != nil {
		return ExpiryRef{}, err
	}
	return ExpiryRef{
		Exptime:   int64(binary.BigEndian.Uint64(k[1:9]) ^ (1 << 63)),
		Vnode:     binary.BigEndian.Uint16(k[9:11]),
		Namespace: string(ns),
		Key:       key,
	}, nil
}

// appendMetaKey appends 'm' | name.
func appendMetaKey(dst []byte, name string) []byte {
	return append(append(dst, prefixMeta), name...)
}

// prefixEnd returns the smallest key greater than every key that starts
// with p, or nil if there is none (p is all 0xff). It does not modify p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != math.MaxUint8 {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

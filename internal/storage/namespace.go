package storage

import "fmt"

// MaxNamespaceLen is the longest valid namespace name, in bytes.
const MaxNamespaceLen = 64

// ValidNamespace returns nil if name is a valid namespace name: 1 to
// MaxNamespaceLen bytes of [A-Za-z0-9_.-]. Otherwise it returns an error
// wrapping ErrBadNamespace that quotes the name.
//
// The on-disk layout relies on this: a namespace never contains the 0x00
// byte that ends it inside keys (see doc.go).
func ValidNamespace(name string) error {
	if len(name) == 0 || len(name) > MaxNamespaceLen {
		return badNamespace(name)
	}
	for i := 0; i < len(name); i++ {
		if !nsByte[name[i]] {
			return badNamespace(name)
		}
	}
	return nil
}

func badNamespace(name string) error {
	if len(name) > 2*MaxNamespaceLen {
		name = name[:2*MaxNamespaceLen] + "..."
	}
	return fmt.Errorf("%w: %q", ErrBadNamespace, name)
}

// nsByte[b] is true for the bytes allowed in namespace names.
var nsByte = func() (t [256]bool) {
	for b := 'a'; b <= 'z'; b++ {
		t[b] = true
	}
	for b := 'A'; b <= 'Z'; b++ {
		t[b] = true
	}
	for b := '0'; b <= '9'; b++ {
		t[b] = true
	}
	t['_'], t['.'], t['-'] = true, true, true
	return t
}()

package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sonae-kv/sonae/internal/storage"
)

const metaNamespaces = "namespaces"

func metaFlush(ns string) string { return "flush/" + ns }

func (s *Store) loadNamespaces() error {
	names := []string{DefaultNamespace}
	b, err := s.eng.GetMeta(metaNamespaces)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("kv: reading namespaces: %w", err)
	default:
		if err := json.Unmarshal(b, &names); err != nil {
			return fmt.Errorf("kv: decoding namespaces: %w", err)
		}
	}
	for _, n := range names {
		st := &nsState{}
		if fb, err := s.eng.GetMeta(metaFlush(n)); err == nil {
			var f flushHorizon
			if err := json.Unmarshal(fb, &f); err != nil {
				return fmt.Errorf("kv: decoding flush horizon of %q: %w", n, err)
			}
			st.flush.Store(&f)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("kv: reading flush horizon of %q: %w", n, err)
		}
		s.namespaces[n] = st
	}
	if _, ok := s.namespaces[DefaultNamespace]; !ok {
		s.namespaces[DefaultNamespace] = &nsState{}
	}
	return nil
}

// saveNamespaces persists the list. Callers hold nsMu for writing.
func (s *Store) saveNamespaces() error {
	b, _ := json.Marshal(s.namespaceNamesLocked())
	return s.eng.PutMeta(metaNamespaces, b)
}

func (s *Store) namespace(name string) (*nsState, error) {
	s.nsMu.RLock()
	ns := s.namespaces[name]
	s.nsMu.RUnlock()
	if ns == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoNamespace, name)
	}
	return ns, nil
}

// HasNamespace reports whether name exists.
func (s *Store) HasNamespace(name string) bool {
	_, err := s.namespace(name)
	return err == nil
}

// Namespaces lists the namespaces in name order.
func (s *Store) Namespaces() []string {
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	return s.namespaceNamesLocked()
}

func (s *Store) namespaceNamesLocked() []string {
	names := make([]string, 0, len(s.namespaces))
	for n := range s.namespaces {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CreateNamespace adds an empty namespace.
func (s *Store) CreateNamespace(name string) error {
	if err := storage.ValidNamespace(name); err != nil {
		return err
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if _, ok := s.namespaces[name]; ok {
		return fmt.Errorf("%w: %s", ErrNamespaceExists, name)
	}
	s.namespaces[name] = &nsState{}
	if err := s.saveNamespaces(); err != nil {
		delete(s.namespaces, name)
		return err
	}
	return nil
}

// DeleteNamespace drops a namespace and all of its items.
func (s *Store) DeleteNamespace(name string) error {
	if name == DefaultNamespace {
		return ErrDefaultNamespace
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if _, ok := s.namespaces[name]; !ok {
		return fmt.Errorf("%w: %s", ErrNoNamespace, name)
	}
	// Hide it first so that no command races with the drop; then take every
	// vnode lock so the byte counters stay exact.
	delete(s.namespaces, name)
	if err := s.saveNamespaces(); err != nil {
		return err
	}
	for i := range s.locks {
		s.locks[i].Lock()
	}
	defer func() {
		for i := range s.locks {
			s.locks[i].Unlock()
		}
	}()
	if err := s.eng.DropNamespace(name); err != nil {
		return err
	}
	u, err := s.eng.Usage()
	if err != nil {
		return err
	}
	s.items.Store(u.Items)
	s.bytes.Store(u.Bytes)
	return nil
}

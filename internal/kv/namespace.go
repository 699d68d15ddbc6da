package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	m := map[string]*nsState{}
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
		m[n] = st
	}
	if _, ok := m[DefaultNamespace]; !ok {
		m[DefaultNamespace] = &nsState{}
	}
	s.namespaces.Store(&m)
	return nil
}

// saveNamespaces persists the names of m. Callers hold nsMu.
func saveNamespaces(eng storage.Engine, m map[string]*nsState) error {
	b, _ := json.Marshal(sortedNames(m))
	return eng.PutMeta(metaNamespaces, b)
}

func (s *Store) namespace(name string) (*nsState, error) {
	ns := (*s.namespaces.Load())[name]
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
func (s *Store) Namespaces() []string { return sortedNames(*s.namespaces.Load()) }

func sortedNames(m map[string]*nsState) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// namespacesCopy returns a copy of the namespace map to change and publish.
func (s *Store) namespacesCopy() map[string]*nsState {
	return maps.Clone(*s.namespaces.Load())
}

// CreateNamespace adds an empty namespace.
func (s *Store) CreateNamespace(name string) error {
	if err := storage.ValidNamespace(name); err != nil {
		return err
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	m := s.namespacesCopy()
	if _, ok := m[name]; ok {
		return fmt.Errorf("%w: %s", ErrNamespaceExists, name)
	}
	m[name] = &nsState{}
	if err := saveNamespaces(s.eng, m); err != nil {
		return err
	}
	s.namespaces.Store(&m)
	return nil
}

// DeleteNamespace drops a namespace and all of its items.
func (s *Store) DeleteNamespace(name string) error {
	if name == DefaultNamespace {
		return ErrDefaultNamespace
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	m := s.namespacesCopy()
	if _, ok := m[name]; !ok {
		return fmt.Errorf("%w: %s", ErrNoNamespace, name)
	}
	// Hide it first so that no command races with the drop; then take every
	// vnode lock so the byte counters stay exact.
	delete(m, name)
	if err := saveNamespaces(s.eng, m); err != nil {
		return err
	}
	s.namespaces.Store(&m)
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

package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Memory is a Store held in process memory: for tests and for programs that
// keep tokens elsewhere. It offers the same guarantees as the durable stores
// within one process, and none across processes.
type Memory struct {
	mu      sync.Mutex
	records map[string]Record
	locks   map[string]chan struct{}
	// FailPut, when set, makes Put fail with its error (fault injection).
	FailPut func(Record) error
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{records: map[string]Record{}, locks: map[string]chan struct{}{}}
}

func (m *Memory) Get(_ context.Context, id string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[id]
	if !ok {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, nil
}

func (m *Memory) Put(_ context.Context, r Record) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.FailPut != nil {
		if err := m.FailPut(r); err != nil {
			return Record{}, err
		}
	}
	if cur := m.records[r.ID]; cur.Version != r.Version {
		return Record{}, fmt.Errorf("%w: %s is at version %d, not %d", ErrConflict, r.ID, cur.Version, r.Version)
	}
	r.Version++
	r.UpdatedAt = time.Now().UTC()
	m.records[r.ID] = r
	return r, nil
}

func (m *Memory) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, id)
	return nil
}

func (m *Memory) List(context.Context) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return compareStrings(a.ID, b.ID) })
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Lock takes the connection's lock, waiting until ctx ends.
func (m *Memory) Lock(ctx context.Context, id string) (func() error, error) {
	for {
		m.mu.Lock()
		ch, held := m.locks[id]
		if !held {
			ch = make(chan struct{})
			m.locks[id] = ch
			m.mu.Unlock()
			var once sync.Once
			return func() error {
				once.Do(func() {
					m.mu.Lock()
					delete(m.locks, id)
					m.mu.Unlock()
					close(ch)
				})
				return nil
			}, nil
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %s: %w", ErrLockTimeout, id, ctx.Err())
		}
	}
}

func (m *Memory) Close() error { return nil }

var _ Store = (*Memory)(nil)

package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/connector-engine/connector/connector/store"
)

// unlockTimeout bounds the release of a lock; past it the session is closed,
// which releases the lock as surely.
const unlockTimeout = 10 * time.Second

// lockKey maps a connection id to a bigint advisory lock key. Two ids (or
// another application's lock in the same database) may share a key: that
// only makes them wait for each other, never lets two holders in. The
// mapping must never change, or hosts running different builds would lock
// different keys for the same connection.
func lockKey(id string) int64 {
	sum := sha256.Sum256([]byte("connector-engine/pgstore/lock\x00" + id))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// Lock takes the cross-host lock of connection id: a session-level
// pg_advisory_lock held by a database session reserved for it until unlock.
// It waits until ctx ends; then the error wraps both store.ErrLockTimeout
// and the context's error. If the holding process or host dies, its session
// ends and PostgreSQL releases the lock: at once for a process whose socket
// is closed, within about a minute (TCP keepalives) for a host that vanished.
//
// A lock can also be lost while held, if its session ends (a database
// restart, a network failure); unlock then says so. Writes made under a lost
// lock stay safe: Put's version check refuses any that another holder
// overtook.
func (s *Store) Lock(ctx context.Context, id string) (unlock func() error, err error) {
	if s.closed.Load() {
		return nil, s.errClosed()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.life, func() { cancel(errStoreClosed) })
	defer stop()
	ended := func() error {
		cause := context.Cause(ctx)
		if errors.Is(cause, errStoreClosed) {
			return s.errClosed()
		}
		return lockTimeout(id, cause)
	}
	if ctx.Err() != nil {
		return nil, ended()
	}

	// Goroutines of this process queue here, so that at most one session
	// per connection waits at the server, and waiters never take sessions
	// that Get and Put need (those come from the other pool).
	release, err := s.local.acquire(ctx, id)
	if err != nil {
		return nil, ended()
	}
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		release()
		if ctx.Err() != nil {
			return nil, ended()
		}
		return nil, s.wrap(err, "pgstore: locking connection %q in %s: opening a session", id, s.desc)
	}
	key := lockKey(id)
	// The server ends the wait at the deadline itself (lock_timeout applies
	// to advisory locks), which leaves the session clean; pgx's cancel
	// request covers a context canceled without a deadline.
	wait := "0" // no limit
	if dl, ok := ctx.Deadline(); ok {
		wait = strconv.FormatInt(max(1, time.Until(dl).Milliseconds()), 10)
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('lock_timeout', $1, false)`, wait)
	b.Queue(`SELECT pg_advisory_lock($1)`, key)
	err = conn.SendBatch(ctx, b).Close()
	if err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			// Whether the server granted the lock is unknown: ending the
			// session makes sure it is not left held by a pooled session.
			closeConn(conn)
		}
		conn.Release()
		release()
		switch {
		case pe != nil && pe.Code == "55P03": // lock_not_available: lock_timeout
			return nil, lockTimeout(id, context.DeadlineExceeded)
		case ctx.Err() != nil:
			return nil, ended()
		}
		return nil, s.wrap(err, "pgstore: locking connection %q in %s", id, s.desc)
	}
	h := &heldLock{s: s, id: id, key: key, conn: conn, release: release}
	s.heldMu.Lock()
	if s.closed.Load() { // Close ran meanwhile and will not see h
		s.heldMu.Unlock()
		h.once.Do(func() { h.drop(true) })
		return nil, s.errClosed()
	}
	s.held[h] = struct{}{}
	s.heldMu.Unlock()
	return h.unlock, nil
}

func lockTimeout(id string, cause error) error {
	return fmt.Errorf("pgstore: connection %q: %w: another worker (in this or another process or host) held it until the wait ended (%w)", id, store.ErrLockTimeout, cause)
}

var errStoreClosed = errors.New("pgstore: store closed")

// heldLock is one taken lock and the session holding it.
type heldLock struct {
	s       *Store
	id      string
	key     int64
	conn    *pgxpool.Conn
	release func() // the in-process queue
	once    sync.Once
	err     error
}

func (h *heldLock) unlock() error {
	h.once.Do(func() { h.err = h.drop(false) })
	return h.err
}

// drop releases the lock and returns its session to the pool; with force
// (Close) it ends the session instead, which releases the lock as well.
func (h *heldLock) drop(force bool) error {
	defer func() {
		h.conn.Release()
		h.release()
		h.s.heldMu.Lock()
		delete(h.s.held, h)
		h.s.heldMu.Unlock()
	}()
	if force {
		closeConn(h.conn)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	var held bool
	err := h.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, h.key).Scan(&held)
	if err == nil && held {
		return nil
	}
	closeConn(h.conn) // never pool a session whose lock state is unknown
	if err == nil {
		return fmt.Errorf("pgstore: unlocking connection %q in %s: the lock was no longer held", h.id, h.s.desc)
	}
	return h.s.wrap(err, "pgstore: unlocking connection %q in %s: the lock was lost or its session failed (the session was closed, which releases it; writes made under it were still guarded by the record version)", h.id, h.s.desc)
}

// closeConn ends a pooled session; the pool discards it on Release.
func closeConn(c *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Conn().Close(ctx)
}

// localLocks queues this Store's Lock calls per connection id.
type localLocks struct {
	mu sync.Mutex
	m  map[string]*localLock
}

type localLock struct {
	ch   chan struct{} // holds a token while taken
	refs int           // holders and waiters; the entry goes at zero
}

func (l *localLocks) acquire(ctx context.Context, id string) (release func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*localLock{}
	}
	ll := l.m[id]
	if ll == nil {
		ll = &localLock{ch: make(chan struct{}, 1)}
		l.m[id] = ll
	}
	ll.refs++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if ll.refs--; ll.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	select {
	case ll.ch <- struct{}{}:
		return func() { <-ll.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

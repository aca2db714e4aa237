// Package store defines how connections' tokens are kept: the Record a store
// holds, the Store interface every backend implements (the embedded file
// store, PostgreSQL), and the sealing of secrets at rest.
//
// Every record carries a Binding: what its token was issued for (tenant,
// definition, environment, client id, token-endpoint and API origins). The
// token is sealed with the id and the binding as associated data, so a
// binding altered at rest fails to open, and connector.Source never spends a
// token for a connection bound differently (a connection naming another's
// id). Records from before bindings have a zero Binding and are bound on
// their first use.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/connector-engine/connector/connector/token"
)

// Status is what a connection can do now.
type Status string

const (
	// StatusConnected: the token works or can be refreshed.
	StatusConnected Status = "connected"
	// StatusNeedsReauth: only a person running the authorization flow again can fix it.
	StatusNeedsReauth Status = "needs_reauthorization"
)

// Record is everything a store keeps about one connection.
type Record struct {
	ID         string // the connection's identity, stable across runs
	Definition string // the definition name the connection was made with
	// Binding is what the token was issued for; the token is sealed with
	// it, and a connector spends the token only for a connection with the
	// same binding. Zero for records written before bindings existed.
	Binding Binding
	Token   token.Token // sealed at rest
	Status  Status
	Reason  string // why Status is not connected; never contains a secret
	// RefreshStarted is set before a refresh request is sent and cleared when
	// its outcome is stored; a non-zero value found later means a refresh was
	// interrupted and its answer may have been lost.
	RefreshStarted time.Time
	Version        int64 // incremented by every Put; Put with a stale Version fails
	UpdatedAt      time.Time
}

var (
	// ErrNotFound: no record for that connection.
	ErrNotFound = errors.New("store: connection not found")
	// ErrConflict: the record changed since it was read (Version mismatch).
	ErrConflict = errors.New("store: record changed concurrently")
	// ErrLockTimeout: another process held the connection's lock for too long.
	ErrLockTimeout = errors.New("store: timed out waiting for the connection lock")
)

// Store keeps records durably. Implementations are safe for concurrent use by
// goroutines and by processes sharing the same backing storage.
type Store interface {
	// Get returns the record for id, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Put writes r durably before returning. r.Version must equal the stored
	// version (0 for a new record) or Put returns ErrConflict; on success the
	// stored version is r.Version+1 and that is returned.
	Put(ctx context.Context, r Record) (Record, error)
	// Delete removes the record; deleting a missing record is not an error.
	Delete(ctx context.Context, id string) error
	// List returns every record, ordered by ID.
	List(ctx context.Context) ([]Record, error)
	// Lock takes the cross-process lock of one connection, waiting until ctx
	// ends. The lock is released by the returned function, or when the
	// holder dies; it is meant for the duration of one refresh.
	Lock(ctx context.Context, id string) (unlock func() error, err error)
	Close() error
}

// Event is one version of a connection as a store's history keeps it (the
// SQL stores keep one row per version): what its status was, never its
// tokens.
type Event struct {
	Version int64
	Status  Status
	Reason  string
	// Refreshing is true when the version marked a refresh in flight.
	Refreshing bool
	At         time.Time // UTC; on PostgreSQL the database's clock
}

package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/pgstore"
	"github.com/connector-engine/connector/connector/store/sqlitestore"
)

// Storage is the server's state and the connections' tokens, in one
// database: an SQLite file (one host) or PostgreSQL (any number of
// replicas).
type Storage struct {
	State  *state.DB
	Tokens store.Store
	close  []func() error
}

// OpenStorage opens spec: a postgres:// URL, or the path of an SQLite file
// (created when missing).
func OpenStorage(ctx context.Context, spec string, sealer *store.Sealer) (*Storage, error) {
	if spec == "" {
		return nil, errors.New("server: no store given: a postgres:// URL or an SQLite file path")
	}
	s := &Storage{}
	if pgstore.IsURL(spec) {
		tokens, err := pgstore.Open(ctx, spec, sealer)
		if err != nil {
			return nil, err
		}
		db, err := state.OpenPostgres(ctx, spec, sealer)
		if err != nil {
			tokens.Close()
			return nil, err
		}
		s.State, s.Tokens = db, tokens
		s.close = []func() error{db.Close, tokens.Close}
		return s, nil
	}
	path := spec
	if sqlitestore.IsURL(spec) {
		p, err := sqlitestore.PathFromURL(spec)
		if err != nil {
			return nil, err
		}
		path = p
	}
	sqldb, err := sqlitestore.OpenDB(path)
	if err != nil {
		return nil, err
	}
	tokens, err := sqlitestore.New(sqldb, sealer)
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	db, err := state.New(ctx, sqldb, state.SQLite, sealer)
	if err != nil {
		tokens.Close()
		sqldb.Close()
		return nil, fmt.Errorf("server: the state tables in %s: %w", path, err)
	}
	s.State, s.Tokens = db, tokens
	s.close = []func() error{tokens.Close, sqldb.Close}
	return s, nil
}

// Close closes the databases.
func (s *Storage) Close() error {
	var errs []error
	for _, c := range s.close {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

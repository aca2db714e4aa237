package state

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The change generation is a counter in the database that triggers bump
// whenever something a replica may cache stops being true: an API key is
// deleted or its scopes change, an OAuth client or a connection is deleted
// or gets a new version (a rotated secret, a new status). Triggers rather
// than Go code, so that every writer bumps it (another replica, the
// `connector serve keys` command, a newer build's code path).
//
// A replica keeps what it read from the database together with the
// generation it read it at, and trusts it while the generation has not
// moved. On SQLite, reading the generation is one primary-key lookup in
// the same process. On PostgreSQL the trigger also sends NOTIFY, and a
// replica LISTENs on a connection of its own, so that it knows the
// generation without a query; see Generation for how late it may learn.
const changesChannel = "connector_server_changes"

var generationSteps = []string{
	`CREATE TABLE server_generation (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  BIGINT NOT NULL
)`,
	`INSERT INTO server_generation (id, n) VALUES (1, 1)`,

	"-- sqlite\n" + `CREATE TRIGGER server_api_keys_deleted AFTER DELETE ON server_api_keys
BEGIN UPDATE server_generation SET n = n + 1 WHERE id = 1; END`,
	"-- sqlite\n" + `CREATE TRIGGER server_api_keys_changed AFTER UPDATE OF hash, scopes, tenant ON server_api_keys
BEGIN UPDATE server_generation SET n = n + 1 WHERE id = 1; END`,
	"-- sqlite\n" + `CREATE TRIGGER server_oauth_clients_deleted AFTER DELETE ON server_oauth_clients
BEGIN UPDATE server_generation SET n = n + 1 WHERE id = 1; END`,
	"-- sqlite\n" + `CREATE TRIGGER server_oauth_clients_changed AFTER UPDATE ON server_oauth_clients WHEN OLD.version <> NEW.version
BEGIN UPDATE server_generation SET n = n + 1 WHERE id = 1; END`,
	"-- sqlite\n" + `CREATE TRIGGER server_connections_deleted AFTER DELETE ON server_connections
BEGIN UPDATE server_generation SET n = n + 1 WHERE id = 1; END`,
	"-- sqlite\n" + `CREATE TRIGGER server_connections_changed AFTER UPDATE ON server_connections WHEN OLD.version <> NEW.version
BEGIN UPDATE server_generation SET n = n + 1 WHERE id = 1; END`,

	"-- postgres\n" + `CREATE FUNCTION server_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g BIGINT;
BEGIN
	UPDATE server_generation SET n = n + 1 WHERE id = 1 RETURNING n INTO g;
	PERFORM pg_notify('` + changesChannel + `', g::text);
	RETURN NULL;
END $$`,
	"-- postgres\n" + `CREATE TRIGGER server_api_keys_deleted AFTER DELETE ON server_api_keys
FOR EACH ROW EXECUTE FUNCTION server_bump_generation()`,
	"-- postgres\n" + `CREATE TRIGGER server_api_keys_changed AFTER UPDATE OF hash, scopes, tenant ON server_api_keys
FOR EACH ROW EXECUTE FUNCTION server_bump_generation()`,
	"-- postgres\n" + `CREATE TRIGGER server_oauth_clients_deleted AFTER DELETE ON server_oauth_clients
FOR EACH ROW EXECUTE FUNCTION server_bump_generation()`,
	"-- postgres\n" + `CREATE TRIGGER server_oauth_clients_changed AFTER UPDATE ON server_oauth_clients
FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION server_bump_generation()`,
	"-- postgres\n" + `CREATE TRIGGER server_connections_deleted AFTER DELETE ON server_connections
FOR EACH ROW EXECUTE FUNCTION server_bump_generation()`,
	"-- postgres\n" + `CREATE TRIGGER server_connections_changed AFTER UPDATE ON server_connections
FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION server_bump_generation()`,
}

// Intervals of the PostgreSQL listener: how often it checks its connection
// (and re-reads the generation, in case a notification was lost) when no
// notification arrives, how long that check may take, and how long it waits
// before connecting again after a failure.
const (
	listenCheck   = 5 * time.Second
	listenTimeout = 5 * time.Second
	listenRetry   = time.Second
)

// MaxStaleness is the longest a PostgreSQL replica may go on trusting a
// generation that another replica has moved, when a notification is lost
// without its connection failing: one check interval and its timeout. In
// the ordinary case a replica learns of a change when its notification
// arrives, about a network round trip after the change commits.
const MaxStaleness = listenCheck + listenTimeout

// changes is a DB's view of the generation.
type changes struct {
	dial func(ctx context.Context) (*pgx.Conn, error) // PostgreSQL opened by URL; nil otherwise

	gen       atomic.Int64 // the highest generation seen
	listening atomic.Bool  // a LISTEN connection is up: gen follows notifications
	writes    atomic.Int64 // writes through this DB (they may have moved the generation)
	synced    atomic.Int64 // writes counted before the last read of the generation

	once sync.Once
	stop context.CancelFunc
	done chan struct{}

	stmtOnce sync.Once
	stmt     *sql.Stmt
	stmtErr  error
}

// wrote records a write through this DB: until the generation is read
// again, Generation does not answer from notifications, so that a replica
// sees its own changes at once, not when their notification comes back.
func (d *DB) wrote() { d.changes.writes.Add(1) }

func (c *changes) observe(n int64) {
	for {
		cur := c.gen.Load()
		if n <= cur || c.gen.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Generation returns the change generation: while it stays the same,
// nothing a replica may have cached from this database (API keys, OAuth
// clients, connections) was deleted or changed, by any replica.
//
// On SQLite it reads the counter, so a change committed by any process is
// seen by the next call. On PostgreSQL opened with OpenPostgres it answers
// from the notifications of a LISTEN connection: a change made through
// this DB is seen at once, one made by another replica when its
// notification arrives (after about a round trip), and at worst within
// MaxStaleness; while that connection is down, it reads the counter.
func (d *DB) Generation(ctx context.Context) (int64, error) {
	c := &d.changes
	if c.dial != nil {
		c.once.Do(d.startListening)
		if c.listening.Load() && c.synced.Load() >= c.writes.Load() {
			return c.gen.Load(), nil
		}
	}
	writes := c.writes.Load()
	n, err := d.readGeneration(ctx)
	if err != nil {
		return 0, err
	}
	c.observe(n)
	for {
		cur := c.synced.Load()
		if writes <= cur || c.synced.CompareAndSwap(cur, writes) {
			break
		}
	}
	return n, nil
}

func (d *DB) readGeneration(ctx context.Context) (int64, error) {
	c := &d.changes
	c.stmtOnce.Do(func() {
		pctx, cancel := bound(context.Background())
		defer cancel()
		c.stmt, c.stmtErr = d.db.PrepareContext(pctx, `SELECT n FROM server_generation WHERE id = 1`)
	})
	ctx, cancel := bound(ctx)
	defer cancel()
	var n int64
	var err error
	if c.stmtErr == nil {
		err = c.stmt.QueryRowContext(ctx).Scan(&n)
	} else {
		err = d.db.QueryRowContext(ctx, `SELECT n FROM server_generation WHERE id = 1`).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("state: reading the change generation: %w", err)
	}
	return n, nil
}

func (d *DB) startListening() {
	ctx, cancel := context.WithCancel(context.Background())
	d.changes.stop = cancel
	d.changes.done = make(chan struct{})
	go func() {
		defer close(d.changes.done)
		for ctx.Err() == nil {
			d.listenOnce(ctx)
			d.changes.listening.Store(false)
			select {
			case <-ctx.Done():
			case <-time.After(listenRetry):
			}
		}
	}()
}

// listenOnce holds one LISTEN connection until it fails or ctx ends.
func (d *DB) listenOnce(ctx context.Context) {
	c := &d.changes
	dctx, cancel := context.WithTimeout(ctx, listenTimeout)
	conn, err := c.dial(dctx)
	cancel()
	if err != nil {
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), listenTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	// LISTEN first, then read: a change after the read is notified, one
	// before it is in what was read.
	check := func() bool {
		qctx, cancel := context.WithTimeout(ctx, listenTimeout)
		defer cancel()
		var n int64
		if err := conn.QueryRow(qctx, `SELECT n FROM server_generation WHERE id = 1`).Scan(&n); err != nil {
			return false
		}
		c.observe(n)
		return true
	}
	lctx, lcancel := context.WithTimeout(ctx, listenTimeout)
	_, err = conn.Exec(lctx, `LISTEN `+changesChannel)
	lcancel()
	if err != nil || !check() {
		return
	}
	c.listening.Store(true)
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		note, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if n, perr := strconv.ParseInt(note.Payload, 10, 64); perr == nil {
				c.observe(n)
			} else if !check() {
				return
			}
		case ctx.Err() != nil:
			return
		case wctx.Err() != nil: // quiet for a while: is the connection alive, was anything missed?
			if !check() {
				return
			}
		default:
			return
		}
	}
}

func (c *changes) close() {
	c.once.Do(func() {}) // no listener starts after Close
	if c.stop != nil {
		c.stop()
		<-c.done
	}
	if c.stmt != nil {
		c.stmt.Close()
	}
}

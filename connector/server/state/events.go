package state

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Event types the server emits. Webhook deliveries forwarded to the
// platform are TypeWebhookDelivery.
const (
	TypeConnected       = "connection.connected"    // an authorization completed
	TypeRefreshed       = "connection.refreshed"    // a refresh succeeded after failing
	TypeNeedsReauth     = "connection.needs_reauth" // only a person can fix it now
	TypeRevoked         = "connection.revoked"      // the grant was revoked at the provider
	TypeDeleted         = "connection.deleted"
	TypeWebhookDelivery = "webhook.delivery" // a provider's delivery, forwarded
)

// Delivery states of an event.
const (
	DeliveryPending   = "pending"   // queued or being retried
	DeliveryDelivered = "delivered" // the tenant's URL answered 2xx
	DeliveryDead      = "dead"      // given up: a dead letter, replayable
)

// Event is something that happened to a tenant's connection (or a webhook
// delivery for the tenant), to be sent to the tenant's event URL. It is
// stored with its delivery job in one transaction; the worker of package
// events delivers it at least once, in order per connection, with ID as
// the idempotency id (the webhook-id header).
type Event struct {
	ID         string // "evt_" + random; set by AppendEvent
	Tenant     string
	Connection string // "" when a webhook delivery matched no connection
	Type       string // one of the Type constants
	// Key de-duplicates: a second event of the tenant with the same Key is
	// not stored again (a provider's delivery id, say). "" never collides.
	Key string
	// Data is the payload (a JSON value, at most MaxEventData bytes). It is
	// sealed at rest: webhook bodies are tenant data.
	Data    json.RawMessage
	Created time.Time // set by AppendEvent

	// Delivery is where the event's delivery stands; AppendEvent ignores it.
	Delivery Delivery
}

// Delivery is the delivery state of an event.
type Delivery struct {
	Status      string    // DeliveryPending, DeliveryDelivered or DeliveryDead
	Attempts    int       // attempts so far, over every replay
	LastStatus  int       // the HTTP status of the last attempt; 0 for none or a network error
	LastError   string    // why the last attempt failed; never a secret
	NextAttempt time.Time // when pending
	Delivered   time.Time // when delivered
}

// String leaves the data out: it may be a provider's webhook body.
func (e Event) String() string {
	return fmt.Sprintf("event{id=%s tenant=%s connection=%s type=%s}", e.ID, e.Tenant, e.Connection, e.Type)
}

// Format keeps every verb on String.
func (e Event) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(e.String())) }

// MaxEventData caps an event's payload (a forwarded webhook body).
const MaxEventData = 1 << 20

var eventType = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

func eventAD(id string) []byte { return []byte("server_events\x00" + id) }

var eventMigrations = []migration{
	{100, "events, their delivery jobs and the tenants' event endpoints", []string{
		`CREATE TABLE server_events (
	id          TEXT PRIMARY KEY,
	tenant      TEXT NOT NULL REFERENCES server_tenants (id),
	connection  TEXT NOT NULL,
	seq         BIGINT NOT NULL,
	type        TEXT NOT NULL,
	dkey        TEXT NOT NULL,
	data_sealed {bytes} NOT NULL,
	created     BIGINT NOT NULL,
	status      TEXT NOT NULL,
	attempts    BIGINT NOT NULL,
	last_status BIGINT NOT NULL,
	last_error  TEXT NOT NULL,
	delivered   BIGINT NOT NULL
)`,
		`CREATE UNIQUE INDEX server_events_key ON server_events (tenant, dkey) WHERE dkey <> ''`,
		`CREATE INDEX server_events_tenant ON server_events (tenant, created, id)`,
		`CREATE INDEX server_events_connection ON server_events (tenant, connection, created, id)`,
		// One row per (tenant, connection): appending an event updates it,
		// which serialises the appends of one connection, so its events'
		// sequence numbers are in commit order.
		`CREATE TABLE server_event_streams (
	tenant     TEXT NOT NULL,
	connection TEXT NOT NULL,
	last_seq   BIGINT NOT NULL,
	PRIMARY KEY (tenant, connection)
)`,
		// Jobs are the undelivered events: pending ones (queued, retrying,
		// leased by a worker) and dead letters. A delivered event's job is
		// deleted, so the queue stays as small as the backlog.
		`CREATE TABLE server_event_jobs (
	event_id    TEXT PRIMARY KEY REFERENCES server_events (id),
	tenant      TEXT NOT NULL,
	connection  TEXT NOT NULL,
	seq         BIGINT NOT NULL,
	state       TEXT NOT NULL,
	attempts    BIGINT NOT NULL,
	since       BIGINT NOT NULL,
	next_run    BIGINT NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_until BIGINT NOT NULL
)`,
		`CREATE INDEX server_event_jobs_stream ON server_event_jobs (tenant, connection, state, seq)`,
		`CREATE INDEX server_event_jobs_due ON server_event_jobs (state, next_run)`,
		`CREATE TABLE server_event_endpoints (
	tenant          TEXT PRIMARY KEY REFERENCES server_tenants (id),
	url             TEXT NOT NULL,
	secret_sealed   {bytes} NOT NULL,
	previous_sealed {bytes} NOT NULL,
	previous_until  BIGINT NOT NULL,
	secret_created  BIGINT NOT NULL,
	created         BIGINT NOT NULL,
	updated         BIGINT NOT NULL
)`,
		// A connection whose last refresh failed transiently: the next
		// successful refresh emits connection.refreshed.
		`CREATE TABLE server_refresh_failures (
	tenant     TEXT NOT NULL,
	connection TEXT NOT NULL,
	since      BIGINT NOT NULL,
	reason     TEXT NOT NULL,
	PRIMARY KEY (tenant, connection)
)`,
	}},
	// The retry budget runs from an event's first attempt, not from its
	// append: an event queued behind a failing head of its connection
	// would otherwise find its budget spent when its turn came. A job
	// already tried keeps counting from its append (or replay).
	{101, "an event's retry budget starts at its first attempt", []string{
		`ALTER TABLE server_event_jobs ADD COLUMN first_attempt BIGINT NOT NULL DEFAULT 0`,
		`UPDATE server_event_jobs SET first_attempt = since WHERE attempts > 0`,
	}},
}

// ErrInvalidEvent: an event AppendEvent refuses (no tenant, a bad type,
// data that is not JSON or too large).
var ErrInvalidEvent = errors.New("invalid event")

func checkEvent(e Event) error {
	switch {
	case e.Tenant == "":
		return fmt.Errorf("%w: no tenant", ErrInvalidEvent)
	case !eventType.MatchString(e.Type) || len(e.Type) > 64:
		return fmt.Errorf("%w: type %q is not dotted lower-case words such as connection.connected", ErrInvalidEvent, e.Type)
	case len(e.Key) > 256:
		return fmt.Errorf("%w: key is %d bytes; at most 256", ErrInvalidEvent, len(e.Key))
	case len(e.Connection) > 128:
		return fmt.Errorf("%w: connection id is %d bytes; at most 128", ErrInvalidEvent, len(e.Connection))
	case len(e.Data) > MaxEventData:
		return fmt.Errorf("%w: data is %d bytes; at most %d", ErrInvalidEvent, len(e.Data), MaxEventData)
	case len(e.Data) > 0 && !json.Valid(e.Data):
		return fmt.Errorf("%w: data is not valid JSON", ErrInvalidEvent)
	}
	return nil
}

// AppendEvent stores e durably, with its delivery job, in one transaction,
// and returns it with its ID and Created set. When the tenant already has an
// event with e's Key (not ""), nothing is stored and the stored event is
// returned with duplicate true.
func (d *DB) AppendEvent(ctx context.Context, e Event) (stored Event, duplicate bool, err error) {
	if err := checkEvent(e); err != nil {
		return Event{}, false, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	if e.Key != "" {
		if old, err := d.eventByKey(ctx, e.Tenant, e.Key); err == nil {
			return old, true, nil
		} else if !errors.Is(err, ErrNotFound) {
			return Event{}, false, err
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Event{}, false, fmt.Errorf("state: storing event: %w", err)
	}
	defer tx.Rollback()
	inserted, err := d.insertEvent(ctx, tx, &e)
	if err != nil {
		return Event{}, false, err
	}
	if !inserted {
		// Another replica stored the same key meanwhile.
		tx.Rollback()
		old, err := d.eventByKey(ctx, e.Tenant, e.Key)
		return old, err == nil, err
	}
	if err := tx.Commit(); err != nil {
		return Event{}, false, fmt.Errorf("state: storing event: %w", err)
	}
	return e, false, nil
}

// insertEvent appends e (checked, with its Data) and its job in tx, setting
// its ID and Created; inserted is false when the tenant has an event with
// e's Key.
func (d *DB) insertEvent(ctx context.Context, tx *sql.Tx, e *Event) (inserted bool, err error) {
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	}
	e.ID = newID("evt")
	now := d.Now().UTC()
	e.Created = now
	e.Delivery = Delivery{Status: DeliveryPending, NextAttempt: now}
	sealed, err := d.sealer.Seal(e.Data, eventAD(e.ID))
	if err != nil {
		return false, err
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, d.q(`INSERT INTO server_event_streams (tenant, connection, last_seq) VALUES (?, ?, 1)
		ON CONFLICT (tenant, connection) DO UPDATE SET last_seq = server_event_streams.last_seq + 1
		RETURNING last_seq`), e.Tenant, e.Connection).Scan(&seq); err != nil {
		return false, fmt.Errorf("state: storing event: %w", err)
	}
	res, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_events (id, tenant, connection, seq, type, dkey, data_sealed, created, status, attempts, last_status, last_error, delivered)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0)
		ON CONFLICT (tenant, dkey) WHERE dkey <> '' DO NOTHING`),
		e.ID, e.Tenant, e.Connection, seq, e.Type, e.Key, sealed, nanos(now), DeliveryPending)
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") || strings.Contains(err.Error(), "SQLSTATE 23503") {
			return false, fmt.Errorf("%w: tenant %s: %w", ErrInvalidEvent, e.Tenant, ErrNotFound)
		}
		return false, fmt.Errorf("state: storing event: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_event_jobs (event_id, tenant, connection, seq, state, attempts, since, next_run, lease_owner, lease_until)
		VALUES (?, ?, ?, ?, ?, 0, ?, ?, '', 0)`), e.ID, e.Tenant, e.Connection, seq, jobPending, nanos(now), nanos(now)); err != nil {
		return false, fmt.Errorf("state: storing event: %w", err)
	}
	return true, nil
}

// Job states; a delivered event has no job.
const (
	jobPending = "pending"
	jobDead    = "dead"
)

const eventCols = `e.id, e.tenant, e.connection, e.type, e.dkey, e.data_sealed, e.created, e.status, e.attempts, e.last_status, e.last_error, e.delivered, COALESCE(j.next_run, 0)`

const eventFrom = ` FROM server_events e LEFT JOIN server_event_jobs j ON j.event_id = e.id`

func (d *DB) scanEvent(sc interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var sealed []byte
	var created, delivered, next int64
	if err := sc.Scan(&e.ID, &e.Tenant, &e.Connection, &e.Type, &e.Key, &sealed, &created, &e.Delivery.Status,
		&e.Delivery.Attempts, &e.Delivery.LastStatus, &e.Delivery.LastError, &delivered, &next); err != nil {
		return Event{}, err
	}
	plain, err := d.sealer.Open(sealed, eventAD(e.ID))
	if err != nil {
		return Event{}, fmt.Errorf("state: the data of event %s cannot be decrypted (wrong key, or the row was altered): %w", e.ID, err)
	}
	e.Data = plain
	e.Created, e.Delivery.Delivered = fromNanos(created), fromNanos(delivered)
	if e.Delivery.Status == DeliveryPending {
		e.Delivery.NextAttempt = fromNanos(next)
	}
	return e, nil
}

func (d *DB) eventByKey(ctx context.Context, tenant, key string) (Event, error) {
	// dkey <> '' lets the planner use the partial unique index (neither
	// SQLite nor PostgreSQL's generic plan infers it from dkey = ?):
	// without it every lookup scans the tenant's events.
	e, err := d.scanEvent(d.db.QueryRowContext(ctx, d.q(`SELECT `+eventCols+eventFrom+` WHERE e.tenant = ? AND e.dkey = ? AND e.dkey <> ''`), tenant, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, fmt.Errorf("event with key %s: %w", key, ErrNotFound)
	}
	return e, err
}

// GetEvent returns the tenant's event id.
func (d *DB) GetEvent(ctx context.Context, tenant, id string) (Event, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	e, err := d.scanEvent(d.db.QueryRowContext(ctx, d.q(`SELECT `+eventCols+eventFrom+` WHERE e.tenant = ? AND e.id = ?`), tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	return e, err
}

// EventFilter narrows ListEvents; zero fields match everything.
type EventFilter struct {
	Type   string
	Status string // DeliveryPending, DeliveryDelivered, DeliveryDead
	After  string // a cursor from an earlier page
	Limit  int    // 1..MaxLimit; 0 means DefaultLimit
}

// encodeEventCursor makes a position in the newest-first order opaque.
func encodeEventCursor(e Event) string {
	return base64.RawURLEncoding.EncodeToString([]byte("e1:" + strconv.FormatInt(nanos(e.Created), 10) + ":" + e.ID))
}

func decodeEventCursor(s string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 200 || !strings.HasPrefix(string(b), "e1:") {
		return 0, "", ErrCursor
	}
	ts, id, ok := strings.Cut(string(b[3:]), ":")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", ErrCursor
	}
	return n, id, nil
}

// ListEvents lists the tenant's events, newest first, one page at a time:
// every connection's when connection is "", else that connection's. next is
// the cursor of the following page, "" at the end.
func (d *DB) ListEvents(ctx context.Context, tenant, connection string, f EventFilter) (page []Event, next string, err error) {
	query := `SELECT ` + eventCols + eventFrom + ` WHERE e.tenant = ?`
	args := []any{tenant}
	if connection != "" {
		query += ` AND e.connection = ?`
		args = append(args, connection)
	}
	if f.Type != "" {
		query += ` AND e.type = ?`
		args = append(args, f.Type)
	}
	if f.Status != "" {
		query += ` AND e.status = ?`
		args = append(args, f.Status)
	}
	if f.After != "" {
		ts, id, err := decodeEventCursor(f.After)
		if err != nil {
			return nil, "", err
		}
		query += ` AND (e.created < ? OR (e.created = ? AND e.id < ?))`
		args = append(args, ts, ts, id)
	}
	query += ` ORDER BY e.created DESC, e.id DESC`
	return queryPage(ctx, d, "events", query, args, pageLimit(f.Limit), d.scanEvent, encodeEventCursor)
}

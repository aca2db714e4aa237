// Package scheduler keeps a server's connections alive while nobody uses
// them: it refreshes access tokens shortly before they expire and refresh
// tokens that the provider lets die when unused, as each definition's
// auth.oauth.keep_alive asks.
//
// It owns the refresh schedule (state.DB's server_refresh_schedule: one row
// per connection with its next due time, failed attempts and lease) and the
// decision of when a connection is due (Window, Due) and what a failure
// means (Backoff.Retry). It owns no refresh: every refresh goes through the
// connection's connector.Source, the engine's protocol (lock, re-read,
// in-flight marker, compare-and-swap), so a token that traffic refreshed
// meanwhile is found fresh under the lock and only rescheduled.
//
// A Scheduler runs on every replica. The due rows are claimed through the
// database in batches, each claim a lease: on PostgreSQL with FOR UPDATE
// SKIP LOCKED, so replicas take disjoint batches, and a replica that dies
// leaves rows that are claimed again when their lease runs out; on SQLite
// one worker. New and changed connections (re-authorized, their status
// moved) are found through the change stamp triggers give them
// (state.DB.DiscoverSchedules: connections stamped after the last stamp
// seen, by index), so no handler needs to tell the scheduler anything and
// an idle replica's discovery costs an index probe, not a connection count.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// Policy is what the scheduler needs to know of a connection's definition.
type Policy struct {
	KeepAlive definitions.KeepAlive
	Grant     definitions.GrantType
	// Margin caps the engine's refresh margin for the definition's
	// connections (connector.Source.Margin).
	Margin time.Duration
}

// Engines is the scheduler's view of the server: the keep-alive policy of
// a definition, looked up in memory for every due row, and a connection's
// engine, built (and cached by the server) only when a refresh is due, so
// that looking at an idle connection costs no engine. The server
// implements it with its per-connection cache, so the scheduler refreshes
// through the very Source the API uses.
type Engines interface {
	// KeepAlivePolicy is the policy of the definition's connections; an
	// error when the definition is no longer loaded.
	KeepAlivePolicy(definition string) (Policy, error)
	// KeepAliveSource is the connection's token source (nil: no OAuth); a
	// connection that no longer exists is state.ErrNotFound.
	KeepAliveSource(ctx context.Context, tenant, connection string) (*connector.Source, error)
}

// Config is what a Scheduler needs; State, Tokens and Engines are required.
type Config struct {
	State   *state.DB
	Tokens  store.Store
	Engines Engines
	// OnRecorded is told after each state.DB.RecordRefresh the scheduler
	// made (a refresh's outcome, with the event a transition appends:
	// connection.needs_reauth once per transition, connection.refreshed
	// after failing), to wake the event delivery worker and count failures.
	OnRecorded func(ctx context.Context, emitted bool, err error)
	// OnRefresh is told of every refresh the scheduler sent (err nil when it
	// worked), for the server's refresh counters.
	OnRefresh func(err error)

	// Owner names this replica in leases; default host-pid-random.
	Owner string
	// Workers is how many refreshes run at once: default 8 on PostgreSQL,
	// 1 on SQLite (one writer anyway).
	Workers int
	// Batch is how many due rows one claim takes; default 4 × Workers.
	Batch int
	// Lease is how long a claimed row is this replica's; after it, another
	// replica may claim it. Default 5 minutes: longer than a batch takes,
	// and a lease that runs out is safe anyway (the engine's lock and
	// re-read stop a second refresh).
	Lease time.Duration
	// Poll is the longest sleep between claims; default 2 s.
	Poll time.Duration
	// Discover is how often connections created or changed since the last
	// look are asked for (one index probe when none did); default 5 s.
	Discover time.Duration
	// Recheck is when a parked row (no keep-alive, no token yet, needs
	// re-authorization) is looked at again even if its connection did not
	// change; default 6 hours.
	Recheck time.Duration
	Backoff Backoff // default DefaultBackoff
	Now     func() time.Time
	Logger  *slog.Logger
	// Registerer gets the scheduler's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Scheduler refreshes due connections until its Run's context ends.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	runs    *prometheus.CounterVec
	counts  [numOutcomes]atomic.Int64
	running atomic.Bool
}

// Outcomes of looking at one due row.
const (
	Refreshed   = "refreshed"             // the token was refreshed
	Fresh       = "fresh"                 // due, but found refreshed meanwhile (traffic): rescheduled
	NotDue      = "not_due"               // looked at (new or changed) and scheduled
	Retry       = "retry"                 // failed transiently; retried after a backoff
	NeedsReauth = "needs_reauthorization" // failed for good; marked and reported
	Parked      = "parked"                // nothing to do: no keep-alive, no token yet, needs re-authorization
	Gone        = "gone"                  // the connection was deleted
	numOutcomes = 7
)

var outcomes = [numOutcomes]string{Refreshed, Fresh, NotDue, Retry, NeedsReauth, Parked, Gone}

// New checks cfg and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.State == nil || cfg.Tokens == nil || cfg.Engines == nil {
		return nil, errors.New("scheduler: State, Tokens and Engines are required")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.Owner = host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
		if cfg.State.Kind() == state.SQLite {
			cfg.Workers = 1
		}
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 4 * cfg.Workers
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Discover <= 0 {
		cfg.Discover = 5 * time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 6 * time.Hour
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scheduler{cfg: cfg, log: cfg.Logger.With("component", "scheduler", "owner", cfg.Owner)}
	if cfg.Registerer != nil {
		s.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_scheduler_runs_total",
			Help: "Due connections the refresh scheduler looked at, by outcome (refreshed, fresh, not_due, retry, needs_reauthorization, parked, gone).",
		}, []string{"outcome"})
		backlog := &backlogCollector{s: s,
			due:   prometheus.NewDesc("connector_scheduler_due", "Connections due for a keep-alive refresh and not yet done (the backlog).", nil, nil),
			state: prometheus.NewDesc("connector_scheduler_connections", "Connections in the refresh schedule, by state.", []string{"state"}, nil)}
		for _, c := range []prometheus.Collector{s.runs, backlog} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("scheduler: registering metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Stats counts this Scheduler's outcomes since New, by outcome.
func (s *Scheduler) Stats() map[string]int64 {
	out := make(map[string]int64, numOutcomes)
	for i, o := range outcomes {
		out[o] = s.counts[i].Load()
	}
	return out
}

func (s *Scheduler) count(outcome string) {
	for i, o := range outcomes {
		if o == outcome {
			s.counts[i].Add(1)
		}
	}
	if s.runs != nil {
		s.runs.WithLabelValues(outcome).Inc()
	}
}

// discoverLimit bounds the rows one discovery query adds.
const discoverLimit = 5000

// Run claims and refreshes due connections until ctx ends, then returns
// once the refreshes it started have finished and been recorded (a
// refresh sent to the provider is never abandoned half-way). Run it on
// every replica; it returns an error only when called twice at once.
//
// Discovery runs beside the claims, in a goroutine of its own: it asks
// the database for connections changed since the last change it saw (an
// index probe when nothing changed), and wakes the claims when it added
// or woke rows.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run is already running")
	}
	defer s.running.Store(false)
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.discoverLoop(ctx, wake) })
	defer wg.Wait()
	for ctx.Err() == nil {
		now := s.cfg.Now()
		batch, err := s.cfg.State.ClaimSchedules(ctx, s.cfg.Owner, now, s.cfg.Lease, s.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "claiming due refreshes", "error", err)
			}
			sleep(ctx, s.cfg.Poll, nil)
			continue
		}
		s.work(ctx, batch)
		if len(batch) == s.cfg.Batch {
			continue // more are due
		}
		wait := s.cfg.Poll
		if due, ok, err := s.cfg.State.NextScheduleDue(ctx, s.cfg.Now()); err == nil && ok {
			wait = min(wait, max(due.Sub(s.cfg.Now()), 0))
		}
		sleep(ctx, wait, wake)
	}
	return nil
}

// discoverLoop follows the connections' changes every Discover, from a
// watermark of its own: the first pass (from -1) looks at every
// connection once, later ones at what changed since.
func (s *Scheduler) discoverLoop(ctx context.Context, wake chan<- struct{}) {
	after := int64(-1)
	for ctx.Err() == nil {
		for ctx.Err() == nil {
			next, n, err := s.cfg.State.DiscoverSchedules(ctx, s.cfg.Now(), after, discoverLimit)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "discovering connections to schedule", "error", err)
				}
				break
			}
			if n > 0 {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
			if next == after {
				break // caught up
			}
			after = next
		}
		sleep(ctx, s.cfg.Discover, nil)
	}
}

// work looks at the batch with the configured number of workers. Rows left
// when ctx ends are released as they were.
func (s *Scheduler) work(ctx context.Context, batch []state.Schedule) {
	rows := make(chan state.Schedule)
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, len(batch)) {
		wg.Go(func() {
			for row := range rows {
				// Recording the outcome must outlive ctx: a refresh that
				// was carried out and not recorded would be done again.
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), state.DefaultTimeout)
				var o state.ScheduleOutcome
				if ctx.Err() != nil {
					o = state.ScheduleOutcome{Due: row.Due, State: row.State, Attempts: row.Attempts, LastError: row.LastError}
				} else {
					var outcome string
					o, outcome = s.process(ctx, row)
					s.count(outcome)
					if outcome == Gone {
						_ = s.cfg.State.DropSchedule(fctx, row.Connection)
						cancel()
						continue
					}
				}
				if err := s.cfg.State.FinishSchedule(fctx, s.cfg.Owner, row, o); err != nil {
					s.log.WarnContext(fctx, "recording a refresh", "connection", row.Connection, "error", err)
				}
				cancel()
			}
		})
	}
	for _, row := range batch {
		rows <- row
	}
	close(rows)
	wg.Wait()
}

// process decides and, when due, refreshes one connection.
func (s *Scheduler) process(ctx context.Context, row state.Schedule) (state.ScheduleOutcome, string) {
	now := s.cfg.Now()
	park := func(st, msg string) (state.ScheduleOutcome, string) {
		return state.ScheduleOutcome{Due: now.Add(s.cfg.Recheck), State: st, LastError: msg}, Parked
	}
	retry := func(err error) (state.ScheduleOutcome, string) {
		attempt := row.Attempts + 1
		if row.State != state.ScheduleRetrying {
			attempt = 1
		}
		_, wait := s.cfg.Backoff.Retry(err, attempt)
		s.log.WarnContext(ctx, "keep-alive refresh failed; retrying", "tenant", row.Tenant, "connection", row.Connection, "attempt", attempt, "retry_in", wait, "error", err)
		return state.ScheduleOutcome{Due: now.Add(wait), State: state.ScheduleRetrying, Attempts: attempt, LastError: err.Error()}, Retry
	}
	pol, err := s.cfg.Engines.KeepAlivePolicy(row.Definition)
	if err != nil {
		return park(state.ScheduleOff, err.Error())
	}
	if !pol.KeepAlive.Enabled() {
		return park(state.ScheduleOff, "")
	}
	rec, err := s.cfg.Tokens.Get(ctx, row.Connection)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return park(state.ScheduleWaiting, "")
	case err != nil:
		return retry(err)
	case rec.Status == store.StatusNeedsReauth:
		// Whoever found out (traffic, or an earlier look whose record
		// failed) may not have recorded it: recording again is a no-op
		// once recorded, and the event is appended once per transition.
		o := s.needsReauth(ctx, row, rec.Reason)
		if o.State == state.ScheduleNeedsReauth {
			return o, Parked
		}
		return o, NeedsReauth
	case rec.Token.RefreshToken == "" && pol.Grant != definitions.GrantClientCredentials:
		return park(state.ScheduleOff, "the connection has no refresh token to keep alive")
	}
	start, end, ok := Window(rec.Token, pol.KeepAlive, pol.Margin)
	if !ok {
		return park(state.ScheduleOff, "")
	}
	if due := Due(row.Connection, now, start, end); due.After(now) {
		return state.ScheduleOutcome{Due: due, State: state.ScheduleScheduled}, NotDue
	}
	src, err := s.cfg.Engines.KeepAliveSource(ctx, row.Tenant, row.Connection)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return state.ScheduleOutcome{}, Gone
	case err != nil:
		return retry(err)
	case src == nil:
		return park(state.ScheduleOff, "")
	}
	margin := src.Margin
	t, refreshed, err := src.RefreshUnless(ctx, func(stored token.Token) bool {
		s, _, ok := Window(stored, pol.KeepAlive, margin)
		return !ok || s.After(now) // refreshed since: its window has not opened
	})
	if refreshed || err != nil {
		if s.cfg.OnRefresh != nil {
			s.cfg.OnRefresh(err)
		}
	}
	if err != nil {
		if permanent, _ := s.cfg.Backoff.Retry(err, 1); permanent {
			reason := err.Error()
			var nr *connector.NeedsReauthError
			if errors.As(err, &nr) {
				reason = nr.Reason
			}
			return s.needsReauth(ctx, row, reason), NeedsReauth
		}
		s.record(ctx, row, state.RefreshFailed, err.Error())
		return retry(err)
	}
	if refreshed {
		// Clears a failure marker and sends connection.refreshed when the
		// connection had been failing; nothing otherwise.
		s.record(ctx, row, state.RefreshOK, "")
	}
	o := state.ScheduleOutcome{State: state.ScheduleScheduled, Due: now.Add(s.cfg.Recheck)}
	if start, end, ok := Window(t, pol.KeepAlive, margin); ok {
		o.Due = Due(row.Connection, now, start, end)
	}
	if refreshed {
		o.Refreshed = now
		return o, Refreshed
	}
	return o, Fresh
}

// record notes a refresh's outcome, with the event a transition calls for.
func (s *Scheduler) record(ctx context.Context, row state.Schedule, o state.RefreshOutcome, reason string) error {
	_, emitted, err := s.cfg.State.RecordRefresh(ctx, row.Tenant, row.Connection, o, reason)
	if s.cfg.OnRecorded != nil {
		s.cfg.OnRecorded(ctx, emitted, err)
	}
	if errors.Is(err, state.ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}

// needsReauth marks the connection needs_reauthorization with the reason;
// state.DB.RecordRefresh appends connection.needs_reauth in the same
// transaction, once per transition however many replicas and requests
// find out. The row then waits for a new authorization; when recording
// failed, it is tried again soon.
func (s *Scheduler) needsReauth(ctx context.Context, row state.Schedule, reason string) state.ScheduleOutcome {
	now := s.cfg.Now()
	if err := s.record(ctx, row, state.RefreshNeedsReauth, reason); err != nil {
		s.log.WarnContext(ctx, "recording that a connection needs authorizing again", "connection", row.Connection, "error", err)
		return state.ScheduleOutcome{Due: now.Add(s.cfg.Poll), State: state.ScheduleReporting, LastError: reason}
	}
	if row.State != state.ScheduleNeedsReauth {
		s.log.InfoContext(ctx, "connection needs authorizing again", "tenant", row.Tenant, "connection", row.Connection, "reason", reason)
	}
	return state.ScheduleOutcome{Due: now.Add(s.cfg.Recheck), State: state.ScheduleNeedsReauth, LastError: reason}
}

// sleep waits d, or less when ctx ends or wake is signalled (nil: never).
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// backlogCollector reads the schedule at scrape time, from the database
// every replica shares.
type backlogCollector struct {
	s          *Scheduler
	due, state *prometheus.Desc
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.due; ch <- c.state }
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	byState, due, err := c.s.cfg.State.ScheduleCounts(ctx, c.s.cfg.Now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.due, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(due))
	for _, st := range []string{state.ScheduleNew, state.ScheduleScheduled, state.ScheduleRetrying, state.ScheduleOff, state.ScheduleWaiting, state.ScheduleNeedsReauth, state.ScheduleReporting} {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(byState[st]), st)
	}
}

package events

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// Payload is the JSON body of every event sent to a tenant's URL.
type Payload struct {
	ID         string          `json:"id"`                   // the idempotency id; also the webhook-id header
	Type       string          `json:"type"`                 // connection.connected, webhook.delivery, ...
	Connection string          `json:"connection,omitempty"` // the connection's id in the API
	Occurred   time.Time       `json:"occurred"`
	Data       json.RawMessage `json:"data"` // status, reason, ...; a webhook delivery's body
}

// Body is the body sent for e.
func Body(e state.Event) []byte {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(Payload{ID: e.ID, Type: e.Type, Connection: e.Connection, Occurred: e.Created.UTC(), Data: data})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Defaults of a Worker's zero fields.
const (
	DefaultConcurrency    = 8
	DefaultLease          = time.Minute
	DefaultPoll           = time.Second
	DefaultAttemptTimeout = 15 * time.Second
	// MaxResponseRead is how much of an answer's body is read (and
	// discarded, so the connection can be reused); the rest is not.
	MaxResponseRead = 64 << 10
)

// Worker delivers the events of every tenant from the state database. Run
// it on every replica: workers share the queue through the database, each
// claiming with a lease, so every event is delivered by one of them (at
// least once: a replica killed after sending but before recording an
// attempt leaves the event to be sent again after its lease).
type Worker struct {
	DB *state.DB
	// Policy decides retries; the zero value means DefaultPolicy.
	Policy Policy
	// AllowPrivate lets deliveries reach loopback and private addresses
	// (tests, a platform inside the same network).
	AllowPrivate bool
	// Transport sends the requests; nil means Transport(AllowPrivate).
	// Whatever it is, redirects are not followed.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil: slog.Default()
	Metrics   *Metrics     // nil: nothing counted
	// Concurrency is how many connections' events are delivered at once.
	Concurrency int
	// Lease is how long a claimed job is this worker's; it must exceed
	// AttemptTimeout by a margin for the database writes.
	Lease          time.Duration
	Poll           time.Duration // how often to look for due jobs when idle
	AttemptTimeout time.Duration // bounds each attempt, the answer's body included
	// Wake, when set, prompts a look for jobs before the next poll (the
	// server nudges it when an event is appended on this replica).
	Wake <-chan struct{}
	// ID names the worker in leases; "" means a random one.
	ID string
	// Retention is how long delivered events and dead letters are kept;
	// 0 means state.DefaultEventRetention. The purge runs every
	// PurgeEvery (0: DefaultPurgeEvery) on one replica at a time.
	Retention  time.Duration
	PurgeEvery time.Duration

	client *http.Client
}

func (w *Worker) defaults() {
	if w.Policy.Base == 0 {
		w.Policy = DefaultPolicy
	}
	if w.Transport == nil {
		w.Transport = Transport(w.AllowPrivate)
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.Concurrency <= 0 {
		w.Concurrency = DefaultConcurrency
	}
	if w.AttemptTimeout <= 0 {
		w.AttemptTimeout = DefaultAttemptTimeout
	}
	if w.Lease <= 0 {
		w.Lease = max(DefaultLease, 2*w.AttemptTimeout)
	}
	if w.Poll <= 0 {
		w.Poll = DefaultPoll
	}
	if w.Retention <= 0 {
		w.Retention = state.DefaultEventRetention
	}
	if w.PurgeEvery <= 0 {
		w.PurgeEvery = DefaultPurgeEvery
	}
	if w.ID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		w.ID = "wrk_" + hex.EncodeToString(b)
	}
	w.client = &http.Client{
		Transport:     w.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Run delivers events until ctx ends, then waits for the attempts in
// flight to end (they are cancelled with ctx and released for another
// worker, not counted). It returns ctx's error.
func (w *Worker) Run(ctx context.Context) error {
	if w.DB == nil {
		return errors.New("events: the worker has no database")
	}
	w.defaults()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.purgeLoop(ctx)
	}()
	done := make(chan struct{}, w.Concurrency)
	inflight := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if free := w.Concurrency - inflight; free > 0 && ctx.Err() == nil {
			jobs, err := w.DB.ClaimJobs(ctx, w.ID, free, w.Lease)
			if err != nil && ctx.Err() == nil {
				w.Logger.Error("events: claiming jobs", "error", err)
			}
			for _, j := range jobs {
				inflight++
				wg.Add(1)
				go func() {
					defer wg.Done()
					// The connection's next event follows in this goroutine,
					// claimed in the transaction that recorded this one.
					for next := &j; next != nil; {
						next = w.deliver(ctx, *next)
					}
					done <- struct{}{}
				}()
			}
		}
		timer.Reset(w.Poll)
		select {
		case <-ctx.Done():
			for ; inflight > 0; inflight-- {
				<-done
			}
			return ctx.Err()
		case <-done:
			inflight--
		case <-w.Wake:
		case <-timer.C:
		}
	}
}

// deliver makes one attempt at j and records its outcome; when j is done
// with (delivered or dead-lettered) it returns its connection's next job,
// if due, claimed in the same transaction.
func (w *Worker) deliver(ctx context.Context, j state.Job) *state.Job {
	a := w.attempt(ctx, j)
	// Recording outlives ctx: an attempt that got an answer is recorded
	// even when the worker is stopping.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ctx.Err() != nil && a.Status == 0 {
		// Cut short by shutdown: not the receiver's fault, not an attempt.
		if err := w.DB.ReleaseJob(rctx, w.ID, j.Event.ID, time.Now()); err != nil {
			w.Logger.Warn("events: releasing a job", "event", j.Event.ID, "error", err)
		}
		return nil
	}
	d := w.Policy.Decide(a)
	o := state.Outcome{Delivered: d.Delivered, Dead: !d.Delivered && !d.Retry, HTTPStatus: a.Status, Error: d.Reason}
	if d.Retry {
		o.NextRun = a.Now.Add(d.Delay)
	}
	lease := w.Lease
	if ctx.Err() != nil {
		lease = 0 // stopping: claim nothing more
	}
	next, err := w.DB.FinishAndClaimNext(rctx, w.ID, j.Event.ID, o, lease)
	log := w.Logger.With("event", j.Event.ID, "type", j.Event.Type, "tenant", j.Event.Tenant, "connection", j.Event.Connection, "attempt", a.N, "status", a.Status)
	switch {
	case errors.Is(err, state.ErrLeaseLost):
		log.Warn("events: the lease expired during the attempt; another worker has the event")
		return nil
	case err != nil:
		log.Error("events: recording an attempt", "error", err)
		return nil
	}
	switch {
	case d.Delivered:
		w.Metrics.count(outcomeDelivered)
		log.Info("events: delivered")
	case d.Retry:
		w.Metrics.count(outcomeFailed)
		log.Info("events: attempt failed; retrying", "reason", d.Reason, "retry_in", d.Delay.Round(time.Millisecond))
	default:
		w.Metrics.count(outcomeDead)
		log.Warn("events: dead-lettered", "reason", d.Reason)
	}
	return next
}

// attempt sends j's event once to its tenant's URL.
// a is a named result so that the deferred stamp reaches the caller: the
// policy counts the backoff and the retry budget from a.Now.
func (w *Worker) attempt(ctx context.Context, j state.Job) (a Attempt) {
	a = Attempt{N: j.Attempts + 1, Since: j.Since}
	defer func() { a.Now = w.DB.Now() }()
	ep, err := w.DB.Endpoint(ctx, j.Event.Tenant)
	if errors.Is(err, state.ErrNotFound) {
		a.NoEndpoint = true
		return a
	}
	if err != nil {
		a.Err = fmt.Errorf("reading the event URL: %w", err)
		return a
	}
	body := Body(j.Event)
	ctx, cancel := context.WithTimeout(ctx, w.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		a.Err, a.Refused = fmt.Errorf("%w: %v", ErrDestination, err), true
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "connector-events/1")
	if err := SetHeaders(req.Header, ep.Secrets, j.Event.ID, time.Now(), body); err != nil {
		a.Err = err
		return a
	}
	resp, err := w.client.Do(req)
	if err != nil {
		a.Err, a.Refused = scrub(err, ep.URL), errors.Is(err, ErrDestination)
		return a
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseRead))
	a.Status, a.RetryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	return a
}

// scrub names a failed request without its URL's query, which may carry
// a token of the platform's.
func scrub(err error, raw string) error {
	var ue *urlError
	if errors.As(err, &ue) {
		return fmt.Errorf("POST %s: %w", redactURL(raw), ue.Err)
	}
	return err
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
)

// SecretGrace is how long a rotated signing secret keeps signing events
// beside the new one, so that a receiver can switch without a gap.
const SecretGrace = 24 * time.Hour

func (s *Server) eventRoutes() {
	admin := access{state.ScopeAdmin}
	s.handle("GET /v1/event-endpoint", admin, s.getEndpoint)
	s.handle("PUT /v1/event-endpoint", admin, s.putEndpoint)
	s.handle("DELETE /v1/event-endpoint", admin, s.deleteEndpoint)
	s.handle("POST /v1/event-endpoint/rotate-secret", admin, s.rotateEndpointSecret)
	s.handle("GET /v1/events", admin, s.listEvents)
	s.handle("GET /v1/events/{id}", admin, s.getEvent)
	s.handle("GET /v1/dead-letters", admin, s.listDeadLetters)
	s.handle("POST /v1/dead-letters/{id}/replay", admin, s.replayDeadLetter)
	s.handle("POST /v1/dead-letters/replay", admin, s.replayConnection)
}

// EventWorker returns a delivery worker for this server's database, with
// the server's private-address setting, logger and metrics, woken when
// this server appends an event. Run it (on every replica) with Run, or use
// RunWorkers; adjust its fields first if need be.
func (s *Server) EventWorker() *events.Worker {
	return &events.Worker{DB: s.cfg.State, AllowPrivate: s.cfg.AllowPrivate, Logger: s.log, Metrics: s.events.worker, Wake: s.events.wake, Retention: s.cfg.EventRetention}
}

// RunWorkers runs the server's background work, the event delivery
// worker, until ctx ends. A platform mounting the server in its own mux
// starts it beside its HTTP server.
func (s *Server) RunWorkers(ctx context.Context) error {
	err := s.EventWorker().Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type endpointView struct {
	URL           string    `json:"url"`
	Secret        string    `json:"secret,omitempty"` // shown once: on creation and rotation
	SecretCreated time.Time `json:"secret_created"`
	// PreviousSecretValidUntil: after a rotation, until when the previous
	// secret also signs.
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until,omitempty"`
	Created                  time.Time  `json:"created"`
	Updated                  time.Time  `json:"updated"`
}

func viewEndpoint(ep state.Endpoint) endpointView {
	return endpointView{URL: ep.URL, SecretCreated: ep.SecretCreated, Created: ep.Created, Updated: ep.Updated}
}

// endpointFailed writes the problem for err, from reading or changing the
// tenant's event endpoint, and says whether there was one.
func (s *Server) endpointFailed(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, state.ErrNotFound):
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "", "no event endpoint is set; PUT /v1/event-endpoint with {\"url\": \"https://…\"}"))
	default:
		writeProblem(w, r, s.stateProblem(r, err, "", ""))
	}
	return true
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request, p state.Principal) {
	ep, err := s.cfg.State.Endpoint(r.Context(), p.Tenant)
	if s.endpointFailed(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, viewEndpoint(ep))
}

type endpointRequest struct {
	URL string `json:"url"`
	// Secret, when given, is the signing secret to use instead of a new
	// one (a platform keeping the secret its receiver already has).
	Secret string `json:"secret"`
}

type endpointRotateRequest struct {
	Secret string `json:"secret"`
}

// secretProblem is the answer to a secret of the wrong form, or nil.
func secretProblem(secret string) *Problem {
	if err := state.CheckEndpointSecret(secret); err != nil {
		return invalid([]FieldProblem{{Field: "secret", Detail: "secret: " + err.Error() +
			"; leave secret out and the server makes one (shown once)"}})
	}
	return nil
}

// putEndpoint sets the tenant's event URL; the first time, it makes the
// signing secret and shows it (201), never again. A secret given is used
// instead (and not shown): only when the endpoint is made, since an
// existing endpoint's secret changes by rotation.
func (s *Server) putEndpoint(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req endpointRequest
	if !readJSON(w, r, &req) || !required(w, r, "url", req.URL, "url is required: where the server POSTs the tenant's events, such as https://platform.example.com/connector-events") {
		return
	}
	if err := events.CheckURL(r.Context(), req.URL, s.cfg.AllowPrivate); err != nil {
		writeProblem(w, r, invalid([]FieldProblem{{Field: "url", Detail: err.Error()}}))
		return
	}
	secret := events.NewSecret()
	if req.Secret != "" {
		if prob := secretProblem(req.Secret); prob != nil {
			writeProblem(w, r, prob)
			return
		}
		if _, err := s.cfg.State.Endpoint(r.Context(), p.Tenant); err == nil {
			writeProblem(w, r, problem(http.StatusConflict, "secret-exists", "secret",
				"the event endpoint already has a signing secret; change it with POST /v1/event-endpoint/rotate-secret {\"secret\": …}, or leave secret out to change the url only"))
			return
		}
		secret = req.Secret
	}
	ep, created, err := s.cfg.State.SetEndpoint(r.Context(), p.Tenant, req.URL, secret)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", ""))
		return
	}
	v := viewEndpoint(ep)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		if req.Secret == "" {
			v.Secret = secret
		}
	}
	s.nudge() // events waiting for a URL can go now
	writeJSON(w, status, v)
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request, p state.Principal) {
	err := s.cfg.State.DeleteEndpoint(r.Context(), p.Tenant)
	if s.endpointFailed(w, r, err) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rotateEndpointSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req endpointRotateRequest
	if !readJSON(w, r, &req) {
		return
	}
	secret := events.NewSecret()
	if req.Secret != "" {
		if prob := secretProblem(req.Secret); prob != nil {
			writeProblem(w, r, prob)
			return
		}
		secret = req.Secret
	}
	ep, err := s.cfg.State.RotateEndpointSecret(r.Context(), p.Tenant, secret, SecretGrace)
	if s.endpointFailed(w, r, err) {
		return
	}
	v := viewEndpoint(ep)
	if req.Secret == "" {
		v.Secret = secret // made here: shown this once
	}
	until := ep.SecretCreated.Add(SecretGrace)
	v.PreviousSecretValidUntil = &until
	writeJSON(w, http.StatusOK, v)
}

type deliveryView struct {
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastStatus  int        `json:"last_status,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Delivered   *time.Time `json:"delivered,omitempty"`
}

type eventView struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Connection string          `json:"connection,omitempty"`
	Occurred   time.Time       `json:"occurred"`
	Data       json.RawMessage `json:"data"`
	Delivery   deliveryView    `json:"delivery"`
}

func viewEvent(e state.Event) eventView {
	v := eventView{ID: e.ID, Type: e.Type, Connection: e.Connection, Occurred: e.Created, Data: e.Data,
		Delivery: deliveryView{Status: e.Delivery.Status, Attempts: e.Delivery.Attempts, LastStatus: e.Delivery.LastStatus, LastError: e.Delivery.LastError}}
	if t := e.Delivery.NextAttempt; !t.IsZero() && e.Delivery.Status == state.DeliveryPending {
		v.Delivery.NextAttempt = &t
	}
	if t := e.Delivery.Delivered; !t.IsZero() {
		v.Delivery.Delivered = &t
	}
	return v
}

// eventQuery reads the listing parameters allowed (and refuses others).
func eventQuery(r *http.Request, allowed ...string) (connection string, f state.EventFilter, prob *Problem) {
	q := r.URL.Query()
	ok := map[string]bool{"connection": true, "cursor": true, "limit": true}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range q {
		if !ok[k] {
			return "", f, problem(http.StatusBadRequest, "unknown-parameter", k, "unknown query parameter %q", k)
		}
	}
	f = state.EventFilter{Type: q.Get("type"), Status: q.Get("status"), After: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > state.MaxLimit {
			return "", f, problem(http.StatusBadRequest, "invalid-parameter", "limit", "limit must be a whole number from 1 to %d", state.MaxLimit)
		}
		f.Limit = n
	}
	switch f.Status {
	case "", state.DeliveryPending, state.DeliveryDelivered, state.DeliveryDead:
	default:
		return "", f, problem(http.StatusBadRequest, "invalid-parameter", "status", "status must be pending, delivered or dead")
	}
	return q.Get("connection"), f, nil
}

func (s *Server) writeEvents(w http.ResponseWriter, r *http.Request, p state.Principal, connection string, f state.EventFilter, key string) {
	page, next, err := s.cfg.State.ListEvents(r.Context(), p.Tenant, connection, f)
	if errors.Is(err, state.ErrCursor) {
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-parameter", "cursor", "%v", err))
		return
	} else if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", ""))
		return
	}
	out := make([]eventView, 0, len(page))
	for _, e := range page {
		out = append(out, viewEvent(e))
	}
	body := map[string]any{key: out}
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// listEvents lists the tenant's events, newest first, with their delivery.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, p state.Principal) {
	conn, f, prob := eventQuery(r, "type", "status")
	if prob != nil {
		writeProblem(w, r, prob)
		return
	}
	s.writeEvents(w, r, p, conn, f, "events")
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, p state.Principal) {
	e, err := s.cfg.State.GetEvent(r.Context(), p.Tenant, r.PathValue("id"))
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "event"))
		return
	}
	writeJSON(w, http.StatusOK, viewEvent(e))
}

// listDeadLetters lists the events given up on, newest first.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request, p state.Principal) {
	conn, f, prob := eventQuery(r, "type")
	if prob != nil {
		writeProblem(w, r, prob)
		return
	}
	f.Status = state.DeliveryDead
	s.writeEvents(w, r, p, conn, f, "dead_letters")
}

func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request, p state.Principal) {
	if !readJSON(w, r, &struct{}{}) {
		return
	}
	id := r.PathValue("id")
	if err := s.cfg.State.ReplayEvent(r.Context(), p.Tenant, id); err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "dead letter"))
		return
	}
	s.nudge()
	writeJSON(w, http.StatusAccepted, map[string]any{"replayed": 1})
}

type replayRequest struct {
	Connection string `json:"connection"`
}

// replayConnection queues every dead letter of one connection again.
func (s *Server) replayConnection(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req replayRequest
	if !readJSON(w, r, &req) || !required(w, r, "connection", req.Connection, "connection is required: the id of the connection whose dead letters to replay (replay one event with POST /v1/dead-letters/{id}/replay)") {
		return
	}
	n, err := s.cfg.State.ReplayConnection(r.Context(), p.Tenant, req.Connection)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", ""))
		return
	}
	if n == 0 {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "connection", "connection %q has no dead letters", req.Connection))
		return
	}
	s.nudge()
	writeJSON(w, http.StatusAccepted, map[string]any{"replayed": n})
}

package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
)

// emitTimeout bounds storing an event: a handler emits after its work is
// done, and must not hang on a slow database.
const emitTimeout = 5 * time.Second

// eventsPart is the server's side of the events: the counter of events
// that could not be stored, and the wake-up of the local delivery worker.
type eventsPart struct {
	worker     *events.Metrics
	emitErrors prometheus.Counter
	wake       chan struct{} // buffered 1: a nudge, never a queue
}

func newEventsPart(reg *prometheus.Registry, db *state.DB) (*eventsPart, error) {
	p := &eventsPart{
		emitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_events_emit_errors_total", Help: "Events the server could not store (each is logged).",
		}),
		wake: make(chan struct{}, 1),
	}
	if err := reg.Register(p.emitErrors); err != nil {
		return nil, err
	}
	var err error
	if p.worker, err = events.NewMetrics(reg, db); err != nil {
		return nil, err
	}
	return p, nil
}

// emit stores e (its Tenant, Connection, Type and Data set by the caller)
// for delivery to the tenant's event URL, and wakes the local worker.
// It outlives the request's cancellation (the thing happened) but not
// emitTimeout; a failure is logged and counted, never returned: the
// request that caused the event has succeeded.
func (s *Server) emit(ctx context.Context, e state.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emitTimeout)
	defer cancel()
	stored, dup, err := s.cfg.State.AppendEvent(ctx, e)
	if err != nil {
		s.events.emitErrors.Inc()
		s.log.ErrorContext(ctx, "storing an event", "type", e.Type, "tenant", e.Tenant, "connection", e.Connection, "error", err)
		return
	}
	if !dup {
		s.log.DebugContext(ctx, "event", "id", stored.ID, "type", stored.Type, "tenant", stored.Tenant, "connection", stored.Connection)
		s.nudge()
	}
}

// nudge wakes the local delivery worker, which otherwise polls.
func (s *Server) nudge() {
	select {
	case s.events.wake <- struct{}{}:
	default:
	}
}

// recorded is what the handlers call after a state transition method that
// may have appended an event (RecordConnected, RecordRefresh): it logs and
// counts a failure, and nudges the worker when an event was appended.
func (s *Server) recorded(ctx context.Context, what string, emitted bool, err error) {
	if err != nil {
		s.events.emitErrors.Inc()
		s.log.ErrorContext(ctx, "recording a connection change", "change", what, "error", err)
		return
	}
	if emitted {
		s.nudge()
	}
}

// connectionData is the payload of connection.revoked and .deleted.
type connectionData struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// emitConnection emits an event of the tenant's connection with its
// status and, when not "", a reason.
func (s *Server) emitConnection(ctx context.Context, tenant, conn, typ, reason string) {
	status := map[string]string{state.TypeRevoked: "revoked", state.TypeDeleted: "deleted"}[typ]
	data, _ := json.Marshal(connectionData{Status: status, Reason: reason})
	s.emit(ctx, state.Event{Tenant: tenant, Connection: conn, Type: typ, Data: data})
}

// noteRefresh records how a refresh went; a transition emits its event.
func (s *Server) noteRefresh(ctx context.Context, tenant, conn string, o state.RefreshOutcome, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emitTimeout)
	defer cancel()
	_, emitted, err := s.cfg.State.RecordRefresh(ctx, tenant, conn, o, reason)
	s.recorded(ctx, "refresh", emitted, err)
}

// noteReauth records that the connection needs re-authorization; the first
// time (per transition, on any replica) emits connection.needs_reauth.
func (s *Server) noteReauth(ctx context.Context, tenant, conn, reason string) {
	s.noteRefresh(ctx, tenant, conn, state.RefreshNeedsReauth, reason)
}

// noteReauthOf is noteReauth for the connection of the request being
// served (its tenant and connection as set for the log line).
func (s *Server) noteReauthOf(r *http.Request, reason string) {
	ri, ok := r.Context().Value(ctxKey{}).(*reqInfo)
	if !ok || ri.tenant == "" || ri.connection == "" {
		return
	}
	s.noteReauth(r.Context(), ri.tenant, ri.connection, reason)
}

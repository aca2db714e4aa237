package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// The admin pages' views of the events (package state's ListEvents,
// ReplayEvent): a connection's history, and the tenant's dead letters with
// a replay button.

type adminEvent struct {
	ID, Type, Connection string
	Details, Delivery    string
	Attempts             int
	LastError            string
	Created              time.Time
}

// eventDetails says what a connection event's data holds (its status and
// reason); a webhook delivery's data is the provider's body, tenant data
// that the page does not show.
func eventDetails(e state.Event) string {
	if e.Type == state.TypeWebhookDelivery {
		return "a provider's webhook delivery"
	}
	var d struct {
		Status         string `json:"status"`
		Reason         string `json:"reason"`
		PreviousStatus string `json:"previous_status"`
		PreviousReason string `json:"previous_reason"`
	}
	if json.Unmarshal(e.Data, &d) != nil {
		return ""
	}
	out := d.Status
	if d.Reason != "" {
		out += ": " + d.Reason
	}
	if d.PreviousStatus != "" {
		out += " (was " + d.PreviousStatus
		if d.PreviousReason != "" {
			out += ": " + d.PreviousReason
		}
		out += ")"
	}
	return out
}

func adminEventView(e state.Event) adminEvent {
	v := adminEvent{ID: e.ID, Type: e.Type, Connection: e.Connection, Details: eventDetails(e), Created: e.Created,
		Attempts: e.Delivery.Attempts, LastError: e.Delivery.LastError}
	v.Delivery = e.Delivery.Status
	switch e.Delivery.Status {
	case state.DeliveryDelivered:
		v.Delivery += " " + e.Delivery.Delivered.UTC().Format("2006-01-02 15:04:05 UTC")
	case state.DeliveryPending:
		if e.Delivery.Attempts > 0 {
			v.Delivery += ", " + strconv.Itoa(e.Delivery.Attempts) + " attempts"
		}
	}
	if e.Delivery.LastError != "" && e.Delivery.Status != state.DeliveryDelivered {
		v.Delivery += " (" + e.Delivery.LastError + ")"
	}
	return v
}

// adminEvents is the connection's latest events, newest first.
func (s *Server) adminEvents(ctx context.Context, tenant, conn string) []adminEvent {
	page, _, err := s.cfg.State.ListEvents(ctx, tenant, conn, state.EventFilter{Limit: 50})
	if err != nil {
		s.log.ErrorContext(ctx, "listing events", "error", err)
		return nil
	}
	out := make([]adminEvent, 0, len(page))
	for _, e := range page {
		out = append(out, adminEventView(e))
	}
	return out
}

type adminDeadPage struct {
	pageBase
	Notice string
	Events []adminEvent
	Next   string
}

func (s *Server) adminDeadLetters(w http.ResponseWriter, r *http.Request) {
	a, ok := s.adminSession(r)
	if !ok {
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
		return
	}
	f := state.EventFilter{Status: state.DeliveryDead, After: r.URL.Query().Get("cursor"), Limit: 50}
	page, next, err := s.cfg.State.ListEvents(r.Context(), a.Tenant, "", f)
	if errors.Is(err, state.ErrCursor) {
		f.After = ""
		page, next, err = s.cfg.State.ListEvents(r.Context(), a.Tenant, "", f)
	}
	if err != nil {
		s.pageUnavailable(w, r, err)
		return
	}
	p := adminDeadPage{pageBase: pageBase{Title: "Dead letters: " + a.Tenant, Wide: true, Asset: assetPath, Admin: bar(a)}, Notice: notices[r.URL.Query().Get("done")], Next: next}
	for _, e := range page {
		p.Events = append(p.Events, adminEventView(e))
	}
	s.render(w, r, http.StatusOK, "admin_dead_letters", p)
}

func (s *Server) adminReplay(w http.ResponseWriter, r *http.Request) {
	a, ok := s.adminForm(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	err := s.cfg.State.ReplayEvent(r.Context(), a.Tenant, id)
	switch {
	case errors.Is(err, state.ErrNotFound):
		s.message(w, r, http.StatusNotFound, messagePage{pageBase: pageBase{Admin: bar(a)}, Heading: "No such dead letter",
			Paragraphs: []string{"There is no dead letter " + id + ": it may have been replayed already."}, Link: "/admin/dead-letters", LinkText: "Dead letters"})
	case err != nil:
		s.pageUnavailable(w, r, err)
	default:
		s.nudge()
		http.Redirect(w, r, "/admin/dead-letters?done=replayed", http.StatusSeeOther)
	}
}

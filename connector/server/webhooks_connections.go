package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

// A connection's own webhook receiver, POST
// /v1/webhooks/{definition}/connections/{connection}: for providers that
// give each account its own endpoint and signing secret (Stripe: one
// endpoint per account, each with its whsec_ secret), and for connections
// of definitions without OAuth, which have no OAuth client whose receiver
// could take their deliveries. The connection's webhook secret verifies
// them; every delivery is attributed to the connection, stored before the
// 200 and de-duplicated per connection, exactly as the OAuth client's
// receiver does (acceptDelivery).

func (s *Server) connectionWebhookRoutes() {
	s.handle("POST /v1/webhooks/{definition}/connections/{connection}", access{}, s.receiveConnectionWebhook)
	write, read := access{state.ScopeConnectionsWrite}, access{state.ScopeConnectionsRead}
	s.handle("PUT /v1/connections/{id}/webhook-secret", write, s.setConnectionWebhookSecret)
	s.handle("GET /v1/connections/{id}/webhook-secret", read, s.getConnectionWebhookSecret)
	s.handle("DELETE /v1/connections/{id}/webhook-secret", write, s.deleteConnectionWebhookSecret)
}

func (s *Server) receiveConnectionWebhook(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	def, count := s.receiverDefinition(w, r)
	if def == nil {
		return
	}
	id := r.PathValue("connection")
	rcv, err := s.cfg.State.ConnectionWebhookReceiver(r.Context(), id)
	if err == nil && rcv.Client.Definition != def.Name {
		err = state.ErrNotFound
	}
	if s.receiverFailed(w, r, err, count, problem(http.StatusNotFound, "no-receiver", "connection", "no webhook receiver %s/connections/%s: no connection %q of that definition", def.Name, id, id)) {
		return
	}
	secrets := rcv.Secrets
	if sig := def.Webhooks.Signature; sig != nil && sig.Secret == definitions.SecretClient {
		secrets = nil // keyed with the OAuth client's secret; a connection without OAuth has none
		if !rcv.Client.Implicit {
			secrets = [][]byte{[]byte(rcv.Client.Secret)}
		}
	}
	s.acceptDelivery(w, r, def, deliveryTarget{client: rcv.Client, connection: rcv.Connection.ID, secrets: secrets, scope: rcv.Connection.ID}, count)
}

type connectionWebhookSecretView struct {
	Connection    string     `json:"connection"`
	ReceiverURL   string     `json:"receiver_url"`
	Verification  string     `json:"verification"`
	Created       time.Time  `json:"created"`
	Updated       time.Time  `json:"updated"`
	PreviousUntil *time.Time `json:"previous_valid_until,omitempty"`
	// Secret is set only in the answer that generated it.
	Secret string `json:"secret,omitempty"`
}

func (s *Server) viewConnectionWebhookSecret(e *engine, ws state.WebhookSecret) connectionWebhookSecretView {
	v := connectionWebhookSecretView{
		Connection: e.conn.ID, Created: ws.Created, Updated: ws.Updated,
		ReceiverURL:  strings.TrimSuffix(s.cfg.PublicURL, "/") + "/v1/webhooks/" + e.def.Name + "/connections/" + e.conn.ID,
		Verification: s.verification(e.def.Name, !e.client.Implicit),
	}
	if !ws.PreviousUntil.IsZero() {
		v.PreviousUntil = &ws.PreviousUntil
	}
	return v
}

// setConnectionWebhookSecret sets the secret (given, or generated and
// shown once) that verifies the connection's own receiver;
// keep_previous_for keeps the replaced one verifying during a rotation.
func (s *Server) setConnectionWebhookSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	secret, keep, generated, ok := webhookSecretInput(w, r)
	if !ok {
		return
	}
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	if e.def.Webhooks == nil {
		writeProblem(w, r, problem(http.StatusConflict, "no-webhooks", "id", "connection %s is of definition %s, which declares no webhooks section: nothing would verify its deliveries", e.conn.ID, e.def.Name))
		return
	}
	ws, err := s.cfg.State.SetConnectionWebhookSecret(r.Context(), p.Tenant, e.conn.ID, secret, keep)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
		return
	}
	v := s.viewConnectionWebhookSecret(e, ws)
	if generated {
		v.Secret = secret
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getConnectionWebhookSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	ws, err := s.cfg.State.ConnectionWebhookSecretOf(r.Context(), p.Tenant, e.conn.ID)
	if errors.Is(err, state.ErrNotFound) {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "id", "connection %q has no webhook secret; set one with PUT", e.conn.ID))
		return
	} else if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
		return
	}
	writeJSON(w, http.StatusOK, s.viewConnectionWebhookSecret(e, ws))
}

func (s *Server) deleteConnectionWebhookSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	if err := s.cfg.State.DeleteConnectionWebhookSecret(r.Context(), p.Tenant, e.conn.ID); errors.Is(err, state.ErrNotFound) {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "id", "connection %q has no webhook secret", e.conn.ID))
		return
	} else if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/server/webhooks"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// The webhook receiver: a provider's delivery is verified as its
// definition's webhooks section says, attributed to a connection of the
// OAuth client named in its URL, and stored as a webhook.delivery event
// (which the events worker forwards to the tenant) before it is answered.
// Nothing calls the provider while it waits.

// maxDeliveryBody caps a delivery's body: the event holding it (state.
// MaxEventData) needs a little room for the envelope around it.
const maxDeliveryBody = state.MaxEventData - 16<<10

// storeTimeout bounds storing a delivery: Procore gives a receiver 5 s, and
// an answer that comes too late is retried anyway.
const storeTimeout = 4 * time.Second

// Webhook secrets set through the API.
const (
	maxWebhookSecret = 1024
	minWebhookSecret = 16
	maxKeepPrevious  = 30 * 24 * time.Hour
)

type webhooksPart struct {
	deliveries *prometheus.CounterVec
}

func newWebhooksPart(reg *prometheus.Registry) (*webhooksPart, error) {
	p := &webhooksPart{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_webhook_deliveries_total",
		Help: "Webhook deliveries received, by definition and outcome (stored, duplicate, unattributed, unverified, invalid, too_large, unavailable).",
	}, []string{"definition", "outcome"})}
	if err := reg.Register(p.deliveries); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Server) webhookRoutes() {
	s.handle("POST /v1/webhooks/{definition}/{client}", access{}, s.receiveWebhook)
	admin := access{state.ScopeAdmin}
	s.handle("PUT /v1/oauth-clients/{id}/webhook-secret", admin, s.setWebhookSecret)
	s.handle("GET /v1/oauth-clients/{id}/webhook-secret", admin, s.getWebhookSecret)
	s.handle("DELETE /v1/oauth-clients/{id}/webhook-secret", admin, s.deleteWebhookSecret)
	s.connectionWebhookRoutes() // webhooks_connections.go
}

// deliveryData is a webhook.delivery event's payload: the provider's body
// as it was sent (compacted), and what the receiver read from it.
type deliveryData struct {
	Definition  string          `json:"definition"`
	OAuthClient string          `json:"oauth_client,omitempty"` // none for a connection without OAuth
	DeliveryID  string          `json:"delivery_id"`
	EventType   string          `json:"event_type,omitempty"`
	Attributed  *attribution    `json:"attributed_by,omitempty"`
	Received    time.Time       `json:"received"`
	Body        json.RawMessage `json:"body"`
}

type attribution struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

func (s *Server) receiveWebhook(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	def, count := s.receiverDefinition(w, r)
	if def == nil {
		return
	}
	clientID := r.PathValue("client")
	rcv, err := s.cfg.State.WebhookReceiver(r.Context(), clientID)
	if err == nil && rcv.Client.Definition != def.Name {
		err = state.ErrNotFound
	}
	if s.receiverFailed(w, r, err, count, problem(http.StatusNotFound, "no-receiver", "client", "no webhook receiver %s/%s: no OAuth client %q of that definition", def.Name, clientID, clientID)) {
		return
	}
	cl := rcv.Client
	secrets := rcv.Secrets
	if sig := def.Webhooks.Signature; sig != nil && sig.Secret == definitions.SecretClient {
		secrets = [][]byte{[]byte(cl.Secret)}
	}
	s.acceptDelivery(w, r, def, deliveryTarget{client: cl, secrets: secrets, scope: cl.ID}, count)
}

// receiverDefinition returns the loaded definition a delivery's URL names
// and the counter of its outcomes, or answers 404 and returns nil when no
// loaded definition of that name declares webhooks. The metric's label is
// the loaded definition's name, never the URL's: a stranger posting to
// made-up names would otherwise add a time series each.
func (s *Server) receiverDefinition(w http.ResponseWriter, r *http.Request) (*definitions.Definition, func(outcome string)) {
	name := r.PathValue("definition")
	def, ok := s.cfg.Definitions.Get(name)
	if !ok || def.Webhooks == nil {
		label := "(unknown)"
		if ok {
			label = def.Name
		}
		s.webhooks.deliveries.WithLabelValues(label, "invalid").Inc()
		writeProblem(w, r, problem(http.StatusNotFound, "no-receiver", "definition", "no webhook receiver for definition %q: it is not loaded, or declares no webhooks section", name))
		return nil, nil
	}
	return def, func(outcome string) { s.webhooks.deliveries.WithLabelValues(def.Name, outcome).Inc() }
}

// receiverFailed answers the error of looking a receiver up, if any:
// notFound for state.ErrNotFound, 503 for the rest; it reports whether it
// answered.
func (s *Server) receiverFailed(w http.ResponseWriter, r *http.Request, err error, count func(string), notFound *Problem) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, state.ErrNotFound):
		count("invalid")
		writeProblem(w, r, notFound)
	default:
		count("unavailable")
		writeProblem(w, r, s.unavailable(r, err))
	}
	return true
}

// deliveryTarget is whom a verified delivery is for: an OAuth client's
// receiver (connection "": attributed by the definition's attribute) or a
// connection's own (attributed to it).
type deliveryTarget struct {
	client     state.Client // the tenant's OAuth client, or a connection's implicit one
	connection string
	secrets    [][]byte
	scope      string // what the de-duplication key is unique within: the client or the connection
}

// acceptDelivery reads, verifies, parses, attributes and stores one
// delivery for t, then answers: nothing is stored before verification,
// and nothing is answered 2xx before it is stored.
func (s *Server) acceptDelivery(w http.ResponseWriter, r *http.Request, def *definitions.Definition, t deliveryTarget, count func(string)) {
	cl := t.client
	setTenant(r, cl.Tenant)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDeliveryBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		count("too_large")
		writeProblem(w, r, problem(http.StatusRequestEntityTooLarge, "body-too-large", "", "the delivery is larger than %d bytes", int64(maxDeliveryBody)))
		return
	} else if err != nil {
		count("invalid")
		writeProblem(w, r, problem(http.StatusBadRequest, "unreadable-body", "", "the delivery's body could not be read: %v", err))
		return
	}

	if err := webhooks.Verify(def.Webhooks, r.Header, body, t.secrets, s.cfg.State.Now()); err != nil {
		count("unverified")
		var ve *webhooks.VerifyError
		reason := "unverified"
		if errors.As(err, &ve) {
			reason = ve.Reason
		}
		// Nothing is stored: a delivery that does not verify may be anyone's.
		if t.connection != "" {
			s.log.WarnContext(r.Context(), "webhook delivery refused", "definition", def.Name, "connection", t.connection, "reason", reason)
		} else {
			s.log.WarnContext(r.Context(), "webhook delivery refused", "definition", def.Name, "oauth_client", cl.ID, "reason", reason)
		}
		p := problem(http.StatusUnauthorized, "unverified-delivery", "", "%v", err)
		if ve != nil {
			p.Field = ve.Header
		}
		writeProblem(w, r, p)
		return
	}
	d, err := webhooks.Parse(def.Webhooks, r.Header, body)
	if err != nil {
		count("invalid")
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-delivery", "", "%v", err))
		return
	}
	data := deliveryData{Definition: def.Name, DeliveryID: d.ID, EventType: d.EventType, Received: s.cfg.State.Now().UTC(), Body: body}
	if !cl.Implicit {
		data.OAuthClient = cl.ID
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	conn := t.connection
	if a := def.Webhooks.Attribute; conn == "" && a != nil && d.Attribute != "" {
		if conn, err = s.attribute(ctx, def, cl, a.Field, d.Attribute); err != nil {
			count("unavailable")
			writeProblem(w, r, s.unavailable(r, err))
			return
		}
		data.Attributed = &attribution{Field: a.Field, Value: d.Attribute}
	}
	setConnection(r, conn)
	payload, err := marshalDelivery(data)
	if err != nil {
		count("invalid")
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-delivery", "", "the delivery cannot be stored: %v", err))
		return
	}
	// The delivery id is the provider's, unique per client (or per
	// connection, for its own receiver): the key names the scope, so two
	// clients, connections or providers of one tenant never take each
	// other's deliveries for redeliveries.
	stored, dup, err := s.cfg.State.AppendEvent(ctx, state.Event{
		Tenant: cl.Tenant, Connection: conn, Type: state.TypeWebhookDelivery,
		Key: "webhook:" + t.scope + ":" + d.ID, Data: payload,
	})
	if err != nil {
		count("unavailable")
		writeProblem(w, r, s.unavailable(r, err))
		return
	}
	switch {
	case dup:
		count("duplicate")
	case conn == "":
		count("unattributed")
	default:
		count("stored")
	}
	if !dup {
		s.nudge()
	}
	if stored.Connection != "" {
		setConnection(r, stored.Connection)
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "duplicate": dup})
}

// maxLearnedBackfill bounds how many connections' token records one
// delivery reads to index their learned values (connections made before
// the index held them); the rest are indexed by the next deliveries.
const maxLearnedBackfill = 100

// attribute finds the connection of client whose field holds value: a
// field given when the connection was made, a value it learned when
// connecting (a realmId), or the field's default for a connection that
// left it unset.
func (s *Server) attribute(ctx context.Context, def *definitions.Definition, cl state.Client, field, value string) (string, error) {
	f, _ := def.Field(field)
	isDefault := f != nil && f.HasDefault && value == f.Default
	if f == nil || f.Learn == nil {
		return s.cfg.State.AttributeDelivery(ctx, cl.Tenant, cl.ID, field, value, isDefault)
	}
	id, err := s.cfg.State.AttributeDelivery(ctx, cl.Tenant, cl.ID, field, value, false)
	if id != "" || err != nil {
		return id, err
	}
	ids, err := s.cfg.State.UnindexedLearned(ctx, cl.Tenant, cl.ID, maxLearnedBackfill)
	if err != nil {
		return "", err
	}
	for _, cid := range ids {
		rec, err := s.cfg.Tokens.Get(ctx, cid)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		// Not connected yet (no record): indexed as having learned nothing;
		// its first token write indexes what it learns.
		if err := s.cfg.State.IndexLearned(ctx, cid, s.learnedValues(rec)); err != nil && !errors.Is(err, state.ErrNotFound) {
			return "", err
		}
	}
	return s.cfg.State.AttributeDelivery(ctx, cl.Tenant, cl.ID, field, value, isDefault)
}

func marshalDelivery(d deliveryData) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the body as the provider wrote it, not with \u003c
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// unavailable is the 503 for a database that failed: the provider retries.
func (s *Server) unavailable(r *http.Request, err error) *Problem {
	s.log.ErrorContext(r.Context(), "webhook delivery not stored", "error", err)
	return problem(http.StatusServiceUnavailable, "unavailable", "", "the delivery could not be stored; send it again")
}

type webhookSecretRequest struct {
	Secret          string `json:"secret"`
	Generate        bool   `json:"generate"`
	KeepPreviousFor string `json:"keep_previous_for"`
}

type webhookSecretView struct {
	OAuthClient   string     `json:"oauth_client"`
	ReceiverURL   string     `json:"receiver_url"`
	Verification  string     `json:"verification"`
	Created       time.Time  `json:"created"`
	Updated       time.Time  `json:"updated"`
	PreviousUntil *time.Time `json:"previous_valid_until,omitempty"`
	// Secret is set only in the answer that generated it.
	Secret string `json:"secret,omitempty"`
}

func (s *Server) viewWebhookSecret(cl state.Client, ws state.WebhookSecret) webhookSecretView {
	v := webhookSecretView{
		OAuthClient: cl.ID, Created: ws.Created, Updated: ws.Updated,
		ReceiverURL: strings.TrimSuffix(s.cfg.PublicURL, "/") + "/v1/webhooks/" + cl.Definition + "/" + cl.ID,
	}
	if !ws.PreviousUntil.IsZero() {
		v.PreviousUntil = &ws.PreviousUntil
	}
	v.Verification = s.verification(cl.Definition, true)
	return v
}

// verification says how the receiver verifies a definition's deliveries;
// clientSecret: whether the OAuth client's secret may key them (not for a
// connection of a definition without OAuth, which has none).
func (s *Server) verification(definition string, clientSecret bool) string {
	d, ok := s.cfg.Definitions.Get(definition)
	if !ok || d.Webhooks == nil {
		return "none: definition " + definition + " declares no webhooks"
	}
	switch w := d.Webhooks; {
	case w.SharedSecret != nil:
		return "shared secret in the " + w.SharedSecret.Header + " header"
	case w.Signature.Secret == definitions.SecretClient && clientSecret:
		return w.Signature.Algorithm + " signature in " + w.Signature.Header + ", keyed with the OAuth client's secret (this webhook secret is not used)"
	case w.Signature.Secret == definitions.SecretClient:
		return "none: definition " + definition + " keys its signatures with an OAuth client's secret, and this connection has none"
	default:
		return w.Signature.Algorithm + " signature in " + w.Signature.Header
	}
}

// webhookClient loads the OAuth client named by the path for p.
func (s *Server) webhookClient(w http.ResponseWriter, r *http.Request, p state.Principal) (state.Client, bool) {
	cl, err := s.cfg.State.Client(r.Context(), p.Tenant, r.PathValue("id"))
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return state.Client{}, false
	}
	return cl, true
}

// webhookSecretInput reads a PUT of a webhook secret: the secret given, or
// one generated (generated true: the answer shows it, once), and how long
// the replaced one keeps verifying. It writes the problem when the
// request is wrong.
func webhookSecretInput(w http.ResponseWriter, r *http.Request) (secret string, keep time.Duration, generated, ok bool) {
	var req webhookSecretRequest
	if prob := decodeJSON(w, r, maxJSONBody, &req); prob != nil {
		writeProblem(w, r, prob)
		return "", 0, false, false
	}
	var errs []FieldProblem
	switch {
	case req.Generate && req.Secret != "":
		errs = append(errs, FieldProblem{Field: "secret", Detail: "give secret or generate: true, not both"})
	case !req.Generate && (len(req.Secret) < minWebhookSecret || len(req.Secret) > maxWebhookSecret):
		errs = append(errs, FieldProblem{Field: "secret", Detail: "secret is required (16 to 1024 bytes: the provider's signing secret, or the value you give the provider), or ask for one with generate: true"})
	case strings.ContainsAny(req.Secret, "\r\n\x00"):
		errs = append(errs, FieldProblem{Field: "secret", Detail: "secret must not hold line breaks or NUL bytes: it may travel in a header"})
	}
	if req.KeepPreviousFor != "" {
		d, err := time.ParseDuration(req.KeepPreviousFor)
		if err != nil || d <= 0 || d > maxKeepPrevious {
			errs = append(errs, FieldProblem{Field: "keep_previous_for", Detail: "keep_previous_for must be a positive duration of at most 720h, such as 24h: how long the replaced secret still verifies deliveries"})
		}
		keep = d
	}
	if len(errs) > 0 {
		writeProblem(w, r, invalid(errs))
		return "", 0, false, false
	}
	secret = req.Secret
	if req.Generate {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret = "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	}
	return secret, keep, req.Generate, true
}

func (s *Server) setWebhookSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	secret, keep, generated, ok := webhookSecretInput(w, r)
	if !ok {
		return
	}
	cl, ok := s.webhookClient(w, r, p)
	if !ok {
		return
	}
	ws, err := s.cfg.State.SetWebhookSecret(r.Context(), p.Tenant, cl.ID, secret, keep)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return
	}
	v := s.viewWebhookSecret(cl, ws)
	if generated {
		v.Secret = secret
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getWebhookSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	cl, ok := s.webhookClient(w, r, p)
	if !ok {
		return
	}
	ws, err := s.cfg.State.WebhookSecretOf(r.Context(), p.Tenant, cl.ID)
	if errors.Is(err, state.ErrNotFound) {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "id", "OAuth client %q has no webhook secret; set one with PUT", cl.ID))
		return
	} else if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return
	}
	writeJSON(w, http.StatusOK, s.viewWebhookSecret(cl, ws))
}

func (s *Server) deleteWebhookSecret(w http.ResponseWriter, r *http.Request, p state.Principal) {
	cl, ok := s.webhookClient(w, r, p)
	if !ok {
		return
	}
	if err := s.cfg.State.DeleteWebhookSecret(r.Context(), p.Tenant, cl.ID); errors.Is(err, state.ErrNotFound) {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "id", "OAuth client %q has no webhook secret", cl.ID))
		return
	} else if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

package emulator

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hook is a webhook destination of a company. Its destination headers are
// sent with deliveries but never shown, since they usually hold a secret.
type hook struct {
	ID               int64     `json:"id"`
	OwnedByCompanyID int64     `json:"owned_by_company_id"`
	OwnedByProjectID *int64    `json:"owned_by_project_id"`
	APIVersion       string    `json:"api_version"`
	Namespace        string    `json:"namespace"`
	DestinationURL   string    `json:"destination_url"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`

	headers    map[string]string
	triggers   []*trigger
	deliveries []*delivery
}

type trigger struct {
	ID           int64     `json:"id"`
	ResourceName string    `json:"resource_name"`
	EventType    string    `json:"event_type"` // create, update, delete
	APIVersion   string    `json:"api_version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// delivery records one attempt to send an event to a hook.
type delivery struct {
	ID             int64           `json:"id"`
	EventID        int64           `json:"event_id"`
	Status         string          `json:"status"` // pending, successful, failed
	ResponseStatus *int            `json:"response_status"`
	Error          *string         `json:"error"`
	StartedAt      time.Time       `json:"started_at"`
	CompletedAt    *time.Time      `json:"completed_at"`
	Event          json.RawMessage `json:"event"` // the payload sent
}

// webhookEvent is the payload Procore's webhooks send in the v2 format.
type webhookEvent struct {
	ID           int64         `json:"id"`
	ULID         string        `json:"ulid"`
	Timestamp    time.Time     `json:"timestamp"`
	APIVersion   string        `json:"api_version"`
	CompanyID    int64         `json:"company_id"`
	ProjectID    *int64        `json:"project_id"`
	UserID       int64         `json:"user_id"`
	ResourceName string        `json:"resource_name"`
	ResourceID   int64         `json:"resource_id"`
	EventType    string        `json:"event_type"`
	Metadata     eventMetadata `json:"metadata"`
}

type eventMetadata struct {
	SourceUserID        int64   `json:"source_user_id"`
	SourceCompanyID     int64   `json:"source_company_id"`
	SourceProjectID     *int64  `json:"source_project_id"`
	SourceApplicationID string  `json:"source_application_id"`
	SourceOperationID   *string `json:"source_operation_id"`
}

// event is a change a handler made, for webhook deliveries.
type event struct {
	resource  string // Procore's resource name, e.g. "RFIs"
	id        int64
	projectID int64 // 0 for company-level resources
}

// event records that the handler created resource id.
func (req *apiRequest) event(resource string, id, projectID int64) {
	req.events = append(req.events, event{resource: resource, id: id, projectID: projectID})
}

// sending is a delivery to make once s.mu is released.
type sending struct {
	d       *delivery
	url     string
	headers map[string]string
}

// webhookTimeout is how long a receiver has to answer, as on Procore.
const webhookTimeout = 5 * time.Second

// queueEventsLocked records a delivery for every trigger of the company's
// hooks that req's events match, and returns those to send. Only loopback
// destinations are sent to; the others are recorded as failed.
func (s *Server) queueEventsLocked(req *apiRequest) []*sending {
	var out []*sending
	for _, ev := range req.events {
		var payload []byte
		var eventID int64
		for _, h := range s.data.hooks {
			if h.OwnedByCompanyID != req.companyID || !slices.ContainsFunc(h.triggers, func(t *trigger) bool {
				return strings.EqualFold(t.ResourceName, ev.resource) && t.EventType == "create"
			}) {
				continue
			}
			if payload == nil { // one event, the same id in every hook's delivery
				we := webhookEvent{
					ID: s.data.newID(kindEvent), ULID: newULID(req.now), Timestamp: req.now.UTC(), APIVersion: "v2",
					CompanyID: req.companyID, UserID: req.user.ID, ResourceName: ev.resource, ResourceID: ev.id,
					EventType: "create",
					Metadata:  eventMetadata{SourceUserID: req.user.ID, SourceCompanyID: req.companyID, SourceApplicationID: req.grant.clientID},
				}
				if ev.projectID != 0 {
					pid := ev.projectID
					we.ProjectID, we.Metadata.SourceProjectID = &pid, &pid
				}
				payload, eventID = mustJSON(we), we.ID
			}
			d := &delivery{ID: s.data.newID(kindDelivery), EventID: eventID, Status: "pending", StartedAt: req.now.UTC(), Event: payload}
			h.deliveries = append(h.deliveries, d)
			s.stats.WebhookDeliveries++
			if !loopbackDestination(h.DestinationURL) {
				msg := "not sent: the emulator delivers only to loopback destinations (127.0.0.1, [::1], localhost)"
				done := req.now.UTC()
				d.Status, d.Error, d.CompletedAt = "failed", &msg, &done
				continue
			}
			out = append(out, &sending{d: d, url: h.DestinationURL, headers: h.headers})
		}
	}
	return out
}

// deliver POSTs each queued delivery and records the outcome. s.mu must
// not be held: a receiver may call the emulator back.
func (s *Server) deliver(ctx context.Context, sends []*sending) {
	for _, snd := range sends {
		status, err := s.post(ctx, snd)
		done := s.now().UTC()
		s.mu.Lock()
		snd.d.CompletedAt = &done
		switch {
		case err != nil:
			msg := err.Error()
			snd.d.Status, snd.d.Error = "failed", &msg
		case status/100 == 2:
			snd.d.Status, snd.d.ResponseStatus = "successful", &status
		default:
			msg := fmt.Sprintf("the destination answered %d", status)
			snd.d.Status, snd.d.ResponseStatus, snd.d.Error = "failed", &status, &msg
		}
		s.mu.Unlock()
	}
}

func (s *Server) post(ctx context.Context, snd *sending) (int, error) {
	// The delivery belongs to the emulator, not to the API request that
	// caused it: it outlives a client that hangs up, but not the timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, snd.url, strings.NewReader(string(snd.d.Event)))
	if err != nil {
		return 0, err
	}
	for k, v := range snd.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Procore-Emulator-Webhooks")
	resp, err := s.hooks.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// newHookClient makes the client of webhook deliveries. Its dialer refuses
// any address that is not loopback, whatever a host name resolved to.
func newHookClient() *http.Client {
	d := &net.Dialer{
		Timeout: webhookTimeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return errors.New("emulator: webhook deliveries go to loopback addresses only, not " + address)
			}
			return nil
		},
	}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		Timeout:   webhookTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// loopbackDestination reports whether raw is an http(s) URL on a loopback host.
func loopbackDestination(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newULID returns a ULID: 48 bits of milliseconds and 80 random bits in
// Crockford's base32, as the ulid of Procore's events.
func newULID(t time.Time) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- { // 128 bits, 5 at a time from the right
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

// hookParam finds the {hook_id} hook of the request's company.
func (s *Server) hookParam(req *apiRequest) (*hook, apiReply, bool) {
	id, err := strconv.ParseInt(req.vars["hook_id"], 10, 64)
	if err == nil {
		for _, h := range s.data.hooks {
			if h.ID == id && h.OwnedByCompanyID == req.companyID {
				return h, apiReply{}, true
			}
		}
	}
	return nil, notFound("Webhook hook %s was not found in company %d.", req.vars["hook_id"], req.companyID), false
}

// GET /rest/v1.0/webhooks/hooks?company_id=N answers every hook at once, as Procore does.
func (s *Server) listHooks(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	out := []*hook{}
	for _, h := range s.data.hooks {
		if h.OwnedByCompanyID == req.companyID {
			out = append(out, h)
		}
	}
	return apiReply{status: http.StatusOK, body: out}
}

// GET /rest/v1.0/webhooks/hooks/{hook_id}?company_id=N
func (s *Server) getHook(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	h, rep, ok := s.hookParam(req)
	if !ok {
		return rep
	}
	return apiReply{status: http.StatusOK, body: h}
}

const hookExample = `{"company_id":N,"hook":{"api_version":"v2","namespace":"...","destination_url":"https://..."}}`

// POST /rest/v1.0/webhooks/hooks with {"company_id":N,"hook":{...}}
func (s *Server) createHook(req *apiRequest) apiReply {
	var in struct {
		CompanyID json.Number `json:"company_id"`
		Hook      *struct {
			APIVersion         string            `json:"api_version"`
			Namespace          string            `json:"namespace"`
			DestinationURL     string            `json:"destination_url"`
			DestinationHeaders map[string]string `json:"destination_headers"`
		} `json:"hook"`
	}
	if rep, ok := decodeBody(req, &in, hookExample); !ok {
		return rep
	}
	if rep, ok := req.bodyCompany(in.CompanyID); !ok {
		return rep
	}
	if in.Hook == nil {
		return missingParam("hook", hookExample)
	}
	h := in.Hook
	errs := map[string][]string{}
	if strings.TrimSpace(h.Namespace) == "" {
		errs["namespace"] = []string{"can't be blank"}
	}
	if h.DestinationURL == "" {
		errs["destination_url"] = []string{"can't be blank"}
	} else if u, err := url.Parse(h.DestinationURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs["destination_url"] = []string{"is invalid (use an http or https URL)"}
	}
	if h.APIVersion == "" {
		h.APIVersion = "v2"
	} else if h.APIVersion != "v2" && h.APIVersion != "v1.0" {
		errs["api_version"] = []string{"is not included in the list (v1.0, v2)"}
	}
	if len(errs) > 0 {
		return validationFailed(errs)
	}
	now := req.now.UTC().Truncate(time.Second)
	nh := &hook{
		ID: s.data.newID(kindHook), OwnedByCompanyID: req.companyID, APIVersion: h.APIVersion,
		Namespace: strings.TrimSpace(h.Namespace), DestinationURL: h.DestinationURL, CreatedAt: now, UpdatedAt: now,
		headers: h.DestinationHeaders,
	}
	s.data.hooks = append(s.data.hooks, nh)
	return apiReply{status: http.StatusCreated, body: nh}
}

// DELETE /rest/v1.0/webhooks/hooks/{hook_id}?company_id=N, with its triggers and deliveries.
func (s *Server) deleteHook(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	h, rep, ok := s.hookParam(req)
	if !ok {
		return rep
	}
	s.data.hooks = slices.DeleteFunc(s.data.hooks, func(x *hook) bool { return x == h })
	return apiReply{status: http.StatusNoContent}
}

// GET /rest/v1.0/webhooks/hooks/{hook_id}/triggers?company_id=N
func (s *Server) listTriggers(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	h, rep, ok := s.hookParam(req)
	if !ok {
		return rep
	}
	return apiReply{status: http.StatusOK, body: append([]*trigger{}, h.triggers...)}
}

const triggerExample = `{"company_id":N,"api_version":"v2","trigger":{"resource_name":"RFIs","event_type":"create"}}`

// POST /rest/v1.0/webhooks/hooks/{hook_id}/triggers with {"company_id":N,"api_version":"v2","trigger":{...}}
func (s *Server) createTrigger(req *apiRequest) apiReply {
	var in struct {
		CompanyID  json.Number `json:"company_id"`
		APIVersion string      `json:"api_version"`
		Trigger    *struct {
			ResourceName string `json:"resource_name"`
			EventType    string `json:"event_type"`
		} `json:"trigger"`
	}
	if rep, ok := decodeBody(req, &in, triggerExample); !ok {
		return rep
	}
	if rep, ok := req.bodyCompany(in.CompanyID); !ok {
		return rep
	}
	h, rep, ok := s.hookParam(req)
	if !ok {
		return rep
	}
	if in.Trigger == nil {
		return missingParam("trigger", triggerExample)
	}
	t := in.Trigger
	errs := map[string][]string{}
	if strings.TrimSpace(t.ResourceName) == "" {
		errs["resource_name"] = []string{"can't be blank"}
	}
	switch t.EventType {
	case "":
		errs["event_type"] = []string{"can't be blank"}
	case "create", "update", "delete":
		if slices.ContainsFunc(h.triggers, func(x *trigger) bool {
			return strings.EqualFold(x.ResourceName, strings.TrimSpace(t.ResourceName)) && x.EventType == t.EventType
		}) {
			errs["event_type"] = []string{"has already been taken for this resource"}
		}
	default:
		errs["event_type"] = []string{"is not included in the list (create, update, delete)"}
	}
	if len(errs) > 0 {
		return validationFailed(errs)
	}
	version := in.APIVersion
	if version == "" {
		version = h.APIVersion
	}
	now := req.now.UTC().Truncate(time.Second)
	nt := &trigger{ID: s.data.newID(kindTrigger), ResourceName: strings.TrimSpace(t.ResourceName), EventType: t.EventType,
		APIVersion: version, CreatedAt: now, UpdatedAt: now}
	h.triggers = append(h.triggers, nt)
	return apiReply{status: http.StatusCreated, body: nt}
}

// DELETE /rest/v1.0/webhooks/hooks/{hook_id}/triggers/{id}?company_id=N
func (s *Server) deleteTrigger(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	h, rep, ok := s.hookParam(req)
	if !ok {
		return rep
	}
	id, err := strconv.ParseInt(req.vars["id"], 10, 64)
	i := slices.IndexFunc(h.triggers, func(t *trigger) bool { return t.ID == id })
	if err != nil || i < 0 {
		return notFound("Trigger %s was not found on webhook hook %d.", req.vars["id"], h.ID)
	}
	h.triggers = slices.Delete(h.triggers, i, i+1)
	return apiReply{status: http.StatusNoContent}
}

// GET /rest/v1.0/webhooks/hooks/{hook_id}/deliveries?company_id=N
func (s *Server) listDeliveries(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	h, rep, ok := s.hookParam(req)
	if !ok {
		return rep
	}
	return paginate(req, h.deliveries)
}

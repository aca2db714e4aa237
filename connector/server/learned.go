package server

import (
	"context"
	"errors"
	"maps"

	"github.com/connector-engine/connector/connector/server/state"

	"github.com/connector-engine/connector/connector/store"
)

// learnWatch is the token store the server's engines use: the store
// itself, plus a watch on the values a connection learned from the
// provider (a Salesforce instance_url, a realmId), which the token record
// carries. A connector.API reads those once, when it is built, and fills
// hosts, paths and headers with them; the server caches the API per
// connection version. So when a write changes them (a re-authorization
// that picked another company, a refresh answering another instance_url),
// the connection is given a new version, which moves the change generation:
// every replica rebuilds its engine, with the new values, at its next use
// (on PostgreSQL when the notification arrives).
type learnWatch struct {
	store.Store
	s *Server
}

// Put writes r and, when the definition learns values and r's differ from
// the record it replaces, touches the connection. The record replaced is
// read first; Sources write under the connection's lock, so it is the one
// r was made from. A failed touch is logged: the engine then keeps the old
// values until the connection's next change, as before this watch.
func (w *learnWatch) Put(ctx context.Context, r store.Record) (store.Record, error) {
	learns := w.learns(r.Definition)
	// A refresh's result (refreshWrite, engine.go) is compared with the
	// record it replaces: a connected record without a refresh in flight
	// may be one.
	var prev store.Record
	if r.Version > 0 && (learns || (r.Status == store.StatusConnected && r.RefreshStarted.IsZero())) {
		prev, _ = w.Store.Get(ctx, r.ID)
	}
	out, err := w.Store.Put(ctx, r)
	if err != nil {
		return out, err
	}
	if refreshWrite(ctx, prev, r) {
		w.s.noteRecovered(ctx, r.ID)
	}
	if !learns || maps.Equal(prev.Token.Values, r.Token.Values) {
		return out, nil
	}
	if terr := w.s.cfg.State.TouchConnection(ctx, r.ID); terr != nil {
		w.s.log.ErrorContext(ctx, "the connection's learned values changed, but its engines could not be told", "connection", r.ID, "error", terr)
	}
	// Webhook deliveries may be attributed by a learned value (a realmId).
	// A failure here is mended when a delivery finds nothing (webhooks.go).
	if ierr := w.s.cfg.State.IndexLearned(ctx, r.ID, w.s.learnedValues(r)); ierr != nil && !errors.Is(ierr, state.ErrNotFound) {
		w.s.log.ErrorContext(ctx, "the connection's learned values changed, but the webhook attribution index could not be updated", "connection", r.ID, "error", ierr)
	}
	w.s.forget(r.ID)
	return out, nil
}

// learnedValues are the values of r's definition's learned fields in r.
func (s *Server) learnedValues(r store.Record) map[string]string {
	def, err := s.cfg.Definitions.Lookup(r.Definition)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, f := range def.Learned() {
		if v := r.Token.Values[f.Name]; v != "" {
			out[f.Name] = v
		}
	}
	return out
}

func (w *learnWatch) learns(definition string) bool {
	def, err := w.s.cfg.Definitions.Lookup(definition)
	return err == nil && len(def.Learned()) > 0
}

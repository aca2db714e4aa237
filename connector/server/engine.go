package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// engine is the engine's view of one connection: its connector.API (with
// its Source and Flow), cached per connection. It is used as it is while
// the state's change generation stays at gen (see cache.go); once the
// generation moves, the next use reads the connection and its client again
// and rebuilds the engine if either has a new version, so that a secret
// rotated or a connection deleted on another replica takes effect here.
type engine struct {
	conn      state.Connection
	client    state.Client
	def       *definitions.Definition
	api       *connector.API
	connVer   int64
	clientVer int64
	gen       int64 // the generation conn and client were read at
}

// load returns the tenant's connection and its engine. A connection of
// another tenant is not found, exactly like one that does not exist.
func (s *Server) load(ctx context.Context, tenant, id string) (*engine, error) {
	gen, gerr := s.generation(ctx)
	e := s.engines.get(id)
	if gerr == nil && e != nil && e.gen == gen && e.conn.Tenant == tenant {
		s.engines.count(loadHit)
		return e, nil
	}
	c, cl, err := s.cfg.State.ConnectionAndClient(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if gerr != nil {
		gen = -1 // never trusted without a read
	}
	if e != nil && e.connVer == c.Version && e.clientVer == cl.Version {
		e2 := *e // the same engine (and its Source's cached token), verified at gen
		e2.conn, e2.client, e2.gen = c, cl, gen
		s.engines.put(id, &e2)
		s.engines.count(loadRevalidated)
		return &e2, nil
	}
	def, err := s.cfg.Definitions.Lookup(cl.Definition)
	if err != nil {
		return nil, fmt.Errorf("connection %s: its OAuth client's definition is no longer loaded: %w", id, err)
	}
	cc := s.engineConnection(def, cl, c)
	api, err := connector.NewAPI(cc, s.cfg.Tokens, &connector.APIOptions{Base: s.cfg.Transport, Trace: s.metrics.trace})
	if err != nil {
		return nil, err
	}
	if src := api.Source(); src != nil {
		if s.cfg.TokenMargin > 0 {
			src.Margin = s.cfg.TokenMargin
		}
		if f := src.Flow(); f != nil && s.cfg.Transport != nil {
			// Token requests go where API requests go (Config.Transport).
			f.HTTPClient = &http.Client{Timeout: connector.DefaultRequestTimeout, Transport: s.cfg.Transport}
		}
	}
	e = &engine{conn: c, client: cl, def: def, api: api, connVer: c.Version, clientVer: cl.Version, gen: gen}
	s.engines.put(id, e)
	s.engines.count(loadBuilt)
	return e, nil
}

func (s *Server) engineConnection(def *definitions.Definition, cl state.Client, c state.Connection) *connector.Connection {
	return &connector.Connection{
		ID: c.ID, Tenant: c.Tenant, Definition: def, Environment: c.Environment,
		ClientID: cl.ClientID, ClientSecret: cl.Secret, RedirectURI: cl.RedirectURI,
		Scopes: cl.Scopes, Fields: c.Fields, BaseURL: cl.BaseURL, LoginURL: cl.LoginURL,
	}
}

func (s *Server) forget(id string) {
	s.engines.remove(id)
}

var errNoOAuth = errors.New("the connection's definition has no OAuth flow")

// flow returns the connection's OAuth flow.
func (e *engine) flow() (*connector.Flow, error) {
	src := e.api.Source()
	if src == nil || src.Flow() == nil {
		return nil, errNoOAuth
	}
	return src.Flow(), nil
}

// authorizingKey marks the context of an authorization's token write
// (Source.Store after the code exchange): that write is no refresh, and
// the authorization emits connection.connected itself.
type authorizingKey struct{}

func authorizing(ctx context.Context) context.Context {
	return context.WithValue(ctx, authorizingKey{}, true)
}

// refreshWrite says whether writing r over prev is a refresh's result: a
// connected record with a new access token and no refresh in flight,
// outside an authorization. The in-flight marker, a binding adopted, values
// set by hand and a record moved from a legacy key keep the access token.
func refreshWrite(ctx context.Context, prev, r store.Record) bool {
	return ctx.Value(authorizingKey{}) == nil && r.Version > 0 && r.Status == store.StatusConnected &&
		r.RefreshStarted.IsZero() && r.Token.AccessToken != "" && r.Token.AccessToken != prev.Token.AccessToken
}

// noteRecovered emits connection.refreshed, once, when connection id was
// failing and a refresh just succeeded, wherever it ran: the scheduler
// records its own refreshes, but the engine also refreshes inside proxied
// calls and the token endpoint, and a recovery there must be told too.
// RecordRefresh locks the connection's row, so the scheduler's record of
// the same refresh, or another replica's, appends no second event.
func (s *Server) noteRecovered(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emitTimeout)
	defer cancel()
	tenant, recovering, err := s.cfg.State.Recovering(ctx, id)
	if err != nil || !recovering {
		s.recorded(ctx, "refresh", false, err)
		return
	}
	_, emitted, err := s.cfg.State.RecordRefresh(ctx, tenant, id, state.RefreshOK, "")
	if errors.Is(err, state.ErrNotFound) {
		return // deleted meanwhile
	}
	s.recorded(ctx, "recovered refresh", emitted, err)
}

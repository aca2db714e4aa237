package server

import (
	"context"
	"errors"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/scheduler"
)

// KeepAlivePolicy is the keep-alive policy of a definition's connections,
// with the refresh margin their engines use (the server's TokenMargin, else
// the definition's token_response.refresh_margin, else the engine's
// default), for the refresh scheduler.
func (s *Server) KeepAlivePolicy(definition string) (scheduler.Policy, error) {
	def, err := s.cfg.Definitions.Lookup(definition)
	if err != nil {
		return scheduler.Policy{}, err
	}
	p := scheduler.Policy{Margin: connector.DefaultMargin}
	if o := def.Auth.OAuth; o != nil {
		p.KeepAlive, p.Grant = o.KeepAlive, o.GrantType
		if o.TokenResponse.RefreshMargin > 0 {
			p.Margin = o.TokenResponse.RefreshMargin
		}
	}
	if s.cfg.TokenMargin > 0 {
		p.Margin = s.cfg.TokenMargin
	}
	return p, nil
}

// KeepAliveSource gives the refresh scheduler a connection's token source:
// the cached one the API uses, so a scheduled refresh and a call's refresh
// are one protocol on one cache.
func (s *Server) KeepAliveSource(ctx context.Context, tenant, id string) (*connector.Source, error) {
	e, err := s.load(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return e.api.Source(), nil
}

// Scheduler returns the refresh scheduler of this server's connections
// (see package scheduler). Run it on every replica, next to the HTTP
// server, and let its Run return before closing the storage:
//
//	sch, _ := srv.Scheduler(scheduler.Config{})
//	go sch.Run(ctx)
//
// cfg's State, Tokens, Engines, Logger, Registerer and hooks default to
// the server's.
func (s *Server) Scheduler(cfg scheduler.Config) (*scheduler.Scheduler, error) {
	if cfg.State == nil {
		cfg.State = s.cfg.State
	}
	if cfg.Tokens == nil {
		cfg.Tokens = s.cfg.Tokens
	}
	if cfg.Engines == nil {
		cfg.Engines = s
	}
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	if cfg.Registerer == nil {
		cfg.Registerer = s.metrics.reg
	}
	if cfg.OnRefresh == nil {
		cfg.OnRefresh = s.countRefresh
	}
	if cfg.OnRecorded == nil {
		cfg.OnRecorded = func(ctx context.Context, emitted bool, err error) { s.recorded(ctx, "scheduled refresh", emitted, err) }
	}
	return scheduler.New(cfg)
}

// countRefresh counts a scheduled refresh with the API's, in
// connector_refreshes_total and connector_token_endpoint_errors_total.
func (s *Server) countRefresh(err error) {
	var nr *connector.NeedsReauthError
	var te *connector.TokenError
	switch {
	case err == nil:
		s.metrics.refreshes.WithLabelValues("ok").Inc()
	case errors.As(err, &nr):
		s.metrics.refreshes.WithLabelValues("needs_reauthorization").Inc()
	default:
		s.metrics.refreshes.WithLabelValues("error").Inc()
	}
	if errors.As(err, &te) {
		s.metrics.tokenErrors.WithLabelValues(te.Code).Inc()
	}
}

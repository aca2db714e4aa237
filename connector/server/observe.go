package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
)

type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	proxy       prometheus.Histogram
	refreshes   *prometheus.CounterVec
	tokenErrors *prometheus.CounterVec
	rateWaits   *prometheus.CounterVec
	rateWaitSec *prometheus.CounterVec
	trace       *connector.Trace
}

func newMetrics(reg *prometheus.Registry, db *state.DB, engines *engineCache) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_http_requests_total", Help: "HTTP requests by route pattern and status.",
		}, []string{"route", "status"}),
		proxy: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "connector_proxy_duration_seconds", Help: "Time to the provider's response headers of proxied calls.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_refreshes_total", Help: "Refreshes asked of the server, by outcome (ok, needs_reauthorization, error).",
		}, []string{"outcome"}),
		tokenErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_token_endpoint_errors_total", Help: "Provider token-endpoint errors seen by the server, by OAuth error code.",
		}, []string{"code"}),
	}
	m.rateWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_rate_limit_waits_total", Help: "Pauses of proxied calls and actions for a provider's rate limit, by reason (window, limit, reset header, Retry-After).",
	}, []string{"reason"})
	m.rateWaitSec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_rate_limit_wait_seconds_total", Help: "Time proxied calls and actions spent waiting for a provider's rate limit, by reason.",
	}, []string{"reason"})
	// The transport's Wait hook (connector.Trace) sees every pause; only the
	// rate limit's are counted here, not backoff after failures.
	m.trace = &connector.Trace{Wait: func(w connector.WaitInfo) {
		if !w.RateLimited() {
			return
		}
		m.rateWaits.WithLabelValues(string(w.Reason)).Inc()
		m.rateWaitSec.WithLabelValues(string(w.Reason)).Add(w.Wait.Seconds())
	}}
	conns := &connectionsCollector{db: db, desc: prometheus.NewDesc("connector_connections", "Connections by status.", []string{"status"}, nil)}
	for _, c := range []prometheus.Collector{m.requests, m.proxy, m.refreshes, m.tokenErrors, m.rateWaits, m.rateWaitSec, conns, newEngineCacheCollector(engines)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// connectionsCollector counts connections at scrape time, from the
// database every replica shares.
type connectionsCollector struct {
	db   *state.DB
	desc *prometheus.Desc
}

func (c *connectionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *connectionsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.db.CountConnections(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, st := range []string{state.StatusPending, state.StatusConnected, state.StatusNeedsReauth} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

type ctxKey struct{}

// reqInfo is filled in by handlers for the request's log line, and holds
// the change generation read for the request (one read serves the key and
// the connection).
type reqInfo struct {
	tenant, connection string
	path               string // replaces the path in the log line when set
	gen                int64
	genRead            bool
}

// setLogPath replaces the path in the request's log line, for paths that
// carry a secret (a connect link's token).
func setLogPath(r *http.Request, p string) {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		ri.path = p
	}
}

func setTenant(r *http.Request, t string) {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		ri.tenant = t
	}
}

func setConnection(r *http.Request, id string) {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		ri.connection = id
	}
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

func (rw *recorder) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// observe counts and logs every request: one JSON line with the route
// pattern and the path, never the query (a callback's carries the code and
// state) nor any header.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
		rw := &recorder{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		if rw.status == 0 {
			rw.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rw.status)).Inc()
		path := logPath(r)
		if ri.path != "" {
			path = ri.path
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("route", route), slog.String("path", path),
			slog.Int("status", rw.status), slog.Int64("bytes", rw.bytes), slog.Duration("duration", time.Since(start)),
		}
		if ri.tenant != "" {
			attrs = append(attrs, slog.String("tenant", ri.tenant))
		}
		if ri.connection != "" {
			attrs = append(attrs, slog.String("connection", ri.connection))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// logPath is the request path, capped: paths carry ids, never secrets
// (secrets travel in headers, bodies and the callback's query).
func logPath(r *http.Request) string {
	p := r.URL.Path
	if len(p) > 256 {
		p = p[:256] + "…"
	}
	return p
}

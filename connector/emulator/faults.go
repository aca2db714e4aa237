package emulator

import (
	"crypto/sha256"
	"net/http"
	"time"
)

// apiFault is what FailAPIRequests asked for.
type apiFault struct {
	n      int // API requests still to fail
	status int
	header http.Header
}

// FailAPIRequests makes the next n API requests (paths under /rest/) answer
// status with a Procore error body, without being authenticated, charged
// to a rate-limit budget or processed: nothing is created, and no
// Idempotency-Token is used up. The answer carries exactly header (plus
// Content-Type) and none of the usual X-Rate-Limit-* headers, so a test
// decides what the client sees: for example 503 with Retry-After: 1, or
// 429 with only X-Rate-Limit-Reset. A status outside 400-599 means 503;
// n <= 0 cancels what is left of an earlier call. The requests still count
// in Stats.APIRequests and Stats.APIRequestsByRoute.
func (s *Server) FailAPIRequests(n, status int, header http.Header) {
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiFail = apiFault{n: max(n, 0), status: status, header: header.Clone()}
}

// ExpireAccessTokens makes the next n API requests that carry a live access
// token find it expired: the token's lifetime ends on arrival, and the
// request (and every later one with that token) gets Procore's 401 with
// ExpiredTokenMessage. Its refresh token keeps working, so a client can
// refresh and replay; with n = 2 the replay's new token expires too. n <= 0
// cancels what is left of an earlier call.
func (s *Server) ExpireAccessTokens(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireN = max(n, 0)
}

// SetRateLimit changes the rate limit of later API requests: limit
// requests per window for each grant, as Config.RateLimit and
// Config.RateWindow; zero or less picks the default. A window already
// running keeps its start and is measured against the new length.
func (s *Server) SetRateLimit(limit int, window time.Duration) {
	if limit <= 0 {
		limit = defaultRateLimit
	}
	if window <= 0 {
		window = defaultRateWindow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.RateLimit, s.cfg.RateWindow = limit, window
}

// IdempotencyHeader is the request header Procore's SDKs send to make a
// POST or PATCH safe to retry. The emulator answers a repeated request
// with the same header value (from the same user and application) with the
// first successful answer, marked Idempotent-Replayed: true, instead of
// acting twice. The same value on a different request is a 409.
const IdempotencyHeader = "Idempotency-Token"

// idempotencyLifetime is how long a successful answer is kept for replay.
const idempotencyLifetime = 24 * time.Hour

type idemKey struct {
	clientID string
	userID   int64
	token    string
}

// idemEntry is a remembered successful answer.
type idemEntry struct {
	request [32]byte // hash of method, URL, company and body
	status  int
	header  http.Header
	data    []byte
	at      time.Time
}

// idempotentLocked answers req from an earlier request with the same
// Idempotency-Token, or handles it and remembers a successful answer.
// Failed answers are not remembered: a retry of them runs again.
func (s *Server) idempotentLocked(rt *apiRoute, req *apiRequest, token string, rs rateState) apiResult {
	k := idemKey{clientID: req.grant.clientID, userID: req.grant.userID, token: token}
	h := sha256.New()
	h.Write([]byte(req.r.Method + " " + req.r.URL.RequestURI() + "\n" + req.r.Header.Get("Procore-Company-Id") + "\n"))
	h.Write(req.body)
	var sum [32]byte
	h.Sum(sum[:0])
	if e := s.idem[k]; e != nil && req.now.Sub(e.at) < idempotencyLifetime {
		if e.request != sum {
			return s.finishLocked(apiError(http.StatusConflict, "idempotency_token_reused",
				"This "+IdempotencyHeader+" was already used for a different request; send a new token for a new request."), rs)
		}
		s.stats.IdempotentReplays++
		header := e.header.Clone()
		if header == nil {
			header = http.Header{}
		}
		header.Set("Idempotent-Replayed", "true")
		return apiResult{status: e.status, header: header, data: e.data, rate: &rs}
	}
	res := s.handleLocked(rt, req, rs)
	if res.status/100 == 2 {
		s.idem[k] = &idemEntry{request: sum, status: res.status, header: res.header.Clone(), data: res.data, at: req.now}
	}
	return res
}

// sweepIdempotencyLocked forgets answers too old to replay.
func (s *Server) sweepIdempotencyLocked(now time.Time) {
	for k, e := range s.idem {
		if now.Sub(e.at) >= idempotencyLifetime {
			delete(s.idem, k)
		}
	}
}

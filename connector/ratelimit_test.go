package connector

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

const windowDef = `name: tapi
title: Test API
base_url: https://api.invalid
fields:
  CompanyId: {type: integer}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize
    token_request_uri: ${BaseUrl}/token
request:
  retry: {max_attempts: 2, max_wait: 5s}
  rate_limit:
%s
`

// A HubSpot-like API: a remaining count and no reset header. Once nothing
// remains it refuses (429, no Retry-After) whatever arrives within its
// window. The engine waits the declared window instead, so the API never
// has to refuse: the API's clock starts before the engine's, so this holds
// at any speed.
func TestRateLimitRemainingOnlyWaitsTheWindow(t *testing.T) {
	const limit, per = 3, 300 * time.Millisecond
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, fmt.Sprintf(windowDef, "    remaining_header: X-HubSpot-RateLimit-Remaining\n    per: 300ms"))
	var mu sync.Mutex
	left, refused := limit, 0
	var emptySince time.Time
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if left == 0 && time.Since(emptySince) < per {
			refused++
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if left == 0 {
			left = limit
		}
		left--
		if left == 0 {
			emptySince = time.Now()
		}
		w.Header().Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(left))
		fmt.Fprint(w, `{}`)
	})
	for i := range 3*limit + 1 {
		resp, err := api.Do(context.Background(), Request{Path: "/x"})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
	if refused != 0 {
		t.Fatalf("the API refused %d requests; the engine should have waited out the window", refused)
	}
}

// With limit and per the engine paces itself: 5 requests at 2 per window
// cannot all go out within two windows.
func TestRateLimitDeclaredWindowPaces(t *testing.T) {
	const per = 150 * time.Millisecond
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, fmt.Sprintf(windowDef, "    per: 150ms\n    limit: 2"))
	start := time.Now()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := api.Do(context.Background(), Request{Path: "/x"})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed < 2*per {
		t.Fatalf("5 requests at 2 per %s took %s; the 5th may not go before %s", per, elapsed, 2*per)
	}
	if s.apiReq.Load() != 5 {
		t.Fatalf("%d requests", s.apiReq.Load())
	}
}

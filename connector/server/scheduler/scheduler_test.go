package scheduler_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/server/scheduler"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// Connections whose definition asks for refresh_ahead are refreshed once
// per expiry, spread over their windows; a definition without keep_alive,
// a connection never authorized and a deleted one are left alone.
func TestKeepAlive(t *testing.T) {
	backends(t, func(t *testing.T, spec string) {
		f := newFixture(t, spec, fixtureOptions{})
		ctx := context.Background()
		ka, plain := f.oauthClient("procore-keepalive"), f.oauthClient("procore")
		now := time.Now()
		conns := f.seed(ka, 20, now.Add(-time.Minute), func(i int) time.Time { return now.Add(4*time.Second + time.Duration(i)*200*time.Millisecond) })
		others := f.seed(plain, 3, now.Add(-time.Minute), func(int) time.Time { return now.Add(3 * time.Second) })
		db := f.first.storage.State
		pending, err := db.CreateConnection(ctx, state.Connection{Tenant: tenant, Client: ka.ID})
		if err != nil {
			t.Fatal(err)
		}
		doomed := f.seed(ka, 1, now, func(int) time.Time { return now.Add(time.Hour) })[0]

		r := f.start(f.first, scheduler.Config{})
		waitFor(t, 2*time.Minute, "every connection refreshed", func() bool { return f.emu.Stats().Refreshes >= len(conns) })
		if err := f.first.storage.Tokens.Delete(ctx, doomed.id); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteConnection(ctx, tenant, doomed.id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the deleted connection's row gone", func() bool {
			_, err := db.ScheduleOf(ctx, tenant, doomed.id)
			return errors.Is(err, state.ErrNotFound)
		})
		r.stop()

		st := f.emu.Stats()
		if st.Refreshes != len(conns) || st.GrantRevocations != 0 {
			t.Fatalf("%d refreshes and %d grant revocations for %d connections due; want one refresh each and none revoked", st.Refreshes, st.GrantRevocations, len(conns))
		}
		for _, c := range conns {
			if used, _ := f.emu.RefreshTokenUsed(c.refresh); !used {
				t.Errorf("connection %s was not refreshed", c.id)
			}
			s, err := db.ScheduleOf(ctx, tenant, c.id)
			if err != nil || s.State != state.ScheduleScheduled || s.LastRefresh.IsZero() || !s.Due.After(now.Add(50*time.Minute)) {
				t.Errorf("connection %s: schedule %+v, %v; want scheduled for the new token's expiry", c.id, s, err)
			}
		}
		for _, c := range others {
			if used, _ := f.emu.RefreshTokenUsed(c.refresh); used {
				t.Errorf("connection %s of a definition without keep_alive was refreshed", c.id)
			}
			if s, _ := db.ScheduleOf(ctx, tenant, c.id); s.State != state.ScheduleOff {
				t.Errorf("connection %s without keep_alive: state %q, want off", c.id, s.State)
			}
		}
		if s, _ := db.ScheduleOf(ctx, tenant, pending.ID); s.State != state.ScheduleWaiting {
			t.Errorf("a connection never authorized: state %q, want waiting", s.State)
		}
		if got := r.sch.Stats(); got[scheduler.Refreshed] != int64(len(conns)) {
			t.Errorf("stats %v", got)
		}
		for _, m := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"connector_refreshes_total", map[string]string{"outcome": "ok"}, float64(len(conns))},
			{"connector_scheduler_runs_total", map[string]string{"outcome": scheduler.Refreshed}, float64(len(conns))},
			{"connector_scheduler_connections", map[string]string{"state": state.ScheduleScheduled}, float64(len(conns))},
			{"connector_scheduler_connections", map[string]string{"state": state.ScheduleOff}, float64(len(others))},
			{"connector_scheduler_due", nil, 0},
		} {
			if got := f.first.metric(t, m.name, m.labels); got != m.want {
				t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
			}
		}
	})
}

// A token that traffic refreshed before its keep-alive was due is not
// refreshed again: the scheduler reschedules it from the new token.
func TestTrafficRefreshIsNotRepeated(t *testing.T) {
	f := newFixture(t, postgres(t), fixtureOptions{})
	ctx := context.Background()
	ka := f.oauthClient("procore-keepalive")
	now := time.Now()
	c := f.seed(ka, 1, now.Add(-time.Minute), func(int) time.Time { return now.Add(6 * time.Second) })[0]
	r := f.start(f.first, scheduler.Config{})
	waitFor(t, time.Minute, "the connection scheduled", func() bool {
		s, _ := f.first.storage.State.ScheduleOf(ctx, tenant, c.id)
		return s.State == state.ScheduleScheduled
	})
	// A call on another replica refreshes first, through its own engine.
	other := f.replica()
	src, err := other.srv.KeepAliveSource(ctx, tenant, c.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // past the old token's window
	r.stop()
	if st := f.emu.Stats(); st.Refreshes != 1 || st.GrantRevocations != 0 {
		t.Fatalf("%d refreshes, %d revocations; want the traffic's one refresh only", st.Refreshes, st.GrantRevocations)
	}
	if n := r.sch.Stats()[scheduler.Refreshed]; n != 0 {
		t.Fatalf("the scheduler refreshed %d times", n)
	}
}

// idle_refresh keeps alive a connection whose refresh token dies when
// unused: the emulator refuses refresh tokens idle for 8 s; with the
// scheduler refreshing every 3 s the connection still works after several
// lifetimes of its first refresh token, while one without keep_alive dies.
func TestIdleRefreshKeepsConnectionAlive(t *testing.T) {
	f := newFixture(t, postgres(t), fixtureOptions{emu: func(c *emulator.Config) { c.RefreshTokenIdleLifetime = 8 * time.Second }})
	setPolicy(t, f.defs, "procore-keepalive", definitions.KeepAlive{IdleRefresh: 3 * time.Second})
	ctx := context.Background()
	ka, plain := f.oauthClient("procore-keepalive"), f.oauthClient("procore")
	now := time.Now()
	alive := f.seed(ka, 1, now, func(int) time.Time { return now.Add(time.Hour) })[0]
	idle := f.seed(plain, 1, now, func(int) time.Time { return now.Add(time.Hour) })[0]
	r := f.start(f.first, scheduler.Config{})
	waitFor(t, 2*time.Minute, "five idle refreshes", func() bool { return f.emu.Stats().Refreshes >= 5 })
	waitFor(t, time.Minute, "the unused connection's refresh token expired", func() bool { return time.Since(now) > 9*time.Second })
	r.stop()
	if st := f.emu.Stats(); st.IdleExpiredRefreshes != 0 || st.GrantRevocations != 0 {
		t.Fatalf("emulator: %+v", st)
	}
	src, err := f.first.srv.KeepAliveSource(ctx, tenant, alive.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Refresh(ctx); err != nil {
		t.Fatalf("the kept-alive connection no longer refreshes: %v", err)
	}
	src, _ = f.first.srv.KeepAliveSource(ctx, tenant, idle.id)
	if _, err := src.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "not used for 8s") {
		t.Fatalf("the unused connection without keep_alive: %v; want its refresh token expired", err)
	}
}

// A transient failure (503) is retried with backoff and then succeeds;
// the attempts are counted and reset, and the recovery is one
// connection.refreshed event.
func TestTransientFailureRetried(t *testing.T) {
	backends(t, func(t *testing.T, spec string) {
		f := newFixture(t, spec, fixtureOptions{})
		ctx := context.Background()
		ka := f.oauthClient("procore-keepalive")
		now := time.Now()
		c := f.seed(ka, 1, now.Add(-time.Minute), func(int) time.Time { return now.Add(2 * time.Second) })[0]
		// The engine's transport retries a 503 with Retry-After itself (the
		// definition's retry.max_attempts): eight failures outlast it twice.
		f.emu.FailTokenRequests(8, http.StatusServiceUnavailable)
		r := f.start(f.first, scheduler.Config{})
		waitFor(t, time.Minute, "the refresh after the failures", func() bool { return f.emu.Stats().Refreshes == 1 })
		waitFor(t, time.Minute, "the outcome recorded", func() bool {
			s, _ := f.first.storage.State.ScheduleOf(ctx, tenant, c.id)
			return s.State == state.ScheduleScheduled
		})
		r.stop()
		st := r.sch.Stats()
		if st[scheduler.Retry] < 1 || st[scheduler.Refreshed] != 1 || st[scheduler.NeedsReauth] != 0 {
			t.Fatalf("outcomes %v; want retries and a refresh", st)
		}
		if es := f.emu.Stats(); es.FailedTokenRequests != 8 || es.TokenRequests["refresh_token"] != 9 || es.GrantRevocations != 0 {
			t.Fatalf("emulator %+v; want 8 failed refreshes, then one that worked", es)
		}
		s, _ := f.first.storage.State.ScheduleOf(ctx, tenant, c.id)
		if s.Attempts != 0 || s.LastError != "" {
			t.Fatalf("schedule after success: %+v", s)
		}
		if conn, _ := f.first.storage.State.Connection(ctx, tenant, c.id); conn.Status != state.StatusConnected {
			t.Fatalf("status %q after a transient failure", conn.Status)
		}
		if n, m := f.eventsOf(c.id, state.TypeRefreshed), f.eventsOf(c.id, state.TypeNeedsReauth); n != 1 || m != 0 {
			t.Fatalf("%d connection.refreshed and %d needs_reauth events; want one refreshed (after failing) and none", n, m)
		}
	})
}

// A permanent failure (the user revoked the app) marks the connection
// needs_reauthorization with the provider's reason and appends one
// connection.needs_reauth event, however many schedulers look again; a new
// authorization wakes it.
func TestPermanentFailureMarkedOnce(t *testing.T) {
	f := newFixture(t, postgres(t), fixtureOptions{})
	ctx := context.Background()
	ka := f.oauthClient("procore-keepalive")
	now := time.Now()
	c := f.seed(ka, 1, now.Add(-time.Minute), func(int) time.Time { return now.Add(2 * time.Second) })[0]
	revoke(t, f.emuURL, c.refresh)
	cfg := scheduler.Config{Recheck: 300 * time.Millisecond}
	a, b := f.start(f.first, cfg), f.start(f.replica(), cfg)
	db := f.first.storage.State
	waitFor(t, time.Minute, "the connection marked", func() bool {
		conn, _ := db.Connection(ctx, tenant, c.id)
		return conn.Status == state.StatusNeedsReauth
	})
	time.Sleep(2 * time.Second) // both schedulers look again, several times
	conn, _ := db.Connection(ctx, tenant, c.id)
	if !strings.Contains(conn.Reason, "invalid_grant") {
		t.Errorf("reason %q does not carry the provider's answer", conn.Reason)
	}
	if n := f.eventsOf(c.id, state.TypeNeedsReauth); n != 1 {
		t.Fatalf("%d connection.needs_reauth events, want 1", n)
	}
	if st := f.emu.Stats(); st.TokenRequests["refresh_token"] != 1 {
		t.Fatalf("%d refresh requests for a revoked grant, want 1", st.TokenRequests["refresh_token"])
	}

	// The user authorizes again: the callback stores a token and marks the
	// connection connected, which wakes its row.
	at, rt, _ := f.emu.IssueTokens(emuClientID)
	rec, err := f.first.storage.Tokens.Get(ctx, c.id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Status, rec.Reason = store.StatusConnected, ""
	rec.Token.AccessToken, rec.Token.RefreshToken, rec.Token.Obtained, rec.Token.Expiry = at, rt, time.Now().Add(-time.Minute), time.Now().Add(2*time.Second)
	if _, err := f.first.storage.Tokens.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordConnected(ctx, tenant, c.id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the re-authorized connection refreshed", func() bool { used, _ := f.emu.RefreshTokenUsed(rt); return used })
	a.stop()
	b.stop()
	if n, m := f.eventsOf(c.id, state.TypeNeedsReauth), f.eventsOf(c.id, state.TypeRefreshed); n != 1 || m != 0 {
		t.Fatalf("%d connection.needs_reauth and %d connection.refreshed events after re-authorization, want 1 and 0", n, m)
	}
}

func revoke(t *testing.T, emuURL, tok string) {
	t.Helper()
	resp, err := http.PostForm(emuURL+"/oauth/revoke", url.Values{"token": {tok}, "client_id": {emuClientID}, "client_secret": {emuSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

// Connections created after the scheduler started, and a connection that
// changed after it was parked, are found by the discovery's change stamps
// alone: Recheck is left at its 6 hours, so nothing but the change can
// wake a parked row in this test's time. Each is created pending and then
// authorized as the callback does (the token stored, then the connection
// marked connected: a new version), so the scheduler may first see it
// before or after its token exists.
func TestConnectionsAfterStartScheduled(t *testing.T) {
	backends(t, func(t *testing.T, spec string) {
		f := newFixture(t, spec, fixtureOptions{})
		ctx := context.Background()
		db := f.first.storage.State
		ka := f.oauthClient("procore-keepalive")
		create := func() string {
			c, err := db.CreateConnection(ctx, state.Connection{Tenant: tenant, Client: ka.ID})
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		authorize := func(id string) string {
			at, rt, err := f.emu.IssueTokens(emuClientID)
			if err != nil {
				t.Fatal(err)
			}
			rec := store.Record{ID: id, Definition: ka.Definition, Binding: f.binding(ka), Status: store.StatusConnected,
				Token: token.Token{AccessToken: at, RefreshToken: rt, TokenType: "bearer", Obtained: time.Now().Add(-time.Minute), Expiry: time.Now().Add(3 * time.Second)}}
			if _, err := f.first.storage.Tokens.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if _, err := db.RecordConnected(ctx, tenant, id); err != nil {
				t.Fatal(err)
			}
			return rt
		}
		r := f.start(f.first, scheduler.Config{})
		time.Sleep(time.Second) // the first discovery passes have run, over no connection

		refresh := map[string]string{} // connection -> its refresh token
		for range 3 {
			id := create()
			refresh[id] = authorize(id)
		}
		waitFor(t, 2*time.Minute, "the connections created after the start refreshed", func() bool { return f.emu.Stats().Refreshes >= len(refresh) })

		pending := create()
		waitFor(t, time.Minute, "the pending connection parked", func() bool {
			s, _ := db.ScheduleOf(ctx, tenant, pending)
			return s.State == state.ScheduleWaiting
		})
		rt := authorize(pending)
		refresh[pending] = rt
		waitFor(t, 2*time.Minute, "the connection authorized after it was parked refreshed", func() bool { used, _ := f.emu.RefreshTokenUsed(rt); return used })
		time.Sleep(time.Second) // a second refresh of anything would show now
		r.stop()
		if st := f.emu.Stats(); st.Refreshes != len(refresh) || st.GrantRevocations != 0 {
			t.Fatalf("%d refreshes, %d grant revocations; want %d and none", st.Refreshes, st.GrantRevocations, len(refresh))
		}
		for id, rt := range refresh {
			used, _ := f.emu.RefreshTokenUsed(rt)
			s, err := db.ScheduleOf(ctx, tenant, id)
			if !used || err != nil || s.State != state.ScheduleScheduled || s.LastRefresh.IsZero() {
				t.Errorf("connection %s: refreshed %v, %+v, %v; want refreshed and scheduled", id, used, s, err)
			}
		}
	})
}

package scheduler_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/scheduler"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
)

// TestAcceptanceTwoReplicas is the scheduler's acceptance run: connections
// whose tokens expire spread over a period, two replicas (a Server and its
// scheduler each, with database handles of their own) on one PostgreSQL,
// the emulator as the rotating provider. Every connection is refreshed
// exactly once and no refresh token is presented twice (the emulator would
// revoke the grant). It reports the refresh rate and the database's load
// (pg_stat_database deltas).
//
// By default it runs scaled down: 1,000 connections over 60 s, each
// refreshed 4 to 2 s before it expires. With
// CONNECTOR_SCHEDULER_ACCEPTANCE=full it runs the full size: 10,000
// connections over 10 minutes, each refreshed 60 to 30 s before it expires.
func TestAcceptanceTwoReplicas(t *testing.T) {
	n, period, lead, margin := 1000, time.Minute, 10*time.Second, 2*time.Second
	if os.Getenv("CONNECTOR_SCHEDULER_ACCEPTANCE") == "full" {
		// A margin nearer production's (2 minutes by default): each token
		// is refreshed 60 to 30 s before it expires.
		n, period, lead, margin = 10000, 10*time.Minute, 150*time.Second, 30*time.Second
	}
	f := newFixture(t, postgres(t), fixtureOptions{})
	d, _ := f.defs.Lookup("procore-keepalive")
	d.Auth.OAuth.TokenResponse.RefreshMargin = margin
	ctx := context.Background()
	ka := f.oauthClient("procore-keepalive")
	begin := time.Now()
	first := begin.Add(lead)
	conns := f.seed(ka, n, begin.Add(-time.Hour), func(i int) time.Time { return first.Add(time.Duration(i) * period / time.Duration(n)) })
	t.Logf("seeded %d connections in %s", n, time.Since(begin).Round(time.Millisecond))

	db := f.first.storage.State
	before := pgStats(t, db)
	second := f.replica()
	start := time.Now()
	a, b := f.start(f.first, scheduler.Config{Poll: time.Second, Discover: 5 * time.Second}), f.start(second, scheduler.Config{Poll: time.Second, Discover: 5 * time.Second})
	peak, last, lastAt := 0.0, 0, time.Now()
	waitFor(t, period+lead+5*time.Minute, "every connection refreshed", func() bool {
		got := f.emu.Stats().Refreshes
		if now := time.Now(); now.Sub(lastAt) >= time.Second {
			peak = max(peak, float64(got-last)/now.Sub(lastAt).Seconds())
			last, lastAt = got, now
		}
		return got >= n
	})
	done := time.Now()
	time.Sleep(3 * time.Second) // anything refreshed twice would show now
	a.stop()
	b.stop()
	time.Sleep(1500 * time.Millisecond) // PostgreSQL flushes its statistics about once a second
	after := pgStats(t, db)

	st := f.emu.Stats()
	if st.Refreshes != n || st.TokenRequests["refresh_token"] != n || st.GrantRevocations != 0 {
		t.Fatalf("%d refreshes (%d refresh requests) and %d grant revocations for %d connections; want exactly one each and none revoked",
			st.Refreshes, st.TokenRequests["refresh_token"], st.GrantRevocations, n)
	}
	late, worst := 0, time.Duration(0)
	for _, c := range conns {
		if used, _ := f.emu.RefreshTokenUsed(c.refresh); !used {
			t.Fatalf("connection %s was not refreshed", c.id)
		}
		s, err := db.ScheduleOf(ctx, tenant, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.LastRefresh.Sub(c.expiry); d > 0 {
			late++
			worst = max(worst, d)
		}
	}
	sa, sb := a.sch.Stats(), b.sch.Stats()
	elapsed := done.Sub(start)
	t.Logf("%d connections refreshed once each in %s (tokens expiring over %s): %.1f refreshes/s on average, %.1f/s at the peak second; replica A %d, replica B %d; %d refreshed after their token expired (worst by %s); no refresh token reused",
		n, elapsed.Round(time.Millisecond), period, float64(n)/elapsed.Seconds(), peak, sa[scheduler.Refreshed], sb[scheduler.Refreshed], late, worst)
	secs := after.at.Sub(before.at).Seconds()
	for _, k := range pgStatColumns {
		d := after.v[k] - before.v[k]
		t.Logf("PostgreSQL %s: %d (%.1f/s, %.2f per refresh)", k, d, float64(d)/secs, float64(d)/float64(n))
	}
}

var pgStatColumns = []string{"xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated", "tup_deleted", "blks_read", "blks_hit"}

type pgSnapshot struct {
	at time.Time
	v  map[string]int64
}

func pgStats(t *testing.T, db *state.DB) pgSnapshot {
	t.Helper()
	s := pgSnapshot{at: time.Now(), v: map[string]int64{}}
	vals := make([]any, len(pgStatColumns))
	ptrs := make([]int64, len(pgStatColumns))
	for i := range ptrs {
		vals[i] = &ptrs[i]
	}
	if _, err := db.SQL().Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRow(`SELECT ` + strings.Join(pgStatColumns, ", ") + ` FROM pg_stat_database WHERE datname = current_database()`).Scan(vals...); err != nil {
		t.Fatal(err)
	}
	for i, k := range pgStatColumns {
		s.v[k] = ptrs[i]
	}
	return s
}

const (
	envChild     = "CONNECTOR_SCHEDULER_TEST_CHILD" // the database URL a child replica schedules
	envChildKey  = "CONNECTOR_SCHEDULER_TEST_KEY"
	childOwner   = "child-replica"
	childLease   = 3 * time.Second
	childBatch   = 1000
	childWorkers = 4
)

// stuckLocks is a token store whose connection locks are never granted: a
// replica that hangs before its refreshes reach the provider (and before
// their in-flight markers are written), until it is killed.
type stuckLocks struct{ store.Store }

func (stuckLocks) Lock(ctx context.Context, id string) (func() error, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// runChild is a replica in a process of its own (this test binary run
// again) that claims every due row and hangs, so a test can SIGKILL it
// holding leases.
func runChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child replica:", err); return 1 }
	key, _ := base64.StdEncoding.DecodeString(os.Getenv(envChildKey))
	sealer, err := store.NewSealer(key)
	if err != nil {
		return fail(err)
	}
	st, err := server.OpenStorage(context.Background(), os.Getenv(envChild), sealer)
	if err != nil {
		return fail(err)
	}
	defs, err := parseKeepAliveDefs()
	if err != nil {
		return fail(err)
	}
	srv, err := server.New(server.Config{State: st.State, Tokens: stuckLocks{st.Tokens}, Definitions: defs,
		PublicURL: "http://127.0.0.1:1", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		return fail(err)
	}
	sch, err := srv.Scheduler(scheduler.Config{Owner: childOwner, Lease: childLease, Batch: childBatch, Workers: childWorkers, Poll: 100 * time.Millisecond})
	if err != nil {
		return fail(err)
	}
	fmt.Println("READY")
	_ = sch.Run(context.Background())
	return 0
}

// A scheduler SIGKILLed while holding leases: its rows are claimed by the
// surviving replica once the leases run out, and each connection is
// refreshed exactly once.
func TestKilledSchedulerLeasesTakenOver(t *testing.T) {
	spec := postgres(t)
	f := newFixture(t, spec, fixtureOptions{})
	ctx := context.Background()
	ka := f.oauthClient("procore-keepalive")
	now := time.Now()
	const n = 50
	conns := f.seed(ka, n, now.Add(-time.Hour), func(int) time.Time { return now.Add(time.Second) }) // due at once

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+spec, envChildKey+"="+keyEnv(f.key))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "READY\n" {
		t.Fatalf("child replica: %q, %v", line, err)
	}
	db := f.first.storage.State
	waitFor(t, 2*time.Minute, "the child to lease every row", func() bool {
		for _, c := range conns {
			if s, _ := db.ScheduleOf(ctx, tenant, c.id); s.LeaseOwner != childOwner {
				return false
			}
		}
		return true
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if st := f.emu.Stats(); st.TokenRequests["refresh_token"] != 0 {
		t.Fatalf("the hung child sent %d refreshes", st.TokenRequests["refresh_token"])
	}

	r := f.start(f.first, scheduler.Config{})
	waitFor(t, 2*time.Minute, "the survivor to refresh every connection", func() bool { return f.emu.Stats().Refreshes >= n })
	time.Sleep(time.Second)
	r.stop()
	st := f.emu.Stats()
	if st.Refreshes != n || st.TokenRequests["refresh_token"] != n || st.GrantRevocations != 0 {
		t.Fatalf("%d refreshes (%d requests), %d revocations for %d connections", st.Refreshes, st.TokenRequests["refresh_token"], st.GrantRevocations, n)
	}
	for _, c := range conns {
		s, _ := db.ScheduleOf(ctx, tenant, c.id)
		if s.State != state.ScheduleScheduled || s.LeaseOwner != "" || s.LastRefresh.IsZero() {
			t.Fatalf("connection %s after the takeover: %+v", c.id, s)
		}
		if conn, _ := db.Connection(ctx, tenant, c.id); conn.Status != state.StatusConnected {
			t.Fatalf("connection %s: status %q", c.id, conn.Status)
		}
	}
}

// TestMemoryIdleConnections measures the server's heap with many idle
// connections, all looked at once by the scheduler (which caches each
// connection's engine, as a call would). It runs only with
// CONNECTOR_SCHEDULER_MEMORY=<connections>, e.g. 100000.
func TestMemoryIdleConnections(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CONNECTOR_SCHEDULER_MEMORY"))
	if n <= 0 {
		t.Skip("set CONNECTOR_SCHEDULER_MEMORY=100000 to measure the heap with that many idle connections")
	}
	f := newFixture(t, postgres(t), fixtureOptions{})
	ctx := context.Background()
	ka := f.oauthClient("procore-keepalive")
	now := time.Now()
	begin := time.Now()
	conns := f.seed(ka, n, now, func(int) time.Time { return now.Add(2 * time.Hour) })
	t.Logf("seeded %d connections in %s", n, time.Since(begin).Round(time.Second))
	base := heap()
	r := f.start(f.first, scheduler.Config{})
	begin = time.Now()
	waitFor(t, 30*time.Minute, "every connection scheduled", func() bool {
		by, _, err := f.first.storage.State.ScheduleCounts(ctx, time.Now())
		return err == nil && by[state.ScheduleScheduled] == n
	})
	t.Logf("the scheduler looked at %d connections in %s", n, time.Since(begin).Round(time.Second))
	scheduled := heap()
	r.stop()
	// Each connection used once (a call, or its keep-alive refresh) leaves
	// its engine in the server's cache.
	begin = time.Now()
	for _, c := range conns {
		if _, err := f.first.srv.KeepAliveSource(ctx, tenant, c.id); err != nil {
			t.Fatal(err)
		}
	}
	cached := heap()
	t.Logf("heap in use after GC: %.1f MiB before the scheduler (the emulator's %d grants and the seeding included); %.1f MiB with every connection scheduled (%.2f KiB per connection); %.1f MiB with every connection's engine cached as well (%.1f KiB per connection; %s to build them)",
		mib(base), n, mib(scheduled), kib(scheduled, base, n), mib(cached), kib(cached, base, n), time.Since(begin).Round(time.Second))
}

func kib(after, before uint64, n int) float64 {
	return (float64(after) - float64(before)) / 1024 / float64(n)
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

package scheduler_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/scheduler"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
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
	before, tablesBefore := pgStats(t, db), pgTableStats(t, db)
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
	after, tablesAfter := pgStats(t, db), pgTableStats(t, db)

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
	logTableLoad(t, tablesBefore, tablesAfter, n)
}

// pgTableStats reads, per table, how often it was scanned and how many
// rows the scans read: where the database load of a run goes.
func pgTableStats(t *testing.T, db *state.DB) map[string][4]int64 {
	t.Helper()
	if _, err := db.SQL().Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.SQL().Query(`SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0), COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string][4]int64{}
	for rows.Next() {
		var name string
		var v [4]int64
		if err := rows.Scan(&name, &v[0], &v[1], &v[2], &v[3]); err != nil {
			t.Fatal(err)
		}
		m[name] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// logTableLoad logs the tables that read the most rows between two
// pgTableStats, per refresh.
func logTableLoad(t *testing.T, before, after map[string][4]int64, n int) {
	type load struct {
		name string
		d    [4]int64
	}
	var loads []load
	for name, a := range after {
		b := before[name]
		l := load{name: name}
		for i := range a {
			l.d[i] = a[i] - b[i]
		}
		if l.d[1]+l.d[3] > 0 {
			loads = append(loads, l)
		}
	}
	slices.SortFunc(loads, func(x, y load) int { return cmp.Compare(y.d[1]+y.d[3], x.d[1]+x.d[3]) })
	for _, l := range loads[:min(len(loads), 6)] {
		t.Logf("PostgreSQL table %s: %d sequential scans reading %d rows, %d index scans fetching %d rows (%.1f rows read per refresh)",
			l.name, l.d[0], l.d[1], l.d[2], l.d[3], float64(l.d[1]+l.d[3])/float64(n))
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

// TestMemoryIdleConnections measures the server with many idle
// connections on PostgreSQL: the heap in use and the RSS after GC, per
// connection, once the scheduler has looked at every connection and once
// every connection has been used through the server (each use builds an
// engine; the cache keeps DefaultEngineCache of them), and the database
// load of the idle scheduler (its claims, next-due lookups and
// discovery probes). The rows are written in batches through the state
// layer (state.ImportConnections) and the token store, not through the
// API, and the tokens are not the emulator's (none is refreshed: they
// expire in 2 hours), so neither the seeding nor the emulator's grants
// weigh on the figures. It runs only with CONNECTOR_SCHEDULER_MEMORY=<connections>,
// e.g. 100000.
func TestMemoryIdleConnections(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CONNECTOR_SCHEDULER_MEMORY"))
	if n <= 0 {
		t.Skip("set CONNECTOR_SCHEDULER_MEMORY=100000 to measure the server with that many idle connections")
	}
	f := newFixture(t, postgres(t), fixtureOptions{})
	ctx := context.Background()
	ka := f.oauthClient("procore-keepalive")
	db := f.first.storage.State
	begin := time.Now()
	batch := make([]state.Connection, n)
	for i := range batch {
		batch[i] = state.Connection{Tenant: tenant, Client: ka.ID, Status: state.StatusConnected}
	}
	stored, err := db.ImportConnections(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	batch = nil
	ids := make([]string, len(stored))
	for i, c := range stored {
		ids[i] = c.ID
	}
	stored = nil
	b := f.binding(ka)
	now := time.Now()
	next := make(chan string)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range next {
				rec := store.Record{ID: id, Definition: ka.Definition, Binding: b, Status: store.StatusConnected,
					Token: token.Token{AccessToken: "at-" + id, RefreshToken: "rt-" + id, TokenType: "bearer", Obtained: now, Expiry: now.Add(2 * time.Hour)}}
				if _, err := f.first.storage.Tokens.Put(ctx, rec); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("seeded %d connections with tokens in %s", n, time.Since(begin).Round(time.Second))

	base, baseRSS := heap(), rss()
	// Production's intervals: claims every 2 s at most, discovery every 5
	// s; 32 workers so that the first look at every connection (a token
	// read and a row written each) takes minutes, not a quarter hour.
	r := f.start(f.first, scheduler.Config{Poll: 2 * time.Second, Discover: 5 * time.Second, Workers: 32})
	begin = time.Now()
	waitFor(t, 30*time.Minute, "every connection scheduled", func() bool {
		by, _, err := db.ScheduleCounts(ctx, time.Now())
		return err == nil && by[state.ScheduleScheduled] == n
	})
	t.Logf("the scheduler looked at %d connections in %s (%.0f/s)", n, time.Since(begin).Round(time.Second), float64(n)/time.Since(begin).Seconds())
	scheduled, scheduledRSS := heap(), rss()

	// The idle scheduler's load on the database: nothing is due for 2 hours.
	time.Sleep(6 * time.Second) // past the last discovery pass that found something
	// load is the database's transactions and rows read per second over
	// a window; the same window without the scheduler (autovacuum, this
	// test's statistics queries) is the baseline.
	load := func() (xacts, rows float64) {
		time.Sleep(1500 * time.Millisecond) // statistics are flushed about once a second
		before := pgStats(t, db)
		time.Sleep(20 * time.Second)
		after := pgStats(t, db)
		secs := after.at.Sub(before.at).Seconds()
		r := (after.v["tup_returned"] - before.v["tup_returned"]) + (after.v["tup_fetched"] - before.v["tup_fetched"])
		return float64(after.v["xact_commit"]-before.v["xact_commit"]) / secs, float64(r) / secs
	}
	qs, rs := load()
	r.stop()
	q0, r0 := load()
	t.Logf("idle scheduler over %d connections: %.1f transactions/s and %.1f rows read/s (%.0f per 2 s pass); without it, in the same run: %.1f transactions/s, %.1f rows read/s",
		n, qs, rs, rs*2, q0, r0)

	// Every connection used once through the server (a call, or its
	// keep-alive refresh): an engine is built for each, and the cache
	// keeps the most recent server.DefaultEngineCache.
	begin = time.Now()
	for _, id := range ids {
		if _, err := f.first.srv.KeepAliveSource(ctx, tenant, id); err != nil {
			t.Fatal(err)
		}
	}
	used, usedRSS := heap(), rss()
	t.Logf("after GC, heap in use / RSS: %.1f / %.1f MiB with %d connections seeded; %.1f / %.1f MiB once the scheduler had looked at every one (%.2f / %.2f KiB per connection); %.1f / %.1f MiB once every connection was used through the server, %d engines cached (%.2f / %.2f KiB per connection; %s to build them)",
		mib(base), mib(baseRSS), n, mib(scheduled), mib(scheduledRSS), kib(scheduled, base, n), kib(scheduledRSS, baseRSS, n),
		mib(used), mib(usedRSS), min(n, server.DefaultEngineCache), kib(used, base, n), kib(usedRSS, baseRSS, n), time.Since(begin).Round(time.Second))
}

// rss is the process's resident set after GC, with freed memory returned
// to the OS (VmRSS of /proc/self/status; 0 where there is none).
func rss() uint64 {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
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

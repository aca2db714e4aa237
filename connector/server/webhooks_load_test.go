package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
)

// envWebhookChild makes the test binary a server replica for the webhook
// load test (the database spec as its value); envWebhookLoadFull runs that
// test at full size.
const (
	envWebhookChild    = "CONNECTOR_WEBHOOK_LOAD_CHILD"
	envWebhookLoadFull = "CONNECTOR_WEBHOOK_LOAD_FULL"
)

func init() {
	// TestMain belongs to harness_test.go; a child is started before it.
	if spec := os.Getenv(envWebhookChild); spec != "" {
		os.Exit(runWebhookChild(spec))
	}
}

// runWebhookChild serves one replica until killed: it prints its address
// and runs the server's background workers beside the HTTP server.
func runWebhookChild(spec string) int {
	key, _ := base64.StdEncoding.DecodeString(os.Getenv("CONNECTOR_SERVER_TEST_KEY"))
	sealer, err := store.NewSealer(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := server.OpenStorage(context.Background(), spec, sealer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, PublicURL: "http://" + ln.Addr().String(),
		AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The delivery worker, with a quicker policy than the default (10 s
	// doubling to an hour) and lease (1 min) so that the test drains in
	// seconds after a kill or the receiver's outage; the rules are the same.
	w := srv.EventWorker()
	w.Policy = events.Policy{Base: time.Second, Cap: 4 * time.Second, Budget: 24 * time.Hour, RefusedAttempts: 5}
	w.AttemptTimeout, w.Lease, w.Poll = 5*time.Second, 12*time.Second, 200*time.Millisecond
	go func() { _ = w.Run(context.Background()) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	_ = server.HTTPServer("", srv).Serve(ln)
	return 0
}

// eventPlatform is the tenant's event URL for the load test: it verifies each
// message's signature, answers 503 while down, and de-duplicates by
// webhook-id, recording the order in which each connection's events were
// first accepted.
type eventPlatform struct {
	t      *testing.T
	secret string
	down   atomic.Bool

	mu        sync.Mutex
	received  int                 // messages accepted, duplicates included
	refused   int                 // answered 503 while down
	bad       int                 // failed verification or unreadable
	seen      map[string]bool     // webhook-id accepted
	order     map[string][]string // connection -> webhook-ids, first acceptance order
	delivery  map[string][]string // provider delivery id -> webhook-ids
	lastFirst time.Time           // when the latest new id was accepted
}

func (p *eventPlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if p.down.Load() {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var msg struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		Connection string `json:"connection"`
		Data       struct {
			DeliveryID string `json:"delivery_id"`
		} `json:"data"`
	}
	if err == nil {
		err = events.Verify(p.secret, r.Header, body, time.Now(), 5*time.Minute)
	}
	if err == nil {
		err = json.Unmarshal(body, &msg)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || msg.ID == "" || msg.ID != r.Header.Get("webhook-id") || msg.Type != state.TypeWebhookDelivery {
		p.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p.received++
	if !p.seen[msg.ID] {
		p.seen[msg.ID] = true
		p.order[msg.Connection] = append(p.order[msg.Connection], msg.ID)
		p.delivery[msg.Data.DeliveryID] = append(p.delivery[msg.Data.DeliveryID], msg.ID)
		p.lastFirst = time.Now()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (p *eventPlatform) unique() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

// loadChild is a replica process the load test can SIGKILL and restart.
type loadChild struct {
	t    *testing.T
	spec string
	key  []byte
	cmd  *exec.Cmd
	base atomic.Value // string: its base URL, "" while down
}

func (c *loadChild) start() {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWebhookChild+"="+c.spec, "CONNECTOR_SERVER_TEST_KEY="+base64.StdEncoding.EncodeToString(c.key))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		c.t.Fatalf("child replica: %q, %v", line, err)
	}
	c.cmd = cmd
	c.base.Store("http://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")))
}

func (c *loadChild) kill() {
	c.base.Store("")
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// TestWebhookDeliveriesSurviveKills is the webhook acceptance test: a load
// generator sends signed Procore-shaped deliveries at 200/s (with
// redeliveries of some it already got a 2xx for) to a server replica in a
// child process on SQLite (and on PostgreSQL), which is SIGKILLed and restarted three times
// mid-run. Like Procore, the generator sends again what got no 2xx. Every
// delivery acknowledged with a 2xx must be stored exactly once, attributed
// to the connection of its company_id (none for unknown companies), and
// forwarded by the replica's event worker to a loopback platform that is
// down for a while mid-run (a minute at full size) and de-duplicates by
// webhook-id: each delivery there exactly once in effect, none lost, each
// connection's events in the order they were stored.
//
// It sends 1,000 deliveries by default (5 s of load; 300 under the race
// detector, which slows the replica many times over) and 10,000 (50 s)
// with CONNECTOR_WEBHOOK_LOAD_FULL=1 (CONNECTOR_WEBHOOK_LOAD_N sets any
// other count).
func TestWebhookDeliveriesSurviveKills(t *testing.T) {
	n := 1000
	if v, _ := strconv.Atoi(os.Getenv("CONNECTOR_WEBHOOK_LOAD_N")); v > 0 {
		n = v
	}
	switch {
	case os.Getenv(envWebhookLoadFull) != "":
		n = 10000
	case raceEnabled:
		n = 300
	}
	backends(t, func(t *testing.T, spec func(*testing.T) string) { webhookLoad(t, spec(t), n) })
}

func webhookLoad(t *testing.T, spec string, n int) {
	const rate, kills, companies = 200, 3, 20
	sealer := randomKey(t)
	st, err := server.OpenStorage(context.Background(), spec, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	db := st.State
	if _, err := db.EnsureTenant(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	cl, err := db.CreateClient(ctx, state.Client{Tenant: "acme", Definition: "procore", ClientID: emuClientID, Secret: emuSecret, RedirectURI: "http://127.0.0.1/oauth/callback"})
	if err != nil {
		t.Fatal(err)
	}
	// Connections for companies 1..companies; deliveries also name company
	// 0, which no connection has.
	connOf := map[string]string{}
	for c := 1; c <= companies; c++ {
		conn, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID, Fields: map[string]string{"CompanyId": strconv.Itoa(c)}})
		if err != nil {
			t.Fatal(err)
		}
		connOf[strconv.Itoa(c)] = conn.ID
	}
	secret := "load-test-webhook-secret-0123456789"
	remember(secret)
	if _, err := db.SetWebhookSecret(ctx, "acme", cl.ID, secret, 0); err != nil {
		t.Fatal(err)
	}

	// The tenant's event URL: a loopback platform that is down for a while
	// in the middle of the run (a minute at full size).
	plat := &eventPlatform{t: t, secret: events.NewSecret(), seen: map[string]bool{}, order: map[string][]string{}, delivery: map[string][]string{}}
	remember(plat.secret)
	ps := httptest.NewServer(plat)
	defer ps.Close()
	if _, _, err := db.SetEndpoint(ctx, "acme", ps.URL+"/events", plat.secret); err != nil {
		t.Fatal(err)
	}
	downFor := 3 * time.Second
	if n >= 10000 {
		downFor = time.Minute
	}

	child := &loadChild{t: t, spec: spec, key: lastKey}
	child.start()
	t.Cleanup(func() {
		if child.cmd != nil && child.cmd.ProcessState == nil {
			child.kill()
		}
	})

	company := func(i int) string { return strconv.Itoa(i % (companies + 1)) }
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var sends, acks, refusedByKill, dupSent, dupAnswered atomic.Int64
	send := func(i int) bool {
		base, _ := child.base.Load().(string)
		if base == "" {
			refusedByKill.Add(1)
			return false
		}
		sends.Add(1)
		req, _ := http.NewRequest("POST", base+"/v1/webhooks/procore/"+cl.ID, strings.NewReader(string(procoreDelivery(i, company(i)))))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			refusedByKill.Add(1)
			return false
		}
		var ans struct{ Duplicate bool }
		_ = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("delivery %d: HTTP %d", i, resp.StatusCode)
			}
			return false
		}
		if ans.Duplicate {
			dupAnswered.Add(1)
		}
		return true
	}

	// The generator: delivery i is due at start + i/rate; what got no 2xx
	// is sent again after a pause (a provider's retry); 1 in 20 acknowledged
	// ones is sent again (a provider's duplicate delivery).
	acked := make([]atomic.Bool, n)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		if due := start.Add(time.Duration(i) * time.Second / rate); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		if k := i * (kills + 1) / n; k >= 1 && k <= kills && (i-1)*(kills+1)/n < k {
			child.kill()
			time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
			child.start()
			t.Logf("killed and restarted the replica at delivery %d", i)
		}
		if i == n*2/5 {
			plat.down.Store(true)
			time.AfterFunc(downFor, func() { plat.down.Store(false) })
			t.Logf("the platform's event URL is down for %s from delivery %d", downFor, i)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for attempt := 0; !send(i); attempt++ {
				if attempt > 200 {
					t.Errorf("delivery %d never acknowledged", i)
					return
				}
				time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
			}
			acked[i].Store(true)
			acks.Add(1)
			if i%20 == 7 {
				dupSent.Add(1)
				for !send(i) {
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)

	// Every acknowledged delivery is stored exactly once, attributed.
	evs := webhookEvents(t, db, "acme")
	seen := map[string]int{}
	for _, ev := range evs {
		var d struct {
			DeliveryID string `json:"delivery_id"`
			Body       struct {
				CompanyID json.Number `json:"company_id"`
			} `json:"body"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		seen[d.DeliveryID]++
		if want := connOf[d.Body.CompanyID.String()]; ev.Connection != want {
			t.Errorf("delivery %s of company %s attributed to %q, want %q", d.DeliveryID, d.Body.CompanyID, ev.Connection, want)
		}
	}
	var lost, twice int
	for i := range n {
		switch c := seen[strconv.Itoa(i)]; {
		case acked[i].Load() && c == 0:
			lost++
		case c > 1:
			twice++
		}
	}
	t.Logf("%d deliveries at %d/s in %s with %d kills: %d requests, %d acknowledged, %d attempts refused while the replica was down or dying, %d redelivered (%d answered duplicate); %d events stored",
		n, rate, sent.Round(time.Millisecond), kills, sends.Load(), acks.Load(), refusedByKill.Load(), dupSent.Load(), dupAnswered.Load(), len(evs))
	if lost > 0 || twice > 0 || len(evs) != n || int(acks.Load()) != n {
		t.Fatalf("%d acknowledged deliveries lost, %d stored twice, %d events for %d deliveries (%d acknowledged)", lost, twice, len(evs), n, acks.Load())
	}

	// Every stored event reaches the platform: wait (while the platform
	// may still be down) until it has accepted every one, or give up after
	// a bound that only a lost event reaches.
	deadline, report := time.Now().Add(4*time.Minute), time.Now().Add(30*time.Second)
	if n >= 10000 {
		deadline = time.Now().Add(20 * time.Minute)
	}
	for plat.unique() < len(evs) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if time.Now().After(report) {
			report = time.Now().Add(30 * time.Second)
			t.Logf("waiting: the platform has %d of %d events", plat.unique(), len(evs))
		}
	}
	if plat.unique() < len(evs) {
		undelivered := 0
		for _, ev := range webhookEvents(t, db, "acme") {
			if ev.Delivery.Status != state.DeliveryDelivered {
				if undelivered++; undelivered <= 3 {
					t.Logf("undelivered: %v %+v", ev, ev.Delivery)
				}
			}
		}
		t.Logf("%d events not delivered", undelivered)
	}
	plat.mu.Lock()
	defer plat.mu.Unlock()
	drained := plat.lastFirst.Sub(start.Add(sent))
	t.Logf("forwarded: %d events accepted by the platform in %d messages (%d duplicates removed by webhook-id), %d answered 503 while it was down, %d unverifiable; the last one %s after the last delivery was acknowledged",
		len(plat.seen), plat.received, plat.received-len(plat.seen), plat.refused, plat.bad, drained.Round(time.Millisecond))
	if plat.bad > 0 {
		t.Errorf("%d messages failed the platform's signature check or did not read", plat.bad)
	}
	if len(plat.seen) != len(evs) {
		t.Fatalf("the platform accepted %d of %d events", len(plat.seen), len(evs))
	}
	// Exactly once in effect: one webhook-id per provider delivery, and
	// each connection's events first accepted in the order they were stored.
	for _, i := range []int{0, n / 2, n - 1} {
		if ids := plat.delivery[strconv.Itoa(i)]; len(ids) != 1 {
			t.Errorf("delivery %d reached the platform as %d events: %v", i, len(ids), ids)
		}
	}
	for id, ids := range plat.delivery {
		if len(ids) != 1 {
			t.Errorf("delivery %s reached the platform as %d events", id, len(ids))
		}
	}
	stored := map[string][]string{} // connection -> event ids in stream order
	query := `SELECT connection, id FROM server_events WHERE tenant = ? AND type = ? ORDER BY connection, seq`
	if db.Kind() == state.Postgres {
		query = strings.Replace(strings.Replace(query, "?", "$1", 1), "?", "$2", 1)
	}
	rows, err := db.SQL().QueryContext(ctx, query, "acme", state.TypeWebhookDelivery)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var conn, id string
		if err := rows.Scan(&conn, &id); err != nil {
			t.Fatal(err)
		}
		stored[conn] = append(stored[conn], id)
	}
	rows.Close()
	for conn, want := range stored {
		got := plat.order[conn]
		if !slices.Equal(got, want) {
			t.Errorf("connection %q: the platform accepted its %d events out of order (%d stored)", conn, len(got), len(want))
		}
	}
}

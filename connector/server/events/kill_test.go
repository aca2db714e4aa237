package events_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
)

const (
	envChild    = "CONNECTOR_EVENTS_TEST_WORKER" // the PostgreSQL URL a child worker delivers from
	envChildKey = "CONNECTOR_EVENTS_TEST_KEY"
	childID     = "wrk_child"
	childLease  = 3 * time.Second
)

// runChildWorker is a replica's worker in a process of its own (this test
// binary again), so that a test can SIGKILL it.
func runChildWorker() int {
	key, _ := base64.StdEncoding.DecodeString(os.Getenv(envChildKey))
	sealer, err := store.NewSealer(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db, err := state.OpenPostgres(context.Background(), os.Getenv(envChild), sealer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := &events.Worker{DB: db, Policy: fast, AllowPrivate: true, ID: childID, Lease: childLease, AttemptTimeout: 2 * time.Second,
		Poll: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	fmt.Println("READY")
	_ = w.Run(context.Background())
	return 0
}

// TestKilledReplicaWorker: a worker in another process is SIGKILLed while
// its attempts are in flight (the receiver holds them), leases held. The
// surviving worker delivers everything once the leases expire: nothing
// lost, in order per connection; the only redeliveries are of events the
// killed one may have sent.
func TestKilledReplicaWorker(t *testing.T) {
	postgres(t, func(t *testing.T, open func() *state.DB) {
		db := open()
		rc := newReceiver(t)
		setup(t, db, rc)
		appended := map[string][]string{}
		conns := []string{"con_a", "con_b", "con_c", "con_d", "con_e", "con_f"}
		appendEvents(t, db, conns, 8, appended)

		// After 10 acceptances the receiver holds every request until the
		// child is dead.
		var mu sync.Mutex
		held, release := 0, make(chan struct{})
		gate := func() bool {
			n := rc.accepted()
			mu.Lock()
			hold := n >= 10 && release != nil
			ch := release
			if hold {
				held++
			}
			mu.Unlock()
			if hold {
				<-ch // until the child is dead; its connection with it
			}
			return hold
		}
		rc.mu.Lock()
		rc.gate = gate
		rc.mu.Unlock()

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"="+testURL, envChildKey+"="+base64.StdEncoding.EncodeToString(testKey))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "READY" {
			t.Fatalf("child worker: %q %v", line, err)
		}
		waitFor(t, "the child's attempts held", func() bool { mu.Lock(); defer mu.Unlock(); return held >= 3 })
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		var leased int
		if err := db.SQL().QueryRow(`SELECT count(*) FROM server_event_jobs WHERE lease_owner = $1`, childID).Scan(&leased); err != nil {
			t.Fatal(err)
		}
		if leased == 0 {
			t.Fatal("the killed worker held no lease")
		}
		mu.Lock()
		close(release)
		release = nil
		mu.Unlock()
		before := rc.accepted()
		start(t, db, nil)
		waitFor(t, "every event accepted", func() bool { return rc.accepted() == total(appended) })
		dups := rc.check(t, appended)
		t.Logf("%d events over %d connections: %d accepted before the SIGKILL, %d jobs leased by the killed worker, all delivered by the survivor, in order; %d redeliveries",
			total(appended), len(conns), before, leased, dups)
	})
}

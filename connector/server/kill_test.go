package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/store"
)

const envReplica = "CONNECTOR_SERVER_TEST_REPLICA" // the database URL a child replica serves

// runChildReplica is a replica in a process of its own (this test binary
// run again), so that a test can SIGKILL it: it prints its address and
// serves until killed.
func runChildReplica() int {
	key, _ := base64.StdEncoding.DecodeString(os.Getenv("CONNECTOR_SERVER_TEST_KEY"))
	sealer, err := store.NewSealer(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := server.OpenStorage(context.Background(), os.Getenv(envReplica), sealer)
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
		AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true, TokenMargin: 250 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	_ = server.HTTPServer("", srv).Serve(ln)
	return 0
}

// startChild runs a child replica on url and returns its base URL and process.
func startChild(t *testing.T, url string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envReplica+"="+url, "CONNECTOR_SERVER_TEST_KEY="+base64.StdEncoding.EncodeToString(lastKey))
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
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child replica: %q, %v", line, err)
	}
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), cmd
}

// TestReplicaKilledMidStorm: a storm of proxied calls through an
// in-process replica and a child-process replica on one PostgreSQL, on
// 1-second tokens. The child is SIGKILLed mid-storm: the other replica
// keeps serving every call, no refresh token is presented twice (a lock
// the dead replica held is released with its database sessions), and a
// restarted child rejoins and serves.
func TestReplicaKilledMidStorm(t *testing.T) {
	url := pgtest.Shared(t)
	e := newEnv(t, url, envOptions{tokenLifetime: time.Second, margin: 250 * time.Millisecond})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	childURL, child := startChild(t, url)
	key := e.keys["acme:proxy"]
	path := "/v1/connections/" + conn + "/proxy/rest/v1.0/me"
	call := func(base string) (int, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var stop, killed atomic.Bool
	var inProc, inProcFail, childOK, reauth atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var childBase atomic.Value
	childBase.Store(childURL)
	for w := range 12 {
		wg.Go(func() {
			for !stop.Load() {
				if w%2 == 0 {
					code, err := call(e.replicas[0].url)
					inProc.Add(1)
					if code == http.StatusConflict && killed.Load() {
						// The child died after sending a refresh whose answer
						// was lost: the engine refuses to present that refresh
						// token again and asks for re-authorization instead.
						reauth.Add(1)
					} else if code != 200 {
						inProcFail.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprint(code, err))
					}
				} else if code, _ := call(childBase.Load().(string)); code == 200 {
					childOK.Add(1)
				} else if !killed.Load() {
					firstErr.CompareAndSwap(nil, fmt.Sprint("child: ", code))
				}
			}
		})
	}
	waitRefreshes := func(n int) {
		for e.emu.Stats().Refreshes < n && inProcFail.Load() == 0 && reauth.Load() == 0 && !t.Failed() {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRefreshes(2)
	killed.Store(true)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	afterKill := e.emu.Stats().Refreshes
	waitRefreshes(afterKill + 2) // the survivor alone refreshes through two expiries
	newURL, _ := startChild(t, url)
	before := childOK.Load()
	childBase.Store(newURL)
	killed.Store(false)
	for childOK.Load() < before+5 && inProcFail.Load() == 0 && reauth.Load() == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	st := e.emu.Stats()
	t.Logf("%d calls through the surviving replica (%d failed), %d through the child before and after its restart; %d refreshes, %d grant revocations",
		inProc.Load(), inProcFail.Load(), childOK.Load(), st.Refreshes, st.GrantRevocations)
	if inProcFail.Load() != 0 {
		t.Fatalf("the surviving replica failed %d calls; first: %v", inProcFail.Load(), firstErr.Load())
	}
	if reauth.Load() > 0 {
		t.Logf("the child was killed with a refresh in flight: %d calls answered needs_reauthorization (the engine's lost-refresh rule), none replayed the refresh token", reauth.Load())
	}
	if st.GrantRevocations != 0 {
		t.Fatalf("a refresh token was presented twice: %d grants revoked", st.GrantRevocations)
	}
}

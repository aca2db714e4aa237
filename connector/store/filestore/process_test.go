package filestore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
)

// The multi-process tests run this test binary again as helper processes;
// these variables tell a helper what to do.
const (
	envHelper     = "FILESTORE_TEST_HELPER" // "increment" or "hold"
	envHelperPath = "FILESTORE_TEST_PATH"
	envHelperN    = "FILESTORE_TEST_N"
)

// TestHelperProcess is not a test: it is the body of a helper process, and
// returns at once when run as part of the suite.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		return
	}
	if err := helper(mode); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helper(mode string) error {
	sealer, err := store.LoadSealer("") // the key comes in CONNECTOR_SECRET_KEY
	if err != nil {
		return err
	}
	s, err := Open(os.Getenv(envHelperPath), sealer)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	switch mode {
	case "increment":
		n, _ := strconv.Atoi(os.Getenv(envHelperN))
		for range n {
			unlock, err := s.Lock(ctx, "counter")
			if err != nil {
				return err
			}
			// Under the lock, Get then Put must never conflict.
			err = increment(ctx, s, "counter")
			if uerr := unlock(); err == nil {
				err = uerr
			}
			if err != nil {
				return err
			}
		}
		return nil
	case "hold":
		if _, err := s.Lock(ctx, "held"); err != nil {
			return err
		}
		fmt.Println("locked")
		time.Sleep(time.Hour) // until killed
		return errors.New("was not killed")
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// helperCmd prepares a helper process sharing the store at path and the key.
func helperCmd(t *testing.T, mode, path, key string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envHelper+"="+mode,
		envHelperPath+"="+path,
		store.EnvSecretKey+"="+key,
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	return cmd
}

func newKeyEnv(t *testing.T) (key string, sealer *store.Sealer) {
	t.Helper()
	raw := make([]byte, store.KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	sealer, err := store.NewSealer(raw)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), sealer
}

func TestMultiProcessIncrements(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	const procs, each = 8, 50
	path := filepath.Join(t.TempDir(), "store.json")
	key, sealer := newKeyEnv(t)

	cmds := make([]*exec.Cmd, procs)
	stderr := make([]bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = helperCmd(t, "increment", path, key, envHelperN+"="+strconv.Itoa(each))
		cmds[i].Stderr = &stderr[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, stderr[i].String())
		}
	}
	if t.Failed() {
		return
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeFile(path, data); err != nil {
		t.Fatalf("the store file does not parse after concurrent writers: %v", err)
	}
	s := openStore(t, path, sealer)
	if n, v := counter(t, s, "counter"); n != procs*each || v != procs*each {
		t.Errorf("count = %d at version %d; want %d (an update was lost)", n, v, procs*each)
	}
}

func TestLockReleasedWhenHolderKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	key, sealer := newKeyEnv(t)
	s := openStore(t, path, sealer)

	cmd := helperCmd(t, "hold", path, key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q (%v); stderr:\n%s", line, err, stderr.String())
	}

	// While the helper lives, its lock excludes this process.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, "held"); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("Lock while another process holds it: %v; want ErrLockTimeout", err)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred unlock runs
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	unlock, err := s.Lock(ctx2, "held")
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

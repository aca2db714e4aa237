// Package pgtest runs throwaway PostgreSQL servers for tests: initdb into a
// temporary directory, a postgres listening on a free 127.0.0.1 port (and a
// unix socket in the same directory), removed when the test ends.
//
// PostgreSQL refuses to run as root, so when the tests run as root the
// server runs as the "postgres" OS user, which owns the temporary directory.
// The server is started with a parent-death signal: if the test binary dies
// (a timeout, a SIGKILL) the server dies with it instead of lingering.
//
// Without PostgreSQL's binaries (Debian: apt-get install postgresql) the
// tests that need a server skip, except under CI=true, where they fail: a CI
// run that silently skips the database tests proves nothing.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallHint says how to get the binaries this package looks for.
const InstallHint = "install PostgreSQL (Debian/Ubuntu: apt-get install -y postgresql); pgtest looks for initdb and postgres under /usr/lib/postgresql/*/bin, or in $PGTEST_BIN"

// EnvBin names a directory holding initdb and postgres, for systems that
// keep them elsewhere than Debian does.
const EnvBin = "PGTEST_BIN"

// Cluster is one running (or stopped) throwaway server. Its methods are
// safe for concurrent use.
type Cluster struct {
	root string // the temporary directory: data/, socket/, postgres.log
	bin  string
	port int
	cred *syscall.Credential // run as the postgres user; nil when not root

	mu     sync.Mutex
	cmd    *exec.Cmd  // the postmaster while running
	out    *os.File   // its log
	waited chan error // gets cmd.Wait's result
}

// New starts a server of its own for t and removes it when t ends. Use it
// for tests that stop or restart the server; others can share one with
// Shared.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(c.destroy)
	return c
}

// errNoBinaries marks a machine without PostgreSQL.
var errNoBinaries = errors.New("PostgreSQL binaries not found")

func unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNoBinaries) && os.Getenv("CI") != "true" {
		t.Skipf("pgtest: %v; %s", err, InstallHint)
	}
	t.Fatalf("pgtest: %v", err)
}

var shared struct {
	mu      sync.Mutex
	inMain  bool
	cluster *Cluster
	err     error
	dbs     int
}

// Main runs the tests of a package whose tests call Shared, then stops the
// shared server: call it from TestMain as os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil {
		shared.cluster.destroy()
	}
	return code
}

// Shared returns the URL of a new, empty database on a server shared by the
// tests of this test binary (started on first use; the package's TestMain
// must call Main, which stops it).
func Shared(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("pgtest.Shared: the package's TestMain must call pgtest.Main, which stops the shared server")
	}
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = start()
	}
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	shared.dbs++
	return shared.cluster.CreateDatabase(t, fmt.Sprintf("test_%d", shared.dbs))
}

// findBin returns the directory of initdb and postgres: $PGTEST_BIN, else
// the newest /usr/lib/postgresql/*/bin.
func findBin() (string, error) {
	if d := os.Getenv(EnvBin); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("%w in %s=%s", errNoBinaries, EnvBin, d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: "9.6" < "15" needs a numeric sort.
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(a)), 64)
		vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(b)), 64)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	for _, d := range dirs {
		_, errI := os.Stat(filepath.Join(d, "initdb"))
		_, errP := os.Stat(filepath.Join(d, "postgres"))
		if errI == nil && errP == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (no initdb and postgres under /usr/lib/postgresql/*/bin)", errNoBinaries)
}

// runAs returns the credential of the postgres user when running as root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root, but there is no postgres user to run it as (%v); %s", err, InstallHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func start() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are private to root, and the postgres
	// user must reach this directory.
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{root: root, bin: bin, cred: cred}
	if err := c.initdb(); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	// A free port can be taken by someone else between the check and the
	// server's bind; a few tries make that harmless.
	for try := 0; ; try++ {
		c.port, err = freePort()
		if err == nil {
			err = c.Start()
		}
		if err == nil || try == 4 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) initdb() error {
	for _, d := range []string{c.root, c.dataDir(), c.socketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if c.cred != nil {
			if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command(filepath.Join(c.bin, "initdb"),
		"-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb failed: %v\n%s", err, out)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) dataDir() string   { return filepath.Join(c.root, "data") }
func (c *Cluster) socketDir() string { return filepath.Join(c.root, "socket") }

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL is a postgres:// URL of database on the server, over TCP.
func (c *Cluster) URL(database string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// SocketURL is a URL of database over the server's unix socket: a second
// way in, as another host would have its own.
func (c *Cluster) SocketURL(database string) string {
	q := url.Values{"host": {c.socketDir()}, "port": {strconv.Itoa(c.port)}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + url.PathEscape(database) + "?" + q.Encode()
}

// Start starts the server (again, after Stop) and waits until it accepts
// connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("pgtest: the server is already running")
	}
	logf, err := os.OpenFile(filepath.Join(c.root, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"),
		"-D", c.dataDir(),
		"-p", strconv.Itoa(c.port),
		"-k", c.socketDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=300",
		// Durability against power loss is not what these tests are
		// about, and fsyncs on a shared CI disk make them slow.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			break
		}
		select {
		case werr := <-exited:
			logf.Close()
			return fmt.Errorf("pgtest: postgres exited at start (%v); its log:\n%s", werr, c.Log())
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			logf.Close()
			return fmt.Errorf("pgtest: postgres did not accept connections within a minute (%v); its log:\n%s", err, c.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.cmd, c.out = cmd, logf
	c.waited = exited
	return nil
}

// Stop shuts the server down ("fast": open sessions are ended) and waits
// for it to exit. Start brings it back with the same data and port.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	var err error
	select {
	case err = <-c.waited:
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		err = <-c.waited
	}
	c.out.Close()
	c.cmd, c.out = nil, nil
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return fmt.Errorf("pgtest: stopping postgres: %w", err)
	}
	return nil
}

// Restart is Stop then Start.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start()
}

// Log returns what the server has logged so far.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.root, "postgres.log"))
	return string(b)
}

// CreateDatabase creates an empty database and returns its URL.
func (c *Cluster) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if err := c.Exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return c.URL(name)
}

// Exec runs one SQL statement as the superuser in the postgres database.
func (c *Cluster) Exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func (c *Cluster) destroy() {
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if strings.HasPrefix(filepath.Base(c.root), "pgtest-") {
		os.RemoveAll(c.root)
	}
}

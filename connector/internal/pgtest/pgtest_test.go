package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func query(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestClusterStopStart(t *testing.T) {
	c := New(t)
	url := c.CreateDatabase(t, "things")
	if n := query(t, url); n != 42 {
		t.Fatalf("got %d", n)
	}
	if n := query(t, c.SocketURL("things")); n != 42 {
		t.Fatalf("over the socket: got %d", n)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if n := query(t, url); n != 42 {
		t.Fatalf("after restart: got %d", n)
	}
}

func TestShared(t *testing.T) {
	a, b := Shared(t), Shared(t)
	if a == b {
		t.Fatal("two Shared calls gave the same database")
	}
	query(t, a)
	query(t, b)
}

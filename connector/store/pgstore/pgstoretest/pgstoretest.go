// Package pgstoretest gives tests outside the connector tree (the CLI's) a
// throwaway PostgreSQL database for a pgstore, through connector/internal/pgtest,
// which Go's internal rule keeps from them. It starts nothing in non-test code.
package pgstoretest

import (
	"testing"

	"github.com/connector-engine/connector/connector/internal/pgtest"
)

// Database starts a PostgreSQL server of t's own (stopped and removed when t
// ends), creates an empty database name on it and returns its URL. Without
// PostgreSQL's binaries t is skipped, or fails under CI=true.
func Database(t testing.TB, name string) string {
	t.Helper()
	return pgtest.New(t).CreateDatabase(t, name)
}

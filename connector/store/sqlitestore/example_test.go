package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/sqlitestore"
)

// A program keeps its own tables and the connections' tokens in one
// database file: it opens the file with OpenDB and gives it to New.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sealer, err := store.NewSealer(make([]byte, store.KeySize)) // use a secret key: store.LoadSealer
	if err != nil {
		log.Fatal(err)
	}

	db, err := sqlitestore.OpenDB(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}
	tokens, err := sqlitestore.New(db, sealer)
	if err != nil {
		log.Fatal(err)
	}
	defer tokens.Close() // leaves db open

	ctx := context.Background()
	r, err := tokens.Put(ctx, store.Record{ID: "procore.production.1", Definition: "procore", Status: store.StatusConnected})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.ID, "at version", r.Version)
	// Output: procore.production.1 at version 1
}

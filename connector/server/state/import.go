package state

import (
	"context"
	"fmt"
	"strings"
)

// importBatch is how many connections one INSERT of ImportConnections
// stores: 10 parameters each stays well under both databases' limits
// (SQLite 32,766, PostgreSQL 65,535).
const importBatch = 500

// ImportConnections stores many new connections at once, importBatch rows
// per statement, each statement its own transaction: for bringing
// connections over from another system, and for load tests (the scheduler's
// 100,000-connection measurement), where CreateConnection's round trips per
// connection would dominate. As with CreateConnection, every connection
// gets a new id, its Client must be one of its Tenant's clients (checked
// once per client), Status defaults to pending, and its fields are sealed
// bound to its row. The webhook index is not written here: a delivery for
// the client that finds no connection indexes the client's connections
// then (deliveries.go). It returns the connections as stored; on an error,
// the batches before it are stored.
func (d *DB) ImportConnections(ctx context.Context, conns []Connection) ([]Connection, error) {
	checked := map[[2]string]bool{}
	out := make([]Connection, 0, len(conns))
	for start := 0; start < len(conns); start += importBatch {
		batch := conns[start:min(start+importBatch, len(conns))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO server_connections (id, tenant, client, environment, fields_sealed, status, reason, created, updated, version) VALUES `)
		args := make([]any, 0, 10*len(batch))
		stored := make([]Connection, 0, len(batch)) // the caller's slice is left as it was
		for i, c := range batch {
			k := [2]string{c.Tenant, c.Client}
			if !checked[k] {
				if _, err := d.Client(ctx, c.Tenant, c.Client); err != nil {
					return out, err
				}
				checked[k] = true
			}
			sealed, err := d.newConnection(&c)
			if err != nil {
				return out, err
			}
			now := c.Created
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, c.ID, c.Tenant, c.Client, c.Environment, sealed, c.Status, c.Reason, nanos(now), nanos(now), c.Version)
			stored = append(stored, c)
		}
		if _, err := d.exec(ctx, sb.String(), args...); err != nil {
			return out, fmt.Errorf("state: importing connections: %w", err)
		}
		out = append(out, stored...)
	}
	return out, nil
}

package state

import (
	"context"
	"fmt"
)

// pageLimit is a listing's page size: DefaultLimit for 0 (or less), at
// most MaxLimit.
func pageLimit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// queryPage runs a listing's query (ordered, without its LIMIT) for one
// page of limit rows, scanning each with scan. It reads one row more than
// the page, to know whether another page follows: next is then cursor of
// the page's last item, else "".
func queryPage[T any](ctx context.Context, d *DB, what, query string, args []any, limit int,
	scan func(interface{ Scan(...any) error }) (T, error), cursor func(T) string) (page []T, next string, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(query+" LIMIT ?"), append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("state: listing %s: %w", what, err)
	}
	defer rows.Close()
	page = []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		page = append(page, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(page) > limit {
		page = page[:limit]
		next = cursor(page[len(page)-1])
	}
	return page, next, nil
}

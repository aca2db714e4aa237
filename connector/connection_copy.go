package connector

import (
	"maps"
	"slices"
)

// clone returns a copy of c that shares nothing a caller can change: the
// constructors (NewFlow, NewSource, NewAPI) keep a clone, so a Connection
// edited after them never changes the store key or the values of a flow
// or an API already built from it. The Definition is shared: it is
// immutable once loaded.
func (c *Connection) clone() *Connection {
	if c == nil {
		return nil
	}
	cc := *c
	cc.Scopes = slices.Clone(c.Scopes)
	cc.Fields = maps.Clone(c.Fields)
	cc.learned = maps.Clone(c.learned)
	return &cc
}

package connector

import (
	"context"
	"fmt"
	"net/url"

	"github.com/connector-engine/connector/connector/token"
)

// ExchangeAndStore finishes an authorization code flow: it checks the
// provider's redirect (callback is its query: code, state, or an error) for
// attempt, exchanges the code, and stores the token, which is what an
// embedder wants after AuthCodeURL. Flow.Exchange alone does not store
// anything, so a Source (or an API) would find no token.
//
// The code is single use: when the exchange succeeded but storing failed,
// the token is returned with the error so that the caller can still keep it
// (Store) rather than send the user through consent again.
func (s *Source) ExchangeAndStore(ctx context.Context, attempt *Attempt, callback url.Values) (*token.Token, error) {
	t, err := s.flow.Exchange(ctx, attempt, callback)
	if err != nil {
		return nil, err
	}
	if err := s.Store(ctx, t); err != nil {
		return t, fmt.Errorf("the code was exchanged but the token could not be stored (keep it with Source.Store, or authorize again): %w", err)
	}
	return t, nil
}

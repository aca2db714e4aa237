package connector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// Source hands out a connection's access token, refreshing it through the
// store's refresh protocol so that no rotated refresh token is ever lost:
//
//  1. one refresh per connection at a time in this process (singleflight);
//  2. one across processes and hosts (the store's per-connection lock);
//  3. after locking, re-read: another worker may already have refreshed;
//  4. mark "refresh in flight" durably before calling the provider, and
//     store the new tokens durably before the lock is released or the
//     access token is used; if that write fails, the token is not used;
//  5. on invalid_grant, re-read before declaring the connection broken.
//
// Source satisfies oauth2.TokenSource.
type Source struct {
	conn *Connection
	flow *Flow // nil for schemes without OAuth
	// fetch obtains a token without consuming anything (client
	// credentials, a session login): an interrupted one is simply asked
	// again, so it needs no in-flight marker. nil for grants that refresh.
	fetch   func(context.Context) (*token.Token, error)
	session *SessionLogin // auth.scheme: session; nil otherwise
	oauth1  *OAuth1Flow   // auth.scheme: oauth1; nil otherwise
	store   store.Store
	binding store.Binding // what this connection's records must be bound to

	// Margin caps how long before expiry a token is refreshed proactively:
	// a token is renewed when a tenth of its lifetime is left, or Margin if
	// that is less (token.RefreshMargin). The definition's
	// token_response.refresh_margin sets it; DefaultMargin otherwise.
	Margin time.Duration
	// LockTimeout bounds the wait for another worker's refresh; it is longer
	// than a token request (with its retries) can take.
	LockTimeout time.Duration
	Now         func() time.Time

	group  singleflight.Group
	mu     sync.Mutex
	cached token.Token
}

// ReasonLostRefresh is the Reason of a connection whose refresh may have
// been sent but whose outcome was never recorded.
const ReasonLostRefresh = "an earlier refresh was interrupted after its request may have reached the provider; if the provider rotated the refresh token, " +
	"the answer was lost, and presenting the old refresh token again would make it revoke the grant. Authorize the connection again (connector connect)"

// ReasonRefreshConsumed is the Reason of a connection whose interrupted
// refresh the provider confirms it carried out (introspection says the old
// refresh token is no longer active): the rotated answer was lost.
const ReasonRefreshConsumed = "an earlier refresh was interrupted after the provider had carried it out (it reports the old refresh token inactive), so the rotated token was lost. " +
	"Authorize the connection again (connector connect)"

// DefaultMargin is the default cap of the proactive refresh margin.
const DefaultMargin = 2 * time.Minute

// NewSource returns the token source of a connection backed by st. It keeps
// a copy of c: a change to c afterwards does not reach the source (build a
// new one). After an authorization code flow, ExchangeAndStore puts the
// first token in st; Flow().Exchange alone does not.
func NewSource(c *Connection, st store.Store) (*Source, error) {
	c = c.clone() // a later edit of the caller's Connection must not move the store key
	s := &Source{conn: c, store: st, Margin: DefaultMargin, LockTimeout: 2 * time.Minute, Now: time.Now}
	if c.Definition != nil && c.Definition.Auth.Session != nil {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		l, err := newSessionLogin(c)
		if err != nil {
			return nil, err
		}
		s.session, s.fetch = l, l.Login
	} else if c.Definition != nil && c.Definition.Auth.OAuth1 != nil {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		f, err := newOAuth1Flow(c)
		if err != nil {
			return nil, err
		}
		s.oauth1 = f
	} else {
		f, err := NewFlow(c)
		if err != nil {
			return nil, err
		}
		s.flow = f
		if f.o.TokenResponse.RefreshMargin > 0 {
			s.Margin = f.o.TokenResponse.RefreshMargin
		}
		switch f.o.GrantType {
		case definitions.GrantClientCredentials:
			s.fetch = f.ClientCredentials
		case definitions.GrantJWTBearer:
			s.fetch = f.JWTBearer
		}
	}
	b, err := c.Binding()
	if err != nil {
		return nil, err
	}
	s.binding = b
	return s, nil
}

// OAuth1 returns the connection's OAuth 1.0a flow (auth.scheme: oauth1),
// nil for other schemes.
func (s *Source) OAuth1() *OAuth1Flow { return s.oauth1 }

// Session returns the connection's session login (auth.scheme: session),
// nil for other schemes.
func (s *Source) Session() *SessionLogin { return s.session }

// Flow returns the connection's OAuth flow (to authorize it, for example).
func (s *Source) Flow() *Flow { return s.flow }

// Token implements oauth2.TokenSource.
func (s *Source) Token() (*oauth2.Token, error) {
	t, err := s.TokenContext(context.Background())
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.Type(), Expiry: t.Expiry}, nil
}

// TokenContext returns a token valid for at least Margin, refreshing (or,
// for client credentials, fetching anew) when needed.
func (s *Source) TokenContext(ctx context.Context) (token.Token, error) {
	s.mu.Lock()
	t := s.cached
	s.mu.Unlock()
	if t.Valid(s.Now(), t.RefreshMargin(s.Margin)) {
		return t, nil
	}
	return s.renew(ctx, t.AccessToken, false)
}

// Refresh forces a refresh now, whatever the token's age.
func (s *Source) Refresh(ctx context.Context) (token.Token, error) {
	s.mu.Lock()
	stale := s.cached.AccessToken
	s.mu.Unlock()
	return s.renew(ctx, stale, true)
}

// RefreshUnless refreshes the token, through the same protocol as Refresh,
// unless fresh reports that the stored token needs none. fresh is called
// with the token as stored, after the lock is taken and the record re-read,
// so a token another worker renewed meanwhile is returned as it is
// (refreshed false) instead of being refreshed twice. A refresh scheduler
// uses it: its decision must be taken on the stored token, never on a copy
// read before the lock.
func (s *Source) RefreshUnless(ctx context.Context, fresh func(token.Token) bool) (t token.Token, refreshed bool, err error) {
	kept := true
	t, err = s.renewLocked(ctx, "", true, func(stored token.Token) bool {
		kept = fresh(stored)
		return kept
	})
	return t, err == nil && !kept, err
}

// Store saves a token obtained by an authorization flow (connect), replacing
// whatever the connection had and clearing any need for re-authorization.
func (s *Source) Store(ctx context.Context, t *token.Token) error {
	return s.locked(ctx, func(rec store.Record, found bool) (store.Record, error) {
		rec.Token = *t
		rec.Status, rec.Reason, rec.RefreshStarted = store.StatusConnected, "", time.Time{}
		return rec, nil
	})
}

// locked runs change on the connection's record under its lock and stores
// the result; change returns the record to write.
func (s *Source) locked(ctx context.Context, change func(rec store.Record, found bool) (store.Record, error)) error {
	lctx, cancel := context.WithTimeout(ctx, s.LockTimeout)
	defer cancel()
	unlock, err := s.store.Lock(lctx, s.conn.Key())
	if err != nil {
		return fmt.Errorf("connection %s: %w", s.conn.Key(), err)
	}
	defer unlock()
	rec, err := s.get(ctx)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !found {
		rec = store.Record{ID: s.conn.Key(), Definition: s.conn.Definition.Name, Binding: s.binding}
	} else if err := s.bind(&rec); err != nil {
		return err
	}
	rec, err = change(rec, found)
	if err != nil {
		return err
	}
	saved, err := s.store.Put(ctx, rec)
	if err != nil {
		return fmt.Errorf("storing the token of connection %s: %w", s.conn.Key(), err)
	}
	s.mu.Lock()
	s.cached = saved.Token
	s.mu.Unlock()
	return nil
}

func (s *Source) renew(ctx context.Context, stale string, force bool) (token.Token, error) {
	// Only callers asking the same thing share a flight: one that rejects
	// a token (force) must not be handed the answer of one that merely
	// found its cached token old, which may be that very token.
	key := s.conn.Key() + "\x00" + strconv.FormatBool(force) + "\x00" + stale
	// DoChan, not Do: a caller whose context ends returns at once, while a
	// refresh already sent runs to the end and records its outcome (see
	// renewLocked), for the callers still waiting and for the store.
	ch := s.group.DoChan(key, func() (any, error) {
		return s.renewLocked(ctx, stale, force, nil)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return token.Token{}, r.Err
		}
		return r.Val.(token.Token), nil
	case <-ctx.Done():
		return token.Token{}, fmt.Errorf("connection %s: waiting for the token: %w", s.conn.Key(), context.Cause(ctx))
	}
}

// renewLocked renews under the connection's lock; keep, when set, is asked
// about the stored token after the re-read and can spare the refresh.
func (s *Source) renewLocked(ctx context.Context, stale string, force bool, keep func(token.Token) bool) (token.Token, error) {
	key := s.conn.Key()
	if s.conn.Initiate == InitiateOff {
		t := token.Token{AccessToken: s.conn.AccessToken}
		if stale == t.AccessToken && stale != "" && force {
			return token.Token{}, &NeedsReauthError{Reason: "InitiateOAuth=OFF: the given access token was rejected and the engine may not obtain another"}
		}
		s.mu.Lock()
		s.cached = t
		s.mu.Unlock()
		return t, nil
	}
	lctx, cancel := context.WithTimeout(ctx, s.LockTimeout)
	defer cancel()
	unlock, err := s.store.Lock(lctx, key)
	if err != nil {
		if errors.Is(err, store.ErrLockTimeout) {
			return token.Token{}, fmt.Errorf("connection %s: waiting for another refresh: %w", key, err)
		}
		return token.Token{}, fmt.Errorf("connection %s: taking the lock to refresh: %w", key, err)
	}
	defer unlock()

	rec, err := s.get(ctx)
	if errors.Is(err, store.ErrNotFound) {
		rec = store.Record{ID: key, Definition: s.conn.Definition.Name, Binding: s.binding, Status: store.StatusConnected}
		if s.conn.AccessToken != "" || s.conn.RefreshToken != "" {
			rec.Token = token.Token{AccessToken: s.conn.AccessToken, RefreshToken: s.conn.RefreshToken}
			rec.Token.Expiry = s.Now() // unknown age: refresh before use
		}
	} else if err != nil {
		return token.Token{}, err
	} else {
		adopt := rec.Binding.IsZero()
		if err := s.bind(&rec); err != nil {
			return token.Token{}, err
		}
		if adopt { // a record from before bindings: bind it now, once
			if rec, err = s.store.Put(ctx, rec); err != nil {
				return token.Token{}, fmt.Errorf("connection %s: recording what its token was issued for: %w", key, err)
			}
		}
	}
	if rec.Status == store.StatusNeedsReauth {
		return token.Token{}, &NeedsReauthError{Reason: rec.Reason}
	}
	if force && stale == "" {
		stale = rec.Token.AccessToken // a fresh process forcing a refresh: what is stored is what to replace
	}
	// Another worker may have renewed while this one waited for the lock.
	if rec.Token.AccessToken != stale && rec.Token.Valid(s.Now(), rec.Token.RefreshMargin(s.Margin)) {
		s.setCached(rec.Token)
		return rec.Token, nil
	}
	if !force && rec.Token.Valid(s.Now(), rec.Token.RefreshMargin(s.Margin)) {
		s.setCached(rec.Token)
		return rec.Token, nil
	}
	if keep != nil && keep(rec.Token) {
		s.setCached(rec.Token)
		return rec.Token, nil
	}

	var grant func(context.Context) (*token.Token, error)
	learned := rec.Token.Values // refresh_uri may use them
	bound := rec.Token.DPoPKey  // RFC 9449: the refresh is signed with the key the grant is bound to
	switch {
	case s.fetch != nil:
		grant = s.fetch // consumes nothing: an interrupted one is simply asked again
	case rec.Token.RefreshToken == "" && rec.Token.AccessToken == "":
		return token.Token{}, &NeedsReauthError{Reason: "the connection has no token yet; run connector connect" + s.similar(ctx)}
	case !rec.RefreshStarted.IsZero():
		// An earlier refresh may have been sent and its outcome was never
		// recorded (the process died, or the answer was lost). If the
		// provider rotated the refresh token, presenting the old one again
		// is a replay, which a rotating provider answers by revoking the
		// whole grant (RFC 9700 4.14.2). Only the provider knows whether it
		// did: ask it when the definition says how (introspection), else
		// stop here and ask for a person.
		reason := ReasonLostRefresh
		if s.flow.CanIntrospect() {
			f, err := s.flow.WithLearned(rec.Token.Values)
			if err != nil {
				return token.Token{}, err
			}
			active, err := f.Introspect(ctx, rec.Token.RefreshToken, "refresh_token")
			if err != nil {
				return token.Token{}, fmt.Errorf("connection %s: an earlier refresh was interrupted, and asking the provider whether its refresh token is still unused failed (the connection is left as it was; try again): %w", key, err)
			}
			if active {
				rt := rec.Token.RefreshToken // never reached the provider: safe to send
				grant = func(ctx context.Context) (*token.Token, error) { return s.refresh(ctx, rt, learned, bound) }
				break
			}
			reason = ReasonRefreshConsumed
		}
		rec.Status, rec.Reason, rec.RefreshStarted = store.StatusNeedsReauth, reason, time.Time{}
		if _, err := s.store.Put(ctx, rec); err != nil {
			return token.Token{}, fmt.Errorf("connection %s: recording that it needs authorizing again: %w", key, err)
		}
		return token.Token{}, &NeedsReauthError{Reason: reason}
	case s.flow == nil:
		return token.Token{}, &NeedsReauthError{Reason: "OAuth 1.0a token credentials are not refreshed; authorize the connection again (connector connect)"}
	default:
		rt := rec.Token.RefreshToken
		grant = func(ctx context.Context) (*token.Token, error) { return s.refresh(ctx, rt, learned, bound) }
	}

	// Mark the refresh in flight, durably, before the provider can act on
	// it. A client-credentials request consumes nothing, so it needs no
	// marker, and a failed one writes nothing: no record that looks
	// connected without a token.
	clientCredentials := s.fetch != nil
	if !clientCredentials {
		rec.RefreshStarted = s.Now()
		if rec, err = s.store.Put(ctx, rec); err != nil {
			return token.Token{}, fmt.Errorf("connection %s: recording the refresh before sending it: %w", key, err)
		}
	}
	// From here on the caller's cancellation must not cut the refresh short:
	// a request abandoned after it was sent leaves a refresh token that may
	// be burnt. The request and the recording of its outcome run to the
	// end, bounded by LockTimeout (the flow bounds each attempt as well).
	ctx, cancelSend := context.WithTimeout(context.WithoutCancel(ctx), s.LockTimeout)
	defer cancelSend()
	var sent atomic.Bool // a request was written whole: the provider may have acted on it
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(w httptrace.WroteRequestInfo) {
		if w.Err == nil {
			sent.Store(true)
		}
	}})
	nt, gerr := grant(ctx)
	if gerr != nil && clientCredentials {
		return token.Token{}, gerr
	}
	if gerr != nil {
		var te *TokenError
		var nr *NeedsReauthError
		switch {
		case errors.As(gerr, &te) && te.Code == "invalid_grant":
			// Re-read first: if another worker rotated the token meanwhile
			// (its lock was lost, say, in a database restart), the refusal
			// is about a token this one should not have held.
			if cur, err := s.store.Get(ctx, key); err == nil && cur.Version != rec.Version && cur.Binding == rec.Binding &&
				cur.Status == store.StatusConnected && cur.Token.RefreshToken != rec.Token.RefreshToken && cur.Token.Valid(s.Now(), 0) {
				s.setCached(cur.Token)
				return cur.Token, nil
			}
			reason := fmt.Sprintf("the provider rejected the refresh token (%s)", te.Error())
			rec.Status, rec.Reason, rec.RefreshStarted = store.StatusNeedsReauth, reason, time.Time{}
		case errors.As(gerr, &nr):
			rec.Status, rec.Reason, rec.RefreshStarted = store.StatusNeedsReauth, nr.Reason, time.Time{}
		default:
			var re *RequestError
			if !errors.As(gerr, &re) || !sent.Load() {
				// The provider answered, or never got the request (it
				// could not be connected to): nothing was consumed.
				rec.RefreshStarted = time.Time{}
			}
			// Otherwise the answer was lost: keep the marker, so the next
			// attempt knows the old refresh token may be burnt.
		}
		if _, err := s.store.Put(ctx, rec); err != nil {
			return token.Token{}, errors.Join(gerr, fmt.Errorf("and recording the outcome failed: %w", err))
		}
		if rec.Status == store.StatusNeedsReauth {
			return token.Token{}, &NeedsReauthError{Reason: rec.Reason}
		}
		return token.Token{}, gerr
	}
	presented := rec.Token.RefreshToken
	nt.Values = mergeValues(rec.Token.Values, nt.Values) // a refresh renews what it carries again, and keeps the rest
	rec.Token = *nt
	rec.Status, rec.Reason, rec.RefreshStarted = store.StatusConnected, "", time.Time{}
	saved, err := s.store.Put(ctx, rec)
	if errors.Is(err, store.ErrConflict) && presented != "" {
		// The lock was lost while held (a database restart ends the
		// session holding it) and another worker wrote meanwhile, say to
		// give up on the refresh it found in flight. If the record still
		// holds the refresh token this refresh presented, nobody rotated
		// it since: the token in hand is the grant's only continuation.
		if cur, gerr := s.store.Get(ctx, key); gerr == nil && cur.Token.RefreshToken == presented && cur.Binding == rec.Binding {
			cur.Token = *nt
			cur.Status, cur.Reason, cur.RefreshStarted = store.StatusConnected, "", time.Time{}
			saved, err = s.store.Put(ctx, cur)
		}
	}
	if err != nil {
		// Fail closed: using a token whose refresh token is not stored would
		// lose the grant at the next refresh.
		return token.Token{}, fmt.Errorf("connection %s: the new token could not be stored, so it is not used: %w", key, err)
	}
	s.setCached(saved.Token)
	return saved.Token, nil
}

// BindingError is a stored record, under this connection's id, that was
// issued for another connection: its token is neither used nor sent.
type BindingError struct {
	ID    string
	Parts []string // what differs, as store.Binding.Diff names it
}

func (e *BindingError) Error() string {
	parts := strings.Join(e.Parts, ", ")
	if i := strings.LastIndex(parts, ", "); i >= 0 {
		parts = parts[:i] + " and " + parts[i+2:]
	}
	return fmt.Sprintf("connection %s: the id is already used by another connection: the stored token was issued for a different %s, so it was not used or sent anywhere; "+
		"give this connection an id of its own, or, if that other connection is no longer wanted, delete its record from the store and connect again", e.ID, parts)
}

// bind checks that rec was issued for this connection. A record from before
// bindings adopts this connection's binding (the caller writes it) unless
// its definition says it belongs to another.
func (s *Source) bind(rec *store.Record) error {
	if rec.Binding.IsZero() {
		if rec.Definition != "" && rec.Definition != s.binding.Definition {
			return &BindingError{ID: rec.ID, Parts: []string{"definition"}}
		}
		rec.Binding = s.binding
		return nil
	}
	if d := rec.Binding.Diff(s.binding); len(d) > 0 {
		return &BindingError{ID: rec.ID, Parts: d}
	}
	return nil
}

// Revoke revokes the connection's tokens at the provider (the refresh token
// first: at most providers that ends the whole grant) and deletes its
// record. A record bound to another connection is refused and its tokens
// are sent nowhere; no record gives an error wrapping store.ErrNotFound.
func (s *Source) Revoke(ctx context.Context) error {
	key := s.conn.Key()
	lctx, cancel := context.WithTimeout(ctx, s.LockTimeout)
	defer cancel()
	unlock, err := s.store.Lock(lctx, key)
	if err != nil {
		return fmt.Errorf("connection %s: %w", key, err)
	}
	defer unlock()
	rec, err := s.get(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("connection %s: %w%s", key, err, s.similar(ctx))
	}
	if err != nil {
		return err
	}
	if err := s.bind(&rec); err != nil {
		return err
	}
	if s.flow == nil { // a session token: nothing to revoke at the provider
		if err := s.store.Delete(ctx, key); err != nil {
			return fmt.Errorf("removing the session token of connection %s from the store failed: %w", key, err)
		}
		s.setCached(token.Token{})
		return nil
	}
	f, err := s.flow.WithLearned(rec.Token.Values) // revoke_uri may be on a learned host
	if err != nil {
		return err
	}
	if err := f.Revoke(ctx, rec.Token.RefreshToken, "refresh_token"); err != nil {
		return fmt.Errorf("%w; the stored tokens were kept, run revoke again", err)
	}
	if err := f.Revoke(ctx, rec.Token.AccessToken, "access_token"); err != nil {
		return fmt.Errorf("%w; the stored tokens were kept, run revoke again", err)
	}
	if err := s.store.Delete(ctx, key); err != nil {
		return fmt.Errorf("the tokens of connection %s were revoked but removing them from the store failed: %w", key, err)
	}
	s.setCached(token.Token{})
	return nil
}

// refresh refreshes with the values the connection learned when
// connecting, which refresh_uri may use, and the DPoP key its token is
// bound to, if any.
func (s *Source) refresh(ctx context.Context, rt string, learned map[string]string, dpopKey string) (*token.Token, error) {
	f, err := s.flow.WithLearned(learned)
	if err != nil {
		return nil, err
	}
	if f, err = f.WithDPoPKey(dpopKey); err != nil { // flow_dpop.go
		return nil, err
	}
	return f.Refresh(ctx, rt)
}

func (s *Source) setCached(t token.Token) {
	s.mu.Lock()
	s.cached = t
	s.mu.Unlock()
}

// get reads the connection's record. One stored under the key derived
// before keys were stable (every field hashed) is moved to Key first, so
// that upgrading keeps every token; the caller holds Key's lock.
func (s *Source) get(ctx context.Context) (store.Record, error) {
	key := s.conn.Key()
	rec, err := s.store.Get(ctx, key)
	old := s.conn.legacyKey()
	if !errors.Is(err, store.ErrNotFound) || old == key {
		return rec, err
	}
	lctx, cancel := context.WithTimeout(ctx, s.LockTimeout)
	defer cancel()
	unlock, lerr := s.store.Lock(lctx, old)
	if lerr != nil {
		return store.Record{}, fmt.Errorf("connection %s: taking the lock of its record under the former id %s: %w", key, old, lerr)
	}
	defer unlock()
	prev, perr := s.store.Get(ctx, old)
	if errors.Is(perr, store.ErrNotFound) {
		return rec, err
	}
	if perr != nil {
		return store.Record{}, perr
	}
	if berr := s.bind(&prev); berr != nil {
		return store.Record{}, berr
	}
	prev.ID, prev.Version = key, 0
	saved, perr := s.store.Put(ctx, prev)
	if perr != nil {
		return store.Record{}, fmt.Errorf("connection %s: moving its record from the former id %s (it was left there): %w", key, old, perr)
	}
	if derr := s.store.Delete(ctx, old); derr != nil {
		return store.Record{}, fmt.Errorf("connection %s: its record was copied from the former id %s, but removing that copy failed (delete it, so that an older connector does not spend its refresh token): %w", key, old, derr)
	}
	return saved, nil
}

// similar says, for a connection with no record, which stored records
// were issued for the same grant (tenant, definition, environment, client
// and hosts) under another id: a connection whose id changed looks
// unconnected, and its owner should hear where its token went.
func (s *Source) similar(ctx context.Context) string {
	recs, err := s.store.List(ctx)
	if err != nil {
		return ""
	}
	var ids []string
	for _, r := range recs {
		if r.ID != s.conn.Key() && !r.Binding.IsZero() && r.Binding.Equal(s.binding) {
			ids = append(ids, r.ID)
		}
	}
	switch len(ids) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf(". A connection of the same tenant, definition, environment, client and hosts is stored as %s: if that is this one, its id changed (set id: %s to use it) or connect again", ids[0], ids[0])
	}
	if len(ids) > 5 {
		ids = append(ids[:5], "...")
	}
	return fmt.Sprintf(". Connections of the same tenant, definition, environment, client and hosts are stored as %s: if one of them is this one, set its id, or connect again", strings.Join(ids, ", "))
}

// mergeValues is old with what renewed says on top.
func mergeValues(old, renewed map[string]string) map[string]string {
	if len(old) == 0 {
		return renewed
	}
	out := maps.Clone(old)
	maps.Copy(out, renewed)
	return out
}

// Values returns the values learned when the connection was connected
// (the definition's learned fields), read from the store; none when it has
// no record yet.
func (s *Source) Values(ctx context.Context) (map[string]string, error) {
	rec, err := s.store.Get(ctx, s.conn.Key())
	if errors.Is(err, store.ErrNotFound) && s.conn.legacyKey() != s.conn.Key() {
		// Perhaps under the former id: moving it needs the lock.
		lctx, cancel := context.WithTimeout(ctx, s.LockTimeout)
		defer cancel()
		unlock, lerr := s.store.Lock(lctx, s.conn.Key())
		if lerr != nil {
			return nil, fmt.Errorf("connection %s: %w", s.conn.Key(), lerr)
		}
		rec, err = s.get(ctx)
		_ = unlock()
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.bind(&rec); err != nil {
		return nil, err
	}
	return maps.Clone(rec.Token.Values), nil
}

// SetValues changes learned values of a connected connection, keeping its
// token (an organisation chosen again, a realm moved): each name must be a
// learned field of the definition and each value pass its checks; an
// empty value removes one.
func (s *Source) SetValues(ctx context.Context, values map[string]string) error {
	d := s.conn.Definition
	set := map[string]string{}
	for name, v := range values {
		f, ok := d.Field(name)
		if !ok || f.Learn == nil {
			var names []string
			for _, l := range d.Learned() {
				names = append(names, l.Name)
			}
			return fmt.Errorf("definition %s learns no value %q (learned: %s)", d.Name, name, cmpOr(strings.Join(names, ", "), "none"))
		}
		if v != "" {
			if msg := f.Check(v); msg != "" {
				return fmt.Errorf("value %s: %s", f.Name, msg)
			}
		}
		set[f.Name] = v
	}
	return s.locked(ctx, func(rec store.Record, found bool) (store.Record, error) {
		if !found {
			return rec, fmt.Errorf("connection %s: %w: connect it first (values are kept with its token)%s", s.conn.Key(), store.ErrNotFound, s.similar(ctx))
		}
		vals := maps.Clone(rec.Token.Values)
		if vals == nil {
			vals = map[string]string{}
		}
		for k, v := range set {
			if v == "" {
				delete(vals, k)
			} else {
				vals[k] = v
			}
		}
		rec.Token.Values = vals
		return rec, nil
	})
}

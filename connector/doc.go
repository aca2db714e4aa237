// Package connector turns validated definitions into working connections: it
// runs the OAuth flow a definition describes (authorization code V1/V2,
// client credentials, refresh), keeps tokens fresh through a store without
// ever losing a rotated refresh token, and hands out authenticated clients.
// Nothing in it is specific to one provider: Procore is just a definition.
//
// # The pieces, in the order data flows
//
//   - A [Connection] is a [definitions.Definition] plus what one tenant
//     supplies: client id and secret, redirect URI, field values, optional
//     hosts. Build it in Go, or read a connection file ([LoadConnectionFile])
//     or a CData-style connection string ([ParseConnectionString]).
//   - A [Flow] runs the grants exactly as the definition writes them:
//     [Flow.AuthCodeURL] starts an authorization attempt (state, PKCE),
//     [Flow.Exchange] checks the callback and exchanges the code,
//     [Flow.ClientCredentials], [Flow.Refresh], [Flow.Revoke]. A Flow holds
//     no tokens.
//   - A [Source] holds the connection's tokens in a store.Store (filestore,
//     pgstore, sqlitestore, store.NewMemory, or your own) and hands out an
//     access token valid for at least [Source.Margin], refreshing under the
//     store's per-connection lock so that two processes never spend the same
//     rotating refresh token. It is an oauth2.TokenSource.
//   - An [API] is the connection's authenticated access: [API.Client] (an
//     *http.Client limited to the API's origin), [API.Call] and
//     [API.CallItems] for the definition's actions, [API.Do] and [API.Items]
//     for any request, with the definition's retries, rate limits and
//     pagination.
//
// # The code flow
//
// An embedder (a web application, an iPaaS runtime) writes:
//
//	src, err := connector.NewSource(conn, st)
//	attempt, err := src.Flow().AuthCodeURL()           // redirect the user to attempt.URL
//	// ... on the callback request r:
//	tok, err := src.ExchangeAndStore(ctx, attempt, r.URL.Query())
//	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
//	for item, err := range api.CallItems(ctx, "list_projects", nil, nil) { ... }
//
// [Flow.Exchange] alone returns the token without storing it; use
// [Source.ExchangeAndStore] (or [Source.Store]) so that the Source and the
// API find it. For client credentials there is nothing to do: the Source
// fetches a token when it has none. An Attempt is single use and holds the
// PKCE verifier; keep it server-side between the redirect and the callback
// ([Flow.ResumeAttempt] rebuilds one in another process).
//
// # Copies and sharing
//
// [NewFlow], [NewSource] and [NewAPI] keep a copy of the Connection: a change
// to it afterwards does not reach them, so build new ones after a change.
// Share one Source between the APIs of a connection (APIOptions.Source) so a
// process refreshes once. A Definition is immutable and may be shared by any
// number of connections.
//
// # Errors
//
// Configuration problems come all at once ([ConfigError], [ValidationError]).
// A provider's refusal is a [TokenError] (RFC 6749 error code, secrets
// removed); only a person can fix a [NeedsReauthError]; an API's non-2xx
// answer is an [APIError]; a request to another host a [HostError]; a wait
// longer than allowed a [WaitError]. No error, String or %v output contains
// a secret.
//
// # Testing against Procore offline
//
// Package connector/emulator is an in-memory Procore on loopback;
// emulator.Config.AutoApprove skips its consent page so that a test follows
// the authorization redirect with a plain HTTP client. The examples of this
// package run against it.
//
// The reference for connection files, connection strings and stores is
// connector/README.md; the definition format is definitions/README.md.
package connector

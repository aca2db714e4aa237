// Package emulator is an in-memory stand-in for Procore's servers, for tests,
// demos and offline integration work.
//
// One [Server] answers for both Procore hosts, since their paths do not
// collide: the login host (/oauth/authorize, /oauth/token, /oauth/revoke,
// /oauth/token/info) and the API host (/rest/v1.0/...). It owns the OAuth
// behaviour a connector has to survive — single-use codes bound to client,
// redirect URI and PKCE challenge; rotating single-use refresh tokens whose
// reuse revokes the whole grant; the Procore-Company-Id rule; paginated lists;
// per-token rate limits — and faults injected on demand (failed or lost token
// responses).
//
// The API serves GET /rest/v1.0/me and /rest/v1.0/companies, the project
// list by query (?company_id=) and by path (/companies/{id}/projects), one
// project, and project creation. Routes live in one table (apiRoutes) so
// more resources can be added beside them. Seed data: the user Jim Builder
// (DemoUserID) in two companies whose ids exceed 32 bits, DemoCompanyID
// with DemoProjectCount projects so that lists span several pages.
//
// A refresh rotates the refresh token and also revokes the access token it
// was issued with, the stricter of the readings Procore's documentation
// allows. Rate-limit budgets belong to a grant, so a refreshed token keeps the
// budget of the token it replaced.
//
// The package depends on the standard library only, so it can be shipped to
// users as a fake of Procore without the rest of the engine.
package emulator

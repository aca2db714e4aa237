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
// responses, failed API requests, expired access tokens).
//
// The API serves, with Procore's v1 JSON shapes (routes in one table,
// apiRoutes):
//
//   - GET /rest/v1.0/me, GET /rest/v1.0/companies
//   - projects: GET /rest/v1.0/projects?company_id=, GET
//     /rest/v1.0/companies/{company_id}/projects, GET /rest/v1.0/projects/{id},
//     POST /rest/v1.0/projects {"company_id","project":{"name",...}}
//   - company users (v1.3): GET and POST /rest/v1.3/companies/{company_id}/users
//     ({"user":{...}}, last_name and email_address required), GET .../users/{id},
//     PATCH .../users/{id}/invite
//   - GET /rest/v1.0/projects/{project_id}/users
//   - vendors: GET /rest/v1.0/vendors?company_id=, POST /rest/v1.0/vendors
//     {"company_id","vendor":{"name",...}}
//   - timecard entries: GET and POST /rest/v1.0/projects/{project_id}/timecard_entries
//     ({"timecard_entry":{"hours","date",...}})
//   - RFIs: GET and POST /rest/v1.0/projects/{project_id}/rfis
//     ({"rfi":{"subject","question":{"body"}}}), GET .../rfis/{id}
//   - GET /rest/v1.1/projects/{project_id}/submittals
//   - documents: GET /rest/v1.0/folders?project_id= (the root folder with
//     its folders and files arrays), GET /rest/v1.0/folders/{id}?project_id=
//   - webhooks, in memory per company: GET and POST /rest/v1.0/webhooks/hooks,
//     GET and DELETE .../hooks/{hook_id}, GET and POST .../hooks/{hook_id}/triggers,
//     DELETE .../triggers/{id}, GET .../hooks/{hook_id}/deliveries
//
// Lists page with page and per_page (at most 100) and answer Total,
// Per-Page and Link (first, prev, next, last); webhook hooks and triggers
// come as one array, as on Procore. Creates answer 201 with the object,
// deletes 204; an unknown id is a 404 {"error":{"code":"not_found",...}}; a
// missing required field a 422 {"errors":{"field":["can't be blank"]}}; a
// body that is not JSON a 400. A company id in the path, the query or the
// body that is not the Procore-Company-Id header's, or a project of
// another of the user's companies, is a 403. Every answer (but those of
// FailAPIRequests) carries X-Rate-Limit-Limit, -Remaining and -Reset; over
// the limit, 429 with Retry-After.
//
// A POST or PATCH with an Idempotency-Token header (IdempotencyHeader) is
// done once: a repeat with the same token gets the first answer again, so
// clients may retry them.
//
// Creating a project, RFI, timecard entry or vendor raises a "create"
// event of resource Projects, RFIs, Timecard Entries or Vendors; each hook
// of the company with a matching trigger gets a delivery in Procore's v2
// payload format, POSTed before the create answers when the destination
// is a loopback address (and recorded as failed, not sent, otherwise).
//
// Seed data: the user Jim Builder (DemoUserID) in two companies whose ids
// exceed 32 bits; DemoCompanyID with DemoProjectCount projects so that
// lists span several pages, a directory, vendors, and per project RFIs,
// submittals, timecard entries and folders; Config.Seed sizes them.
//
// Faults for client tests: FailTokenRequests and DropTokenResponses on the
// token endpoint; FailAPIRequests (any status with chosen headers, e.g.
// 503 + Retry-After) and ExpireAccessTokens (Procore's expired-token 401)
// on the API; SetRateLimit; Stats counts API requests per route.
//
// The device authorization grant (RFC 8628, which Procore does not have)
// lets a CLI connect without a browser on its machine: POST
// /oauth/device/code hands out a device code and a user code, the user
// enters the code at GET /oauth/device and allows or denies, and polls of
// the token endpoint answer authorization_pending, slow_down (polled sooner
// than the interval, which then grows by 5 s; SlowDownDevicePolls forces
// it), access_denied or expired_token until then (device.go). With
// Config.AutoApprove, opening the verification URL that carries a code
// allows it. A public client (a Client without Secret) has this grant and
// the code flow with PKCE, and is refused client_credentials and any
// client_secret, as a real provider refuses them.
//
// Pushed authorization requests (RFC 9126, which Procore does not have
// either): POST /oauth/par takes the authorization parameters with the
// client's authentication and answers a single-use request_uri that lasts
// Config.PARLifetime; GET /oauth/authorize?client_id=...&request_uri=...
// stands for them, and an expired or used one is refused on the
// emulator's own page (par.go).
//
// A refresh rotates the refresh token and also revokes the access token it
// was issued with, the stricter of the readings Procore's documentation
// allows. Rate-limit budgets belong to a grant, so a refreshed token keeps the
// budget of the token it replaced.
//
// The package depends on the standard library only, so it can be shipped to
// users as a fake of Procore without the rest of the engine.
package emulator

// Package events delivers a tenant's events to the tenant's event URL: the
// outbox worker of the connections service. It owns the delivery loop
// (claiming durable jobs from connector/server/state, leased so that a
// killed replica's claims are taken over), the Standard Webhooks signature
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256
// of id.timestamp.body>), the retry policy (one function, Policy.Decide:
// exponential backoff with jitter, capped, for at least 24 hours, then a
// dead letter), and the destination rules (https, no private addresses,
// checked again at dial time so that DNS cannot be rebound past them).
//
// Delivery is at least once, with the event id as the idempotency id, and
// in order per connection: a connection's next event is not sent before the
// previous one is delivered or dead-lettered; connections are independent
// and delivered concurrently. The events themselves are appended by the
// server (state.DB.AppendEvent, in the same transaction as the change they
// report); this package only reads and delivers them.
package events

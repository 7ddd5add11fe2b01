// Package delivery is what the delivering factors (flash call, SMS and
// e-mail codes) say to the outside world: the provider interfaces, the
// errors a provider failure becomes, the bounded retry policy, the webhook
// signature and the send metrics. The providers themselves live in the
// subpackages sinch, webhook, smtp and log; the state of a delivered
// challenge (cool-down, send budgets, attempts) lives in
// delivery/challenge.
//
// # Errors and their HTTP mapping
//
// Every provider failure is a *ProviderError matching exactly one of
//
//	ErrProviderUnavailable  the provider could not be reached, timed out,
//	                        answered 429 or 5xx: answer 503 with Retry-After
//	ErrProviderRejected     the provider answered but refused (4xx) or its
//	                        reply was malformed: answer 502
//
// Neither ever marks anything verified, and the factor leaves its challenge
// as it was before the attempt, so the user may simply try again.
//
// # Retries
//
// A try is bounded by Policy.Timeout; failed tries are repeated at most
// Policy.Retries times with exponential backoff, and only where repeating
// cannot cost twice: an operation that starts something paid (a call, an
// SMS, an e-mail) is repeated only when the request provably never reached
// the provider (the connection could not be opened), never after a timeout
// or a 5xx, because the first call may already be ringing. Idempotent
// operations (reporting a flash call's number to Sinch) are repeated after
// timeouts, 429 and 5xx too.
package delivery

package delivery

import "context"

// Channels of a delivery, as factors.Delivery.Channel spells them.
const (
	ChannelCall  = "call"
	ChannelSMS   = "sms"
	ChannelEmail = "email"
)

// Call is a flash call a CallStarter placed. The code the user types is
// the last digits of the calling number: CLI when the provider tells the
// whole number, otherwise CLIFilter says what it will look like and a
// CallReporter decides.
type Call struct {
	// ID is the provider's id of the call (Sinch's verification id).
	ID string
	// CLI is the full calling number in E.164, when the provider tells it
	// (webhook, log). Empty when only CLIFilter is known.
	CLI string
	// CLIFilter is the provider's pattern of the calling number (Sinch:
	// a regular expression such as "(.*)70123(.*)"), when CLI is empty.
	CLIFilter string
}

// CallStarter places flash calls. Implementations are safe for concurrent
// use.
type CallStarter interface {
	// Provider names the provider for metrics and errors.
	Provider() string
	// StartCall places a flash call to the E.164 number to. Errors are
	// *ProviderError. A returned call has CLI or CLIFilter set.
	StartCall(ctx context.Context, to string) (Call, error)
}

// CallReporter is a CallStarter whose provider decides whether the number
// the user reconstructed is the one that called (Sinch): the sidecar then
// never knows the code itself.
type CallReporter interface {
	CallStarter
	// ReportCall tells the provider that call id was answered with the
	// full calling number cli. It returns true only when the provider
	// confirms the verification; false with a nil error means the provider
	// refused it (wrong number, expired, denied). Errors are
	// *ProviderError and mean nothing was decided.
	ReportCall(ctx context.Context, id, cli string) (bool, error)
}

// Message is one SMS or e-mail. It holds the code in clear inside Body:
// senders must never log it.
type Message struct {
	// Channel is ChannelSMS or ChannelEmail.
	Channel string
	// To is an E.164 number (SMS) or an e-mail address.
	To string
	// Subject is the e-mail subject; empty for SMS.
	Subject string
	// Body is the text, UTF-8.
	Body string
	// ID is a random id of this delivery, stable across the retries of one
	// send, so a receiver can drop duplicates (webhook Idempotency-Key,
	// e-mail Message-ID).
	ID string
}

// MessageSender sends SMS or e-mails. Implementations are safe for
// concurrent use.
type MessageSender interface {
	// Provider names the provider for metrics and errors.
	Provider() string
	// Send delivers m. Errors are *ProviderError.
	Send(ctx context.Context, m Message) error
}

// Package config holds the one Config struct of stepup-bridge, its safe
// defaults and its validation.
//
// Keys are defined once, by the mapstructure tags of the structs below; the
// YAML file, the STEPUP_* environment variables and the flags all address the
// same keys (a nested key "keycloak.client_secret" is STEPUP_KEYCLOAK_CLIENT_SECRET
// in the environment). Precedence, highest first: flags, environment, file,
// defaults. Only this package and cmd import viper; everything else receives
// plain structs.
package config

import (
	"time"
)

// Config is the whole configuration of the sidecar.
type Config struct {
	// Listen is the HTTP listener.
	Listen Listen `mapstructure:"listen" yaml:"listen"`
	// PublicURL is the externally visible base URL of the sidecar, used in
	// hosted pages and links. Empty means derived from the request.
	PublicURL string `mapstructure:"public_url" yaml:"public_url"`
	// Log configures structured logging.
	Log Log `mapstructure:"log" yaml:"log"`
	// Keycloak is the realm the sidecar sits beside.
	Keycloak Keycloak `mapstructure:"keycloak" yaml:"keycloak"`
	// Claims says how step-up claims are written back into Keycloak.
	Claims Claims `mapstructure:"claims" yaml:"claims"`
	// Store is the persistence backend.
	Store Store `mapstructure:"store" yaml:"store"`
	// Secrets are the keys the sidecar protects factor data with.
	Secrets Secrets `mapstructure:"secrets" yaml:"secrets"`
	// Factors turns factors on and tunes them.
	Factors Factors `mapstructure:"factors" yaml:"factors"`
	// StepUp tunes step-up challenges.
	StepUp StepUp `mapstructure:"stepup" yaml:"stepup"`
	// Login tunes the MFA-before-session login flow.
	Login Login `mapstructure:"login" yaml:"login"`
	// RateLimits bound attempts per user and per client IP across replicas.
	RateLimits RateLimits `mapstructure:"rate_limits" yaml:"rate_limits"`
	// Policies points at the policy file.
	Policies Policies `mapstructure:"policies" yaml:"policies"`
	// Admin configures the admin API.
	Admin Admin `mapstructure:"admin" yaml:"admin"`
	// Audit configures the audit trail.
	Audit Audit `mapstructure:"audit" yaml:"audit"`
	// Pages configures the hosted login, step-up and enrolment pages.
	Pages Pages `mapstructure:"pages" yaml:"pages"`
	// Delivery bounds calls to SMS, e-mail and call providers.
	Delivery Delivery `mapstructure:"delivery" yaml:"delivery"`
	// Devices tunes trusted devices ("trust this device for N days").
	Devices Devices `mapstructure:"devices" yaml:"devices"`
	// Notifications tells users about security events of their account.
	Notifications Notifications `mapstructure:"notifications" yaml:"notifications"`

	// DevMode is set by `stepup-bridge dev` only (no key): it allows the log
	// providers, which print codes.
	DevMode bool `mapstructure:"-" yaml:"-"`
}

// Delivery bounds calls to delivery providers.
type Delivery struct {
	// Timeout of one provider call. Defaults to 5s.
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// Retries after a timeout or 5xx, with exponential backoff. Defaults to 2.
	Retries int `mapstructure:"retries" yaml:"retries"`
	// Backoff before the first retry; doubles each time. Defaults to 200ms.
	Backoff time.Duration `mapstructure:"backoff" yaml:"backoff"`
}

// Listen is the HTTP listener and its limits.
type Listen struct {
	// Addr is host:port. Defaults to 127.0.0.1:8080; a container sets ":8080".
	Addr string `mapstructure:"addr" yaml:"addr"`
	// ReadHeaderTimeout bounds slow clients sending headers. Defaults to 5s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout" yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Defaults to 15s.
	ReadTimeout time.Duration `mapstructure:"read_timeout" yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Defaults to 30s.
	WriteTimeout time.Duration `mapstructure:"write_timeout" yaml:"write_timeout"`
	// IdleTimeout bounds keep-alive connections. Defaults to 120s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout"`
	// ShutdownTimeout is how long in-flight requests may drain after SIGTERM.
	// Defaults to 20s; keep it below the pod's terminationGracePeriodSeconds.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" yaml:"shutdown_timeout"`
	// MaxBodyBytes caps request bodies. Defaults to 64 KiB.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes" yaml:"max_body_bytes"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed when
	// deriving the client IP for rate limits and audit. Empty trusts none.
	TrustedProxies []string `mapstructure:"trusted_proxies" yaml:"trusted_proxies"`
}

// Log configures log/slog.
type Log struct {
	// Level is debug, info, warn or error. Defaults to info.
	Level string `mapstructure:"level" yaml:"level"`
	// Format is json (production) or text. Defaults to json.
	Format string `mapstructure:"format" yaml:"format"`
}

// Keycloak is the realm and the two clients the sidecar uses.
type Keycloak struct {
	// URL is Keycloak's base URL, e.g. https://sso.example.com (no /realms).
	URL string `mapstructure:"url" yaml:"url"`
	// Realm is the realm name.
	Realm string `mapstructure:"realm" yaml:"realm"`
	// ClientID is the client used for the password grant of primary login
	// (direct access grants on). Confidential or public.
	ClientID string `mapstructure:"client_id" yaml:"client_id"`
	// ClientSecret is ClientID's secret; empty for a public client.
	ClientSecret Secret `mapstructure:"client_secret" yaml:"client_secret"`
	// ClientSecretFile, if set, is read for ClientSecret (Kubernetes secret mount).
	ClientSecretFile string `mapstructure:"client_secret_file" yaml:"client_secret_file"`
	// AdminClientID is a confidential client with a service account holding
	// view-users, manage-users (claims write-back) and, for apply,
	// manage-realm and manage-clients.
	AdminClientID string `mapstructure:"admin_client_id" yaml:"admin_client_id"`
	// AdminClientSecret is AdminClientID's secret.
	AdminClientSecret Secret `mapstructure:"admin_client_secret" yaml:"admin_client_secret"`
	// AdminClientSecretFile, if set, is read for AdminClientSecret.
	AdminClientSecretFile string `mapstructure:"admin_client_secret_file" yaml:"admin_client_secret_file"`
	// Audiences accepted in access tokens (aud or azp). Empty accepts any
	// client of the realm; set it in production.
	Audiences []string `mapstructure:"audiences" yaml:"audiences"`
	// ClockSkew tolerated on exp/nbf/iat. Defaults to 30s, at most 5m.
	ClockSkew time.Duration `mapstructure:"clock_skew" yaml:"clock_skew"`
	// JWKSRefreshFloor is the least time between two JWKS fetches caused by
	// unknown key ids, so a flood of forged tokens cannot hammer Keycloak.
	// Defaults to 10s.
	JWKSRefreshFloor time.Duration `mapstructure:"jwks_refresh_floor" yaml:"jwks_refresh_floor"`
	// Timeout bounds every call to Keycloak. Defaults to 5s.
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// CAFile is an extra PEM bundle to trust for Keycloak's TLS certificate.
	CAFile string `mapstructure:"ca_file" yaml:"ca_file"`
}

// Claims says where step-up claims live in Keycloak.
type Claims struct {
	// Attribute is the multivalued user attribute holding step-up entries.
	// Defaults to "stepup".
	Attribute string `mapstructure:"attribute" yaml:"attribute"`
	// ClientScope is the client scope carrying the attribute mapper.
	// Defaults to "stepup".
	ClientScope string `mapstructure:"client_scope" yaml:"client_scope"`
	// Clients are the client ids that get ClientScope as a default scope.
	Clients []string `mapstructure:"clients" yaml:"clients"`
	// MaxEntries bounds the entries kept per user (oldest dropped first).
	// Defaults to 20.
	MaxEntries int `mapstructure:"max_entries" yaml:"max_entries"`
	// EntryTTL is how long a step-up entry stays valid. Defaults to 1h.
	EntryTTL time.Duration `mapstructure:"entry_ttl" yaml:"entry_ttl"`
	// LockTTL bounds how long one replica may hold a user's write lock.
	// Defaults to 10s.
	LockTTL time.Duration `mapstructure:"lock_ttl" yaml:"lock_ttl"`
}

// Store selects and configures the persistence backend.
type Store struct {
	// Type is sqlite (embedded default, one replica) or postgres.
	Type string `mapstructure:"type" yaml:"type"`
	// SQLite configures the sqlite backend.
	SQLite SQLite `mapstructure:"sqlite" yaml:"sqlite"`
	// Postgres configures the postgres backend.
	Postgres Postgres `mapstructure:"postgres" yaml:"postgres"`
}

// SQLite is the embedded single-file store.
type SQLite struct {
	// Path of the database file. Defaults to stepup-bridge.db.
	Path string `mapstructure:"path" yaml:"path"`
}

// Postgres is the shared store for several replicas.
type Postgres struct {
	// DSN is a libpq/pgx connection string or URL.
	DSN Secret `mapstructure:"dsn" yaml:"dsn"`
	// DSNFile, if set, is read for DSN.
	DSNFile string `mapstructure:"dsn_file" yaml:"dsn_file"`
	// MaxConns caps the pool. Defaults to 10.
	MaxConns int `mapstructure:"max_conns" yaml:"max_conns"`
}

// Secrets are the sidecar's own keys. Both are required outside dev mode.
type Secrets struct {
	// EncryptionKeys encrypt factor secrets at rest (AES-256-GCM). Each
	// entry is "keyid:base64(32 bytes)"; the first encrypts, all decrypt,
	// so a key can be rotated by putting the new one first.
	EncryptionKeys []Secret `mapstructure:"encryption_keys" yaml:"encryption_keys"`
	// EncryptionKeysFile, if set, is read for EncryptionKeys, one per line.
	EncryptionKeysFile string `mapstructure:"encryption_keys_file" yaml:"encryption_keys_file"`
	// Pepper keys the HMAC over backup codes and one-time codes; base64, at
	// least 32 bytes. Changing it invalidates every backup code.
	Pepper Secret `mapstructure:"pepper" yaml:"pepper"`
	// PepperFile, if set, is read for Pepper.
	PepperFile string `mapstructure:"pepper_file" yaml:"pepper_file"`
}

// Factors turns factors on and tunes them.
type Factors struct {
	// Enabled lists the factors offered, by name: backup_code, pin, totp,
	// hotp, flash_call, sms, email. Defaults to backup_code, pin, totp.
	Enabled []string `mapstructure:"enabled" yaml:"enabled"`
	// BackupCodes tunes backup codes.
	BackupCodes BackupCodes `mapstructure:"backup_codes" yaml:"backup_codes"`
	// PIN tunes PINs.
	PIN PIN `mapstructure:"pin" yaml:"pin"`
	// TOTP tunes time-based codes.
	TOTP TOTP `mapstructure:"totp" yaml:"totp"`
	// HOTP tunes counter-based codes.
	HOTP HOTP `mapstructure:"hotp" yaml:"hotp"`
	// FlashCall tunes flash calls (the last digits of the calling number).
	FlashCall FlashCall `mapstructure:"flash_call" yaml:"flash_call"`
	// SMS tunes one-time codes sent by SMS.
	SMS OneTimeCode `mapstructure:"sms" yaml:"sms"`
	// Email tunes one-time codes sent by e-mail.
	Email OneTimeCode `mapstructure:"email" yaml:"email"`
}

// FlashCall tunes flash calls. PSTN is a restricted channel: a flash call is
// never a user's only or first factor.
type FlashCall struct {
	// Provider is sinch, webhook or log (log: dev mode only). Defaults to log.
	Provider string `mapstructure:"provider" yaml:"provider"`
	// Digits of the calling number the user types. Defaults to 4.
	Digits int `mapstructure:"digits" yaml:"digits"`
	// TTL of one call's code; at most 2m. Defaults to 2m.
	TTL time.Duration `mapstructure:"ttl" yaml:"ttl"`
	// MaxAttempts per call; at most 3. Defaults to 3.
	MaxAttempts int `mapstructure:"max_attempts" yaml:"max_attempts"`
	// ResendCooldown is the least time between two calls to one user.
	// Defaults to 30s.
	ResendCooldown time.Duration `mapstructure:"resend_cooldown" yaml:"resend_cooldown"`
	// SendsPerUserPerHour caps calls per user. Defaults to 5.
	SendsPerUserPerHour int `mapstructure:"sends_per_user_per_hour" yaml:"sends_per_user_per_hour"`
	// SendsPerDestinationPerHour caps calls per phone number (call fraud is
	// expensive). Defaults to 5.
	SendsPerDestinationPerHour int `mapstructure:"sends_per_destination_per_hour" yaml:"sends_per_destination_per_hour"`
	// Sinch configures the Sinch Verification API provider.
	Sinch Sinch `mapstructure:"sinch" yaml:"sinch"`
	// Webhook configures the generic signed-webhook provider.
	Webhook Webhook `mapstructure:"webhook" yaml:"webhook"`
}

// Sinch is the Sinch Verification REST API.
type Sinch struct {
	// BaseURL of the API. Defaults to https://verification.api.sinch.com.
	BaseURL string `mapstructure:"base_url" yaml:"base_url"`
	// AppKey is the application key.
	AppKey string `mapstructure:"app_key" yaml:"app_key"`
	// AppSecret is the application secret.
	AppSecret Secret `mapstructure:"app_secret" yaml:"app_secret"`
	// AppSecretFile, if set, is read for AppSecret.
	AppSecretFile string `mapstructure:"app_secret_file" yaml:"app_secret_file"`
}

// Webhook is a generic JSON POST, signed with HMAC-SHA-256 so the receiver
// can check it came from the sidecar.
type Webhook struct {
	// URL receives the POST.
	URL string `mapstructure:"url" yaml:"url"`
	// Secret keys the signature header.
	Secret Secret `mapstructure:"secret" yaml:"secret"`
	// SecretFile, if set, is read for Secret.
	SecretFile string `mapstructure:"secret_file" yaml:"secret_file"`
}

// OneTimeCode tunes SMS or e-mail codes (6 digits, single use).
type OneTimeCode struct {
	// Sender is webhook, smtp (e-mail only) or log (dev mode only).
	// Defaults to log.
	Sender string `mapstructure:"sender" yaml:"sender"`
	// TTL of a code; at most 5m. Defaults to 5m.
	TTL time.Duration `mapstructure:"ttl" yaml:"ttl"`
	// ResendCooldown is the least time between two sends to one user.
	// Defaults to 30s.
	ResendCooldown time.Duration `mapstructure:"resend_cooldown" yaml:"resend_cooldown"`
	// SendsPerUserPerHour caps sends per user. Defaults to 5.
	SendsPerUserPerHour int `mapstructure:"sends_per_user_per_hour" yaml:"sends_per_user_per_hour"`
	// SendsPerDestinationPerHour caps sends per number or address. Defaults to 5.
	SendsPerDestinationPerHour int `mapstructure:"sends_per_destination_per_hour" yaml:"sends_per_destination_per_hour"`
	// Template is the message body (Go text/template; .Code, .Minutes,
	// .Issuer). Empty uses the built-in one.
	Template string `mapstructure:"template" yaml:"template"`
	// Subject of e-mails (text/template as Template).
	Subject string `mapstructure:"subject" yaml:"subject"`
	// Webhook configures the webhook sender.
	Webhook Webhook `mapstructure:"webhook" yaml:"webhook"`
	// SMTP configures the SMTP sender (e-mail only).
	SMTP SMTP `mapstructure:"smtp" yaml:"smtp"`
}

// SMTP is an SMTP submission server.
type SMTP struct {
	// Host and Port of the server. Port defaults to 587.
	Host string `mapstructure:"host" yaml:"host"`
	// Port of the server.
	Port int `mapstructure:"port" yaml:"port"`
	// TLS is starttls (default), tls (implicit, port 465) or none (loopback
	// relays only).
	TLS string `mapstructure:"tls" yaml:"tls"`
	// Username for AUTH PLAIN; empty sends no AUTH.
	Username string `mapstructure:"username" yaml:"username"`
	// Password for AUTH PLAIN.
	Password Secret `mapstructure:"password" yaml:"password"`
	// PasswordFile, if set, is read for Password.
	PasswordFile string `mapstructure:"password_file" yaml:"password_file"`
	// From is the envelope and header sender.
	From string `mapstructure:"from" yaml:"from"`
}

// BackupCodes tunes backup codes.
type BackupCodes struct {
	// Count per set. Defaults to 10.
	Count int `mapstructure:"count" yaml:"count"`
	// LowWatermark: at or below this many unused codes, status flags "low".
	// Defaults to 3.
	LowWatermark int `mapstructure:"low_watermark" yaml:"low_watermark"`
}

// PIN tunes PINs.
type PIN struct {
	// MinLength in digits. Defaults to 4; never below 4.
	MinLength int `mapstructure:"min_length" yaml:"min_length"`
	// MaxLength in digits. Defaults to 8.
	MaxLength int `mapstructure:"max_length" yaml:"max_length"`
	// DenyList are PINs refused besides repeated digits and straight sequences.
	DenyList []string `mapstructure:"deny_list" yaml:"deny_list"`
	// MaxFailures before a lockout. Defaults to 5.
	MaxFailures int `mapstructure:"max_failures" yaml:"max_failures"`
	// LockoutBase is the first lockout wait; each further lockout doubles it
	// up to LockoutMax. Defaults to 1m and 1h.
	LockoutBase time.Duration `mapstructure:"lockout_base" yaml:"lockout_base"`
	// LockoutMax caps the growing wait.
	LockoutMax time.Duration `mapstructure:"lockout_max" yaml:"lockout_max"`
	// Lifetime after which a PIN must be changed; 0 means no expiry.
	Lifetime time.Duration `mapstructure:"lifetime" yaml:"lifetime"`
	// Argon2 parameters for new hashes; old hashes are rehashed on success.
	Argon2 Argon2 `mapstructure:"argon2" yaml:"argon2"`
}

// Argon2 are argon2id cost parameters. The defaults cost about 65 ms per
// check on one 2 GHz core (docs/performance.md): slow for guessing, fast
// enough for a login. Every concurrent check holds MemoryKiB.
type Argon2 struct {
	// Time (iterations). Defaults to 2.
	Time uint32 `mapstructure:"time" yaml:"time"`
	// MemoryKiB. Defaults to 47104 (46 MiB).
	MemoryKiB uint32 `mapstructure:"memory_kib" yaml:"memory_kib"`
	// Threads. Defaults to 1.
	Threads uint8 `mapstructure:"threads" yaml:"threads"`
}

// TOTP tunes RFC 6238 codes.
type TOTP struct {
	// Issuer shown in authenticator apps. Defaults to "stepup-bridge".
	Issuer string `mapstructure:"issuer" yaml:"issuer"`
	// Digits: 6 or 8. Defaults to 6.
	Digits int `mapstructure:"digits" yaml:"digits"`
	// Period in seconds. Defaults to 30.
	Period uint `mapstructure:"period" yaml:"period"`
	// Algorithm: SHA1, SHA256 or SHA512. Defaults to SHA1 (what apps support).
	Algorithm string `mapstructure:"algorithm" yaml:"algorithm"`
	// Skew in steps accepted either side. Defaults to 1.
	Skew uint `mapstructure:"skew" yaml:"skew"`
}

// HOTP tunes RFC 4226 codes.
type HOTP struct {
	// Digits: 6 or 8. Defaults to 6.
	Digits int `mapstructure:"digits" yaml:"digits"`
	// LookAhead is how many counter values past the stored one are tried.
	// Defaults to 10.
	LookAhead int `mapstructure:"look_ahead" yaml:"look_ahead"`
}

// StepUp tunes step-up challenges.
type StepUp struct {
	// ChallengeTTL bounds a challenge's life. Defaults to 5m.
	ChallengeTTL time.Duration `mapstructure:"challenge_ttl" yaml:"challenge_ttl"`
	// MaxAttempts per challenge. Defaults to 5.
	MaxAttempts int `mapstructure:"max_attempts" yaml:"max_attempts"`
	// Level granted by a successful step-up. Defaults to "2".
	Level string `mapstructure:"level" yaml:"level"`
	// ManagementMaxAge: enrolling, changing or removing a factor, once any
	// factor is active, needs a step-up at most this old. Defaults to 5m.
	ManagementMaxAge time.Duration `mapstructure:"management_max_age" yaml:"management_max_age"`
}

// Login tunes the MFA-before-session login.
type Login struct {
	// Enabled turns /v1/login on. Defaults to true.
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// MFATokenTTL bounds a pending login. Defaults to 5m.
	MFATokenTTL time.Duration `mapstructure:"mfa_token_ttl" yaml:"mfa_token_ttl"`
	// MaxAttempts of the second factor before the pending login is dropped
	// and its Keycloak session logged out. Defaults to 5.
	MaxAttempts int `mapstructure:"max_attempts" yaml:"max_attempts"`
	// Require says who must pass a second factor.
	Require LoginRequire `mapstructure:"require" yaml:"require"`
}

// LoginRequire says who must pass a second factor at login.
type LoginRequire struct {
	// Mode is "enrolled" (users with an active factor), "members" (holders
	// of Roles or members of Groups, plus the enrolled) or "everyone".
	// Defaults to "enrolled".
	Mode string `mapstructure:"mode" yaml:"mode"`
	// Roles (realm roles) whose holders must pass a second factor.
	Roles []string `mapstructure:"roles" yaml:"roles"`
	// Groups whose members must pass a second factor.
	Groups []string `mapstructure:"groups" yaml:"groups"`
	// GracePeriod during which a required user with no factor may still log
	// in and is sent to enrolment. Counted from GraceStart. 0 = none.
	GracePeriod time.Duration `mapstructure:"grace_period" yaml:"grace_period"`
	// GraceStart (RFC 3339) starts the grace period; empty = first start.
	GraceStart string `mapstructure:"grace_start" yaml:"grace_start"`
}

// RateLimits are enforced in the store, so they hold across replicas.
type RateLimits struct {
	// UserFailuresPerHour caps failed verifications of one account, all
	// factors together (ASVS 2.2.1). Defaults to 100.
	UserFailuresPerHour int `mapstructure:"user_failures_per_hour" yaml:"user_failures_per_hour"`
	// IPRequestsPerMinute caps verification and login requests per client IP.
	// Defaults to 60.
	IPRequestsPerMinute int `mapstructure:"ip_requests_per_minute" yaml:"ip_requests_per_minute"`
	// ChallengesPerUserPerHour caps new challenges per user. Defaults to 30.
	ChallengesPerUserPerHour int `mapstructure:"challenges_per_user_per_hour" yaml:"challenges_per_user_per_hour"`
}

// Policies points at the policy file.
type Policies struct {
	// File is the policy YAML; empty uses the built-in default (reads need
	// level 1, writes need level 2 within 5m).
	File string `mapstructure:"file" yaml:"file"`
	// Watch reloads the file when it changes (SIGHUP always reloads).
	// Defaults to true.
	Watch bool `mapstructure:"watch" yaml:"watch"`
}

// Admin configures the admin API.
type Admin struct {
	// Role is the realm role an admin token must carry. Defaults to stepup-admin.
	Role string `mapstructure:"role" yaml:"role"`
}

// Pages configures the hosted pages under /pages/.
type Pages struct {
	// Enabled serves the pages. Defaults to true.
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// ReturnTo is the allow-list of URLs a browser may be sent back to
	// after a login or step-up: each an exact origin and a path prefix,
	// e.g. https://app.example.com/after/. Empty allows none: the pages end
	// on their own success page.
	ReturnTo []string `mapstructure:"return_to" yaml:"return_to"`
}

// Audit configures the audit trail.
type Audit struct {
	// Retention: events older than this are deleted; 0 keeps everything.
	// Defaults to 0 (keep).
	Retention time.Duration `mapstructure:"retention" yaml:"retention"`
}

// Devices tunes trusted devices: after a second factor the client may ask
// to trust the device, and a later login through the sidecar from it may
// skip the second factor (never the password) until the trust expires or
// is revoked. Policies can refuse such logins per rule
// (require.trusted_device: false).
type Devices struct {
	// Enabled offers "trust this device" and honours trusted devices at
	// login. Defaults to false.
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// TTL is how long a device stays trusted; at most 90 days. Defaults to
	// 720h (30 days).
	TTL time.Duration `mapstructure:"ttl" yaml:"ttl"`
	// MaxPerUser bounds a user's trusted devices; trusting one more revokes
	// the oldest. Defaults to 10.
	MaxPerUser int `mapstructure:"max_per_user" yaml:"max_per_user"`
	// CookieName is the hosted pages' cookie carrying the device token
	// (HttpOnly, SameSite=Strict, Path /pages/; over https Secure, with
	// the __Secure- prefix). Defaults to stepup_device.
	CookieName string `mapstructure:"cookie_name" yaml:"cookie_name"`
}

// Notifications tells users about security events of their account: a
// sign-in from a new device, a factor added, changed or removed, backup
// codes regenerated or running low, a lockout. Each event is sent once,
// through the sender configured for factors.<channel> (smtp, webhook; log
// in dev mode only), and listed in the user's security activity.
type Notifications struct {
	// Enabled sends notifications. Defaults to false (the activity list is
	// kept either way).
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// Events are the events sent: new_device, factor_added, factor_changed,
	// factor_removed, backup_codes_regenerated, backup_codes_low, lockout,
	// code_reused.
	// Defaults to all of them.
	Events []string `mapstructure:"events" yaml:"events"`
	// Channel is email (to the Keycloak user's e-mail address, through
	// factors.email.sender) or sms (to the user's phone_number attribute,
	// through factors.sms.sender). Defaults to email.
	Channel string `mapstructure:"channel" yaml:"channel"`
	// Subject of e-mails (Go text/template over the same fields as
	// Templates). Defaults to "Security alert: {{.Title}}".
	Subject string `mapstructure:"subject" yaml:"subject"`
	// Templates override message bodies by event name (Go text/template;
	// .Event, .Title, .Time, .IP, .Device, .Factor, .Remaining, .Issuer).
	// Events left out use the built-in text.
	Templates map[string]string `mapstructure:"templates" yaml:"templates"`
	// MaxAttempts of one delivery before it is given up. Defaults to 5.
	MaxAttempts int `mapstructure:"max_attempts" yaml:"max_attempts"`
	// Retention of the security activity list; 0 keeps everything.
	// Defaults to 2160h (90 days).
	Retention time.Duration `mapstructure:"retention" yaml:"retention"`
}

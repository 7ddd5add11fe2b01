package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// NotificationEvents are the event names notifications.events and
// notifications.templates accept.
func NotificationEvents() []string {
	return []string{"new_device", "factor_added", "factor_changed", "factor_removed",
		"backup_codes_regenerated", "backup_codes_low", "lockout", "code_reused"}
}

var cookieNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// KnownFactors are the factor names config accepts.
func KnownFactors() []string {
	return []string{"backup_code", "pin", "totp", "hotp", "flash_call", "sms", "email"}
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
var attrNamePattern = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// EncryptionKey is one parsed entry of Secrets.EncryptionKeys.
type EncryptionKey struct {
	ID  string
	Key []byte
}

// ParseEncryptionKey parses "keyid:base64(32 bytes)".
func ParseEncryptionKey(s Secret) (EncryptionKey, error) {
	id, b64, ok := strings.Cut(s.Reveal(), ":")
	if !ok {
		return EncryptionKey{}, fmt.Errorf("want keyid:base64-key")
	}
	if !keyIDPattern.MatchString(id) {
		return EncryptionKey{}, fmt.Errorf("key id must match %s", keyIDPattern)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return EncryptionKey{}, fmt.Errorf("key %q is not valid base64", id)
	}
	if len(key) != 32 {
		return EncryptionKey{}, fmt.Errorf("key %q has %d bytes, want 32 (AES-256)", id, len(key))
	}
	return EncryptionKey{ID: id, Key: key}, nil
}

// ParsedEncryptionKeys returns the keys in order (first encrypts). Call
// after Validate.
func (c Config) ParsedEncryptionKeys() ([]EncryptionKey, error) {
	var out []EncryptionKey
	for i, s := range c.Secrets.EncryptionKeys {
		k, err := ParseEncryptionKey(s)
		if err != nil {
			return nil, fmt.Errorf("secrets.encryption_keys[%d]: %w", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// PepperBytes decodes the pepper. Call after Validate.
func (c Config) PepperBytes() ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(c.Secrets.Pepper.Reveal())
	if err != nil {
		return nil, fmt.Errorf("secrets.pepper: not valid base64")
	}
	return b, nil
}

// Validate checks every value and reports all problems at once, each
// naming its key and why it is wrong.
func (c Config) Validate() error {
	var p problems

	if _, _, err := net.SplitHostPort(c.Listen.Addr); err != nil {
		p.add("listen.addr", "%q is not host:port", c.Listen.Addr)
	}
	p.positive("listen.read_header_timeout", c.Listen.ReadHeaderTimeout)
	p.positive("listen.read_timeout", c.Listen.ReadTimeout)
	p.positive("listen.write_timeout", c.Listen.WriteTimeout)
	p.positive("listen.idle_timeout", c.Listen.IdleTimeout)
	p.positive("listen.shutdown_timeout", c.Listen.ShutdownTimeout)
	if c.Listen.MaxBodyBytes < 1024 || c.Listen.MaxBodyBytes > 10<<20 {
		p.add("listen.max_body_bytes", "%d is outside 1024..10485760", c.Listen.MaxBodyBytes)
	}
	for i, cidr := range c.Listen.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			p.add(fmt.Sprintf("listen.trusted_proxies[%d]", i), "%q is not a CIDR", cidr)
		}
	}
	if c.PublicURL != "" {
		p.url("public_url", c.PublicURL)
	}

	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "json", "text")

	if c.Keycloak.URL == "" {
		p.add("keycloak.url", "is required")
	} else {
		p.url("keycloak.url", c.Keycloak.URL)
		if strings.Contains(c.Keycloak.URL, "/realms/") {
			p.add("keycloak.url", "must be Keycloak's base URL without /realms/...")
		}
	}
	if c.Keycloak.Realm == "" {
		p.add("keycloak.realm", "is required")
	}
	if c.Keycloak.ClientID == "" {
		p.add("keycloak.client_id", "is required")
	}
	if c.Keycloak.AdminClientID == "" {
		p.add("keycloak.admin_client_id", "is required (service account for claims write-back)")
	}
	if !c.Keycloak.AdminClientSecret.IsSet() {
		p.add("keycloak.admin_client_secret", "is required (or keycloak.admin_client_secret_file)")
	}
	if c.Keycloak.ClockSkew < 0 || c.Keycloak.ClockSkew > 5*time.Minute {
		p.add("keycloak.clock_skew", "%s is outside 0..5m", c.Keycloak.ClockSkew)
	}
	if c.Keycloak.JWKSRefreshFloor < time.Second {
		p.add("keycloak.jwks_refresh_floor", "%s is below 1s", c.Keycloak.JWKSRefreshFloor)
	}
	p.positive("keycloak.timeout", c.Keycloak.Timeout)

	if !attrNamePattern.MatchString(c.Claims.Attribute) {
		p.add("claims.attribute", "%q must match %s (Keycloak user profile)", c.Claims.Attribute, attrNamePattern)
	}
	if c.Claims.ClientScope == "" {
		p.add("claims.client_scope", "is required")
	}
	if c.Claims.MaxEntries < 1 || c.Claims.MaxEntries > 100 {
		p.add("claims.max_entries", "%d is outside 1..100", c.Claims.MaxEntries)
	}
	p.positive("claims.entry_ttl", c.Claims.EntryTTL)
	p.positive("claims.lock_ttl", c.Claims.LockTTL)

	switch c.Store.Type {
	case "sqlite":
		if c.Store.SQLite.Path == "" {
			p.add("store.sqlite.path", "is required with store.type sqlite")
		}
	case "postgres":
		if !c.Store.Postgres.DSN.IsSet() {
			p.add("store.postgres.dsn", "is required with store.type postgres (or store.postgres.dsn_file)")
		}
		if c.Store.Postgres.MaxConns < 1 {
			p.add("store.postgres.max_conns", "%d is below 1", c.Store.Postgres.MaxConns)
		}
	default:
		p.add("store.type", "%q is not one of sqlite, postgres", c.Store.Type)
	}

	if len(c.Secrets.EncryptionKeys) == 0 {
		p.add("secrets.encryption_keys", "at least one key is required (keyid:base64 of 32 random bytes)")
	}
	seen := map[string]bool{}
	for i, s := range c.Secrets.EncryptionKeys {
		k, err := ParseEncryptionKey(s)
		key := fmt.Sprintf("secrets.encryption_keys[%d]", i)
		if err != nil {
			p.add(key, "%v", err)
			continue
		}
		if seen[k.ID] {
			p.add(key, "duplicate key id %q", k.ID)
		}
		seen[k.ID] = true
	}
	if !c.Secrets.Pepper.IsSet() {
		p.add("secrets.pepper", "is required (base64 of at least 32 random bytes)")
	} else if b, err := c.PepperBytes(); err != nil {
		p.add("secrets.pepper", "is not valid base64")
	} else if len(b) < 32 {
		p.add("secrets.pepper", "has %d bytes, want at least 32", len(b))
	}

	if len(c.Factors.Enabled) == 0 {
		p.add("factors.enabled", "at least one factor is required")
	}
	for i, f := range c.Factors.Enabled {
		if !contains(KnownFactors(), f) {
			p.add(fmt.Sprintf("factors.enabled[%d]", i), "%q is not one of %s", f, strings.Join(KnownFactors(), ", "))
		}
	}
	if c.Factors.BackupCodes.Count < 5 || c.Factors.BackupCodes.Count > 20 {
		p.add("factors.backup_codes.count", "%d is outside 5..20", c.Factors.BackupCodes.Count)
	}
	if c.Factors.BackupCodes.LowWatermark < 0 || c.Factors.BackupCodes.LowWatermark >= c.Factors.BackupCodes.Count {
		p.add("factors.backup_codes.low_watermark", "%d is outside 0..count-1", c.Factors.BackupCodes.LowWatermark)
	}
	pin := c.Factors.PIN
	if pin.MinLength < 4 {
		p.add("factors.pin.min_length", "%d is below 4", pin.MinLength)
	}
	if pin.MaxLength < pin.MinLength || pin.MaxLength > 12 {
		p.add("factors.pin.max_length", "%d is outside min_length..12", pin.MaxLength)
	}
	for i, d := range pin.DenyList {
		if !isDigits(d) {
			p.add(fmt.Sprintf("factors.pin.deny_list[%d]", i), "%q is not all digits", d)
		}
	}
	if pin.MaxFailures < 1 || pin.MaxFailures > 20 {
		p.add("factors.pin.max_failures", "%d is outside 1..20", pin.MaxFailures)
	}
	p.positive("factors.pin.lockout_base", pin.LockoutBase)
	if pin.LockoutMax < pin.LockoutBase {
		p.add("factors.pin.lockout_max", "%s is below lockout_base", pin.LockoutMax)
	}
	if pin.Lifetime < 0 {
		p.add("factors.pin.lifetime", "is negative")
	}
	if pin.Argon2.Time < 1 {
		p.add("factors.pin.argon2.time", "is below 1")
	}
	if pin.Argon2.MemoryKiB < 8*1024 {
		p.add("factors.pin.argon2.memory_kib", "%d is below 8192", pin.Argon2.MemoryKiB)
	}
	if pin.Argon2.Threads < 1 {
		p.add("factors.pin.argon2.threads", "is below 1")
	}
	if c.Factors.TOTP.Digits != 6 && c.Factors.TOTP.Digits != 8 {
		p.add("factors.totp.digits", "%d is not 6 or 8", c.Factors.TOTP.Digits)
	}
	if c.Factors.TOTP.Period < 15 || c.Factors.TOTP.Period > 120 {
		p.add("factors.totp.period", "%d is outside 15..120 seconds", c.Factors.TOTP.Period)
	}
	p.oneOf("factors.totp.algorithm", c.Factors.TOTP.Algorithm, "SHA1", "SHA256", "SHA512")
	if c.Factors.TOTP.Skew > 2 {
		p.add("factors.totp.skew", "%d is above 2 steps", c.Factors.TOTP.Skew)
	}
	if c.Factors.TOTP.Issuer == "" {
		p.add("factors.totp.issuer", "is required")
	}
	if c.Factors.HOTP.Digits != 6 && c.Factors.HOTP.Digits != 8 {
		p.add("factors.hotp.digits", "%d is not 6 or 8", c.Factors.HOTP.Digits)
	}
	if c.Factors.HOTP.LookAhead < 1 || c.Factors.HOTP.LookAhead > 100 {
		p.add("factors.hotp.look_ahead", "%d is outside 1..100", c.Factors.HOTP.LookAhead)
	}

	c.validateDelivery(&p)

	if c.StepUp.ChallengeTTL <= 0 || c.StepUp.ChallengeTTL > 15*time.Minute {
		p.add("stepup.challenge_ttl", "%s is outside (0, 15m]", c.StepUp.ChallengeTTL)
	}
	if c.StepUp.MaxAttempts < 1 || c.StepUp.MaxAttempts > 10 {
		p.add("stepup.max_attempts", "%d is outside 1..10", c.StepUp.MaxAttempts)
	}
	if c.StepUp.Level == "" {
		p.add("stepup.level", "is required")
	}
	p.positive("stepup.management_max_age", c.StepUp.ManagementMaxAge)

	if c.Login.MFATokenTTL <= 0 || c.Login.MFATokenTTL > 15*time.Minute {
		p.add("login.mfa_token_ttl", "%s is outside (0, 15m]", c.Login.MFATokenTTL)
	}
	if c.Login.MaxAttempts < 1 || c.Login.MaxAttempts > 10 {
		p.add("login.max_attempts", "%d is outside 1..10", c.Login.MaxAttempts)
	}
	p.oneOf("login.require.mode", c.Login.Require.Mode, "enrolled", "members", "everyone")
	if c.Login.Require.GracePeriod < 0 {
		p.add("login.require.grace_period", "is negative")
	}
	if c.Login.Require.GraceStart != "" {
		if _, err := time.Parse(time.RFC3339, c.Login.Require.GraceStart); err != nil {
			p.add("login.require.grace_start", "%q is not RFC 3339", c.Login.Require.GraceStart)
		}
	}

	if c.RateLimits.UserFailuresPerHour < 1 || c.RateLimits.UserFailuresPerHour > 100 {
		p.add("rate_limits.user_failures_per_hour", "%d is outside 1..100 (ASVS 2.2.1)", c.RateLimits.UserFailuresPerHour)
	}
	if c.RateLimits.IPRequestsPerMinute < 1 {
		p.add("rate_limits.ip_requests_per_minute", "is below 1")
	}
	if c.RateLimits.ChallengesPerUserPerHour < 1 {
		p.add("rate_limits.challenges_per_user_per_hour", "is below 1")
	}
	if c.Admin.Role == "" {
		p.add("admin.role", "is required")
	}
	for i, rt := range c.Pages.ReturnTo {
		key := fmt.Sprintf("pages.return_to[%d]", i)
		u, err := url.Parse(rt)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			p.add(key, "%q is not an absolute http(s) URL", rt)
		case u.User != nil || u.Fragment != "" || u.RawQuery != "":
			p.add(key, "%q must be an origin and a path prefix only (no user info, query or fragment)", rt)
		case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
			p.add(key, "%q: plain http is allowed for loopback only", rt)
		}
	}
	if c.Audit.Retention < 0 {
		p.add("audit.retention", "is negative")
	}
	c.validateDevices(&p)
	c.validateNotifications(&p)
	return p.err()
}

type problems []string

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, "%s must be positive", d)
	}
}

func (p *problems) oneOf(key, v string, allowed ...string) {
	if !contains(allowed, v) {
		p.add(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func (p *problems) url(key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key, "%q is not an absolute http(s) URL", raw)
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Problems: p}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c Config) validateDelivery(p *problems) {
	enabled := func(f string) bool { return contains(c.Factors.Enabled, f) }
	fc := c.Factors.FlashCall
	if enabled("flash_call") {
		p.oneOf("factors.flash_call.provider", fc.Provider, "sinch", "webhook", "log")
		if fc.Digits < 3 || fc.Digits > 6 {
			p.add("factors.flash_call.digits", "%d is outside 3..6", fc.Digits)
		}
		if fc.TTL <= 0 || fc.TTL > 2*time.Minute {
			p.add("factors.flash_call.ttl", "%s is outside (0, 2m]", fc.TTL)
		}
		if fc.MaxAttempts < 1 || fc.MaxAttempts > 3 {
			p.add("factors.flash_call.max_attempts", "%d is outside 1..3", fc.MaxAttempts)
		}
		p.sendLimits("factors.flash_call", fc.ResendCooldown, fc.SendsPerUserPerHour, fc.SendsPerDestinationPerHour)
		switch fc.Provider {
		case "sinch":
			p.url("factors.flash_call.sinch.base_url", fc.Sinch.BaseURL)
			if fc.Sinch.AppKey == "" {
				p.add("factors.flash_call.sinch.app_key", "is required with provider sinch")
			}
			if !fc.Sinch.AppSecret.IsSet() {
				p.add("factors.flash_call.sinch.app_secret", "is required with provider sinch (or app_secret_file)")
			}
		case "webhook":
			p.webhook("factors.flash_call.webhook", fc.Webhook)
		case "log":
			p.devOnly("factors.flash_call.provider", c.DevMode)
		}
	}
	for _, f := range []struct {
		name string
		otc  OneTimeCode
	}{{"sms", c.Factors.SMS}, {"email", c.Factors.Email}} {
		// The notifications' channel uses the factor's sender even when the
		// factor itself is off.
		notifies := c.Notifications.Enabled && c.Notifications.Channel == f.name
		if !enabled(f.name) && !notifies {
			continue
		}
		key := "factors." + f.name
		senders := []string{"webhook", "log"}
		if f.name == "email" {
			senders = append(senders, "smtp")
		}
		p.oneOf(key+".sender", f.otc.Sender, senders...)
		if f.otc.TTL <= 0 || f.otc.TTL > 5*time.Minute {
			p.add(key+".ttl", "%s is outside (0, 5m]", f.otc.TTL)
		}
		p.sendLimits(key, f.otc.ResendCooldown, f.otc.SendsPerUserPerHour, f.otc.SendsPerDestinationPerHour)
		switch f.otc.Sender {
		case "webhook":
			p.webhook(key+".webhook", f.otc.Webhook)
		case "smtp":
			s := f.otc.SMTP
			if s.Host == "" {
				p.add(key+".smtp.host", "is required with sender smtp")
			}
			if s.Port < 1 || s.Port > 65535 {
				p.add(key+".smtp.port", "%d is not a port", s.Port)
			}
			p.oneOf(key+".smtp.tls", s.TLS, "starttls", "tls", "none")
			if s.From == "" {
				p.add(key+".smtp.from", "is required with sender smtp")
			}
		case "log":
			p.devOnly(key+".sender", c.DevMode)
		}
	}
	p.positive("delivery.timeout", c.Delivery.Timeout)
	if c.Delivery.Retries < 0 || c.Delivery.Retries > 5 {
		p.add("delivery.retries", "%d is outside 0..5", c.Delivery.Retries)
	}
	p.positive("delivery.backoff", c.Delivery.Backoff)
}

func (p *problems) sendLimits(key string, cooldown time.Duration, perUser, perDest int) {
	if cooldown < 0 {
		p.add(key+".resend_cooldown", "is negative")
	}
	if perUser < 1 {
		p.add(key+".sends_per_user_per_hour", "is below 1")
	}
	if perDest < 1 {
		p.add(key+".sends_per_destination_per_hour", "is below 1")
	}
}

func (p *problems) webhook(key string, w Webhook) {
	if w.URL == "" {
		p.add(key+".url", "is required with the webhook provider")
	} else {
		p.url(key+".url", w.URL)
	}
	if len(w.Secret.Reveal()) < 16 {
		p.add(key+".secret", "is required with the webhook provider, at least 16 characters (or secret_file)")
	}
}

func (p *problems) devOnly(key string, dev bool) {
	if !dev {
		p.add(key, "log prints codes and is allowed only in `stepup-bridge dev`; choose a real provider")
	}
}

func (c Config) validateDevices(p *problems) {
	d := c.Devices
	if d.TTL <= 0 || d.TTL > 90*24*time.Hour {
		p.add("devices.ttl", "%s is outside (0, 2160h]", d.TTL)
	}
	if d.MaxPerUser < 1 || d.MaxPerUser > 100 {
		p.add("devices.max_per_user", "%d is outside 1..100", d.MaxPerUser)
	}
	if !cookieNamePattern.MatchString(d.CookieName) {
		p.add("devices.cookie_name", "%q must match %s", d.CookieName, cookieNamePattern)
	}
}

func (c Config) validateNotifications(p *problems) {
	n := c.Notifications
	p.oneOf("notifications.channel", n.Channel, "email", "sms")
	for i, e := range n.Events {
		if !contains(NotificationEvents(), e) {
			p.add(fmt.Sprintf("notifications.events[%d]", i), "%q is not one of %s", e, strings.Join(NotificationEvents(), ", "))
		}
	}
	if _, err := template.New("subject").Option("missingkey=error").Parse(n.Subject); err != nil {
		p.add("notifications.subject", "is not a valid template: %v", err)
	}
	for name, body := range n.Templates {
		key := "notifications.templates." + name
		if !contains(NotificationEvents(), name) {
			p.add(key, "%q is not one of %s", name, strings.Join(NotificationEvents(), ", "))
			continue
		}
		if strings.TrimSpace(body) == "" {
			p.add(key, "is empty")
		} else if _, err := template.New(name).Option("missingkey=error").Parse(body); err != nil {
			p.add(key, "is not a valid template: %v", err)
		}
	}
	if n.MaxAttempts < 1 || n.MaxAttempts > 20 {
		p.add("notifications.max_attempts", "%d is outside 1..20", n.MaxAttempts)
	}
	if n.Retention < 0 {
		p.add("notifications.retention", "is negative")
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

var (
	testKey    = "k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	testPepper = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("p", 32)))
)

// validEnv is the smallest environment that makes a valid config.
func validEnv(extra ...string) []string {
	return append([]string{
		"STEPUP_KEYCLOAK_URL=https://sso.example.com",
		"STEPUP_KEYCLOAK_REALM=acme",
		"STEPUP_KEYCLOAK_CLIENT_ID=web",
		"STEPUP_KEYCLOAK_ADMIN_CLIENT_ID=stepup-admin",
		"STEPUP_KEYCLOAK_ADMIN_CLIENT_SECRET=s3cr3t-admin",
		"STEPUP_SECRETS_ENCRYPTION_KEYS=" + testKey,
		"STEPUP_SECRETS_PEPPER=" + testPepper,
		"PATH=/usr/bin", // unrelated variables are ignored
	}, extra...)
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *config.Error, got %v", err)
	}
	return ce.Problems
}

func TestDefaultsNeedOnlyKeycloakAndSecrets(t *testing.T) {
	cfg, err := Load(Source{Environ: validEnv()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Addr != "127.0.0.1:8080" || cfg.Store.Type != "sqlite" || cfg.Claims.Attribute != "stepup" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if cfg.Keycloak.AdminClientSecret.Reveal() != "s3cr3t-admin" {
		t.Fatal("env secret not read")
	}
	keys, err := cfg.ParsedEncryptionKeys()
	if err != nil || len(keys) != 1 || keys[0].ID != "k1" || len(keys[0].Key) != 32 {
		t.Fatalf("keys = %v, %v", keys, err)
	}
}

func TestMissingRequiredListsEveryProblem(t *testing.T) {
	_, err := Load(Source{Environ: []string{}})
	got := strings.Join(problemsOf(t, err), "\n")
	for _, key := range []string{"keycloak.url", "keycloak.realm", "keycloak.client_id", "keycloak.admin_client_id",
		"keycloak.admin_client_secret", "secrets.encryption_keys", "secrets.pepper"} {
		if !strings.Contains(got, key+":") {
			t.Errorf("problems do not name %s:\n%s", key, got)
		}
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", `
listen:
  addr: "127.0.0.1:1111"
log:
  level: warn
  format: text
factors:
  pin:
    max_failures: 7
`)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:3333", "--set", "factors.pin.max_failures=9"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{
		File:    file,
		Environ: validEnv("STEPUP_LISTEN_ADDR=127.0.0.1:2222", "STEPUP_LOG_LEVEL=debug"),
		Flags:   fs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Addr != "127.0.0.1:3333" {
		t.Errorf("flag must beat env and file: %s", cfg.Listen.Addr)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("env must beat file: %s", cfg.Log.Level)
	}
	if cfg.Log.Format != "text" {
		t.Errorf("file must beat default: %s", cfg.Log.Format)
	}
	if cfg.Factors.PIN.MaxFailures != 9 {
		t.Errorf("--set must beat file: %d", cfg.Factors.PIN.MaxFailures)
	}
	if cfg.Factors.PIN.MinLength != 4 {
		t.Errorf("untouched keys keep defaults: %d", cfg.Factors.PIN.MinLength)
	}
}

func TestEnvListsAndDurations(t *testing.T) {
	cfg, err := Load(Source{Environ: validEnv(
		"STEPUP_FACTORS_ENABLED=pin, totp",
		"STEPUP_STEPUP_CHALLENGE_TTL=90s",
		"STEPUP_KEYCLOAK_AUDIENCES=api-a,api-b",
	)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.Factors.Enabled) != "[pin totp]" || fmt.Sprint(cfg.Keycloak.Audiences) != "[api-a api-b]" {
		t.Fatalf("lists: %v %v", cfg.Factors.Enabled, cfg.Keycloak.Audiences)
	}
	if cfg.StepUp.ChallengeTTL != 90*time.Second {
		t.Fatalf("duration: %s", cfg.StepUp.ChallengeTTL)
	}
}

func TestBadValuesNameTheirKey(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		set     []string
		wantKey string
	}{
		{"unknown file key", "keycloak:\n  urll: x\n", nil, nil, "urll"},
		{"unknown top-level key", "bogus: 1\n", nil, nil, "bogus"},
		{"unknown env var", "", []string{"STEPUP_KEYCLOAK_URLL=x"}, nil, "STEPUP_KEYCLOAK_URLL"},
		{"unknown --set key", "", nil, []string{"nope.key=1"}, "nope.key"},
		{"bad duration", "stepup:\n  challenge_ttl: 5 minutes\n", nil, nil, "stepup.challenge_ttl"},
		{"duration out of range", "stepup:\n  challenge_ttl: 1h\n", nil, nil, "stepup.challenge_ttl"},
		{"bad url", "", []string{"STEPUP_KEYCLOAK_URL=ftp//nope"}, nil, "keycloak.url"},
		{"url with realm path", "", []string{"STEPUP_KEYCLOAK_URL=https://sso.example.com/realms/acme"}, nil, "keycloak.url"},
		{"unknown store", "", []string{"STEPUP_STORE_TYPE=mysql"}, nil, "store.type"},
		{"postgres without dsn", "", []string{"STEPUP_STORE_TYPE=postgres"}, nil, "store.postgres.dsn"},
		{"unknown factor", "", []string{"STEPUP_FACTORS_ENABLED=pin,carrier-pigeon"}, nil, "factors.enabled[1]"},
		{"short pin", "", nil, []string{"factors.pin.min_length=3"}, "factors.pin.min_length"},
		{"not a number", "", nil, []string{"factors.pin.max_failures=many"}, "factors.pin.max_failures"},
		{"short encryption key", "", []string{"STEPUP_SECRETS_ENCRYPTION_KEYS=k1:" + base64.StdEncoding.EncodeToString([]byte("short"))}, nil, "secrets.encryption_keys[0]"},
		{"short pepper", "", []string{"STEPUP_SECRETS_PEPPER=" + base64.StdEncoding.EncodeToString([]byte("short"))}, nil, "secrets.pepper"},
		{"bad log level", "log:\n  level: loud\n", nil, nil, "log.level"},
		{"bad proxy cidr", "listen:\n  trusted_proxies: [\"10.0.0.0/99\"]\n", nil, nil, "listen.trusted_proxies[0]"},
		{"too many failures allowed", "", nil, []string{"rate_limits.user_failures_per_hour=1000"}, "rate_limits.user_failures_per_hour"},
		{"bad listen", "", nil, []string{"listen.addr=8080"}, "listen.addr"},
		{"return_to with userinfo", "pages:\n  return_to: [\"https://user@app.example.com/x/\"]\n", nil, nil, "pages.return_to[0]"},
		{"return_to over plain http", "pages:\n  return_to: [\"http://app.example.com/x/\"]\n", nil, nil, "pages.return_to[0]"},
		{"return_to relative", "pages:\n  return_to: [\"/after/\"]\n", nil, nil, "pages.return_to[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := Source{Environ: validEnv(tc.env...), Overrides: tc.set}
			if tc.file != "" {
				src.File = writeFile(t, "c.yaml", tc.file)
			}
			_, err := Load(src)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("error does not name %q:\n%v", tc.wantKey, err)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key2 := "k2:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("z", 32)))
	cfg, err := Load(Source{Environ: []string{
		"STEPUP_KEYCLOAK_URL=https://sso.example.com",
		"STEPUP_KEYCLOAK_REALM=acme",
		"STEPUP_KEYCLOAK_CLIENT_ID=web",
		"STEPUP_KEYCLOAK_ADMIN_CLIENT_ID=stepup-admin",
		"STEPUP_KEYCLOAK_ADMIN_CLIENT_SECRET_FILE=" + write("admin", "from-file\n"),
		"STEPUP_SECRETS_ENCRYPTION_KEYS_FILE=" + write("keys", "# newest first\n"+key2+"\n"+testKey+"\n"),
		"STEPUP_SECRETS_PEPPER_FILE=" + write("pepper", testPepper+"\n"),
		"STEPUP_STORE_TYPE=postgres",
		"STEPUP_STORE_POSTGRES_DSN_FILE=" + write("dsn", "postgres://u:p@db/stepup\n"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Keycloak.AdminClientSecret.Reveal() != "from-file" {
		t.Errorf("admin secret = %q", cfg.Keycloak.AdminClientSecret.Reveal())
	}
	keys, _ := cfg.ParsedEncryptionKeys()
	if len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k1" {
		t.Errorf("keys from file = %+v", keys)
	}
	if cfg.Store.Postgres.DSN.Reveal() != "postgres://u:p@db/stepup" {
		t.Errorf("dsn = %q", cfg.Store.Postgres.DSN.Reveal())
	}

	_, err = Load(Source{Environ: validEnv("STEPUP_SECRETS_PEPPER_FILE=" + filepath.Join(dir, "missing"))})
	if err == nil || !strings.Contains(err.Error(), "secrets.pepper_file") {
		t.Fatalf("missing secret file: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := Load(Source{Environ: validEnv("STEPUP_KEYCLOAK_CLIENT_SECRET=client-s3cr3t")})
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"yaml": string(y), "json": string(j),
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
	} {
		for _, secret := range []string{"s3cr3t-admin", "client-s3cr3t", testPepper, testKey} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output contains a secret", name)
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s output shows no redaction marker", name)
		}
	}
}

func TestKeysMatchEnvNames(t *testing.T) {
	seen := map[string]string{}
	for _, k := range Keys() {
		env := EnvName(k)
		if other, dup := seen[env]; dup {
			t.Fatalf("keys %s and %s share env name %s", k, other, env)
		}
		seen[env] = k
	}
	if EnvName("keycloak.admin_client_secret") != "STEPUP_KEYCLOAK_ADMIN_CLIENT_SECRET" {
		t.Fatal(EnvName("keycloak.admin_client_secret"))
	}
}

func TestLogProvidersOnlyInDevMode(t *testing.T) {
	env := validEnv("STEPUP_FACTORS_ENABLED=pin,flash_call,sms,email")
	_, err := Load(Source{Environ: env})
	got := strings.Join(problemsOf(t, err), "\n")
	for _, key := range []string{"factors.flash_call.provider", "factors.sms.sender", "factors.email.sender"} {
		if !strings.Contains(got, key+": log prints codes") {
			t.Errorf("log provider accepted outside dev mode for %s:\n%s", key, got)
		}
	}
	base := Default()
	base.DevMode = true
	cfg, err := Load(Source{Environ: env, Base: &base})
	if err != nil {
		t.Fatalf("dev mode refuses log providers: %v", err)
	}
	if !cfg.DevMode {
		t.Fatal("DevMode lost by Load")
	}
	_, err = Load(Source{Environ: append(env, "STEPUP_FACTORS_FLASH_CALL_PROVIDER=webhook",
		"STEPUP_FACTORS_SMS_SENDER=webhook", "STEPUP_FACTORS_SMS_WEBHOOK_URL=https://hooks.example.com/sms",
		"STEPUP_FACTORS_SMS_WEBHOOK_SECRET=short", "STEPUP_FACTORS_EMAIL_SENDER=smtp"), Base: &base})
	got = strings.Join(problemsOf(t, err), "\n")
	for _, key := range []string{"factors.flash_call.webhook.url", "factors.sms.webhook.secret", "factors.email.smtp.host", "factors.email.smtp.from"} {
		if !strings.Contains(got, key+":") {
			t.Errorf("missing problem for %s:\n%s", key, got)
		}
	}
}

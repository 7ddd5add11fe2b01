package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment variable the sidecar reads.
const EnvPrefix = "STEPUP"

// Source says where Load takes its input from. The zero value reads only
// the process environment and the defaults.
type Source struct {
	// File is a YAML config file; empty means none.
	File string
	// Environ is the environment as os.Environ returns it; nil means os.Environ().
	Environ []string
	// Flags are command-line flags whose names are registered by BindFlags.
	Flags *pflag.FlagSet
	// Overrides are key=value pairs applied above everything else
	// (the --set flag).
	Overrides []string
	// Base replaces Default() as the lowest layer (dev mode uses it).
	Base *Config
}

// Keys lists every configuration key, dotted, in a stable order.
func Keys() []string {
	var keys []string
	walkKeys(reflect.TypeOf(Config{}), "", func(key string, _ reflect.Type) { keys = append(keys, key) })
	sort.Strings(keys)
	return keys
}

func walkKeys(t reflect.Type, prefix string, fn func(string, reflect.Type)) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == reflect.TypeOf(Config{}).PkgPath() {
			walkKeys(f.Type, key, fn)
			continue
		}
		fn(key, f.Type)
	}
}

// EnvName returns the environment variable for a dotted key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// flagKeys maps the friendly flags to keys. Every key is also reachable with
// --set key=value.
func flagKeys() map[string]string {
	return map[string]string{
		"listen":         "listen.addr",
		"log-level":      "log.level",
		"log-format":     "log.format",
		"store":          "store.type",
		"sqlite-path":    "store.sqlite.path",
		"keycloak-url":   "keycloak.url",
		"keycloak-realm": "keycloak.realm",
		"policies":       "policies.file",
	}
}

// BindFlags registers the configuration flags on fs.
func BindFlags(fs *pflag.FlagSet) {
	keys := flagKeys()
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fs.String(n, "", "sets "+keys[n])
	}
	fs.StringArray("set", nil, "sets any key: --set factors.pin.max_failures=3 (repeatable)")
}

// Load builds the effective configuration: defaults, then the file, then the
// environment, then flags and overrides; reads *_file secrets; and
// validates. Every problem is reported at once, each naming its key.
func Load(src Source) (Config, error) {
	base := Default()
	if src.Base != nil {
		base = *src.Base
	}
	v := viper.New()
	v.SetConfigType("yaml")

	// Defaults: register every key so env lookups know them all.
	defaults := map[string]any{}
	if err := mapstructure.Decode(base, &defaults); err != nil {
		return Config{}, fmt.Errorf("config: encoding defaults: %w", err)
	}
	flat := map[string]any{}
	flatten("", defaults, flat)
	for _, k := range Keys() {
		v.SetDefault(k, flat[k])
	}

	if src.File != "" {
		f, err := os.Open(src.File)
		if err != nil {
			return Config{}, fmt.Errorf("config: opening %s: %w", src.File, err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return Config{}, fmt.Errorf("config: reading %s: %w", src.File, err)
		}
	}

	var problems []string
	environ := src.Environ
	if environ == nil {
		environ = os.Environ()
	}
	known := map[string]string{}
	for _, k := range Keys() {
		known[EnvName(k)] = k
	}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		key, ok := known[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unknown environment variable (no such key)", name))
			continue
		}
		v.Set(key, envValue(val, key))
	}

	if src.Flags != nil {
		for name, key := range flagKeys() {
			f := src.Flags.Lookup(name)
			if f != nil && f.Changed {
				v.Set(key, f.Value.String())
			}
		}
	}
	overrides := src.Overrides
	if src.Flags != nil {
		if sets, err := src.Flags.GetStringArray("set"); err == nil {
			overrides = append(append([]string{}, overrides...), sets...)
		}
	}
	for _, kv := range overrides {
		key, val, ok := strings.Cut(kv, "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("--set %q: want key=value", kv))
			continue
		}
		if _, isKey := flat[key]; !isKey && !contains(Keys(), key) {
			problems = append(problems, fmt.Sprintf("%s: unknown key", key))
			continue
		}
		v.Set(key, envValue(val, key))
	}

	var cfg Config
	var md mapstructure.Metadata
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.Metadata = &md
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		problems = append(problems, decodeProblems(err)...)
	}
	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	cfg.DevMode = base.DevMode // not a key: only dev mode's Base sets it
	if err := cfg.readSecretFiles(); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// envValue turns a list given as one string into a list for list keys.
func envValue(val, key string) any {
	if isListKey(key) {
		if strings.TrimSpace(val) == "" {
			return []string{}
		}
		parts := strings.Split(val, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	return val
}

func isListKey(key string) bool {
	list := false
	walkKeys(reflect.TypeOf(Config{}), "", func(k string, t reflect.Type) {
		if k == key && t.Kind() == reflect.Slice {
			list = true
		}
	})
	return list
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, val := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := val.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		out[key] = val
	}
}

// decodeProblems splits mapstructure's joined error into one line per key.
func decodeProblems(err error) []string {
	var out []string
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			out = append(out, decodeProblems(e)...)
		}
		return out
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed") || strings.Contains(line, "error(s) decoding") {
			continue
		}
		out = append(out, cleanDecodeMsg(line))
	}
	if len(out) == 0 {
		out = append(out, err.Error())
	}
	return out
}

// cleanDecodeMsg turns "'key' msg" into "key: msg", the shape of every
// other problem.
func cleanDecodeMsg(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Replace(s, "has invalid keys:", "has unknown keys:", 1)
	if strings.HasPrefix(s, "'") {
		if i := strings.Index(s[1:], "'"); i >= 0 {
			key := s[1 : i+1]
			if key == "" {
				key = "(top level)"
			}
			return key + ":" + strings.TrimPrefix(s[i+2:], ":")
		}
	}
	return s
}

func (c *Config) readSecretFiles() error {
	var problems []string
	read := func(key, path string, dst *Secret) {
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", key, err))
			return
		}
		*dst = Secret(strings.TrimSpace(string(b)))
	}
	read("keycloak.client_secret_file", c.Keycloak.ClientSecretFile, &c.Keycloak.ClientSecret)
	read("keycloak.admin_client_secret_file", c.Keycloak.AdminClientSecretFile, &c.Keycloak.AdminClientSecret)
	read("store.postgres.dsn_file", c.Store.Postgres.DSNFile, &c.Store.Postgres.DSN)
	read("secrets.pepper_file", c.Secrets.PepperFile, &c.Secrets.Pepper)
	read("factors.flash_call.sinch.app_secret_file", c.Factors.FlashCall.Sinch.AppSecretFile, &c.Factors.FlashCall.Sinch.AppSecret)
	read("factors.flash_call.webhook.secret_file", c.Factors.FlashCall.Webhook.SecretFile, &c.Factors.FlashCall.Webhook.Secret)
	read("factors.sms.webhook.secret_file", c.Factors.SMS.Webhook.SecretFile, &c.Factors.SMS.Webhook.Secret)
	read("factors.email.webhook.secret_file", c.Factors.Email.Webhook.SecretFile, &c.Factors.Email.Webhook.Secret)
	read("factors.email.smtp.password_file", c.Factors.Email.SMTP.PasswordFile, &c.Factors.Email.SMTP.Password)
	if p := c.Secrets.EncryptionKeysFile; p != "" {
		var all Secret
		read("secrets.encryption_keys_file", p, &all)
		c.Secrets.EncryptionKeys = nil
		for _, line := range strings.Split(all.Reveal(), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				c.Secrets.EncryptionKeys = append(c.Secrets.EncryptionKeys, Secret(line))
			}
		}
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// Error lists every configuration problem, one per line, each starting with
// the key it concerns.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

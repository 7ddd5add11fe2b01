package config

import (
	"strings"
	"testing"
	"time"
)

// TestDevicesAndNotificationsFromFile: the two sections load from YAML,
// templates included, and every mistake names its key.
func TestDevicesAndNotificationsFromFile(t *testing.T) {
	cfg, err := Load(Source{Environ: validEnv(), File: writeFile(t, "c.yaml", `
devices:
  enabled: true
  ttl: 168h
factors:
  email:
    sender: webhook
    webhook: {url: "https://gw.example.com/hook", secret: "0123456789abcdef"}
notifications:
  enabled: true
  events: [new_device, lockout]
  templates:
    lockout: "Locked at {{.Time}}"
`)})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Devices.Enabled || cfg.Devices.TTL != 168*time.Hour || cfg.Devices.MaxPerUser != 10 || cfg.Devices.CookieName != "stepup_device" {
		t.Fatalf("devices = %+v", cfg.Devices)
	}
	n := cfg.Notifications
	if !n.Enabled || n.Channel != "email" || len(n.Events) != 2 || n.Templates["lockout"] != "Locked at {{.Time}}" {
		t.Fatalf("notifications = %+v", n)
	}

	tests := []struct{ name, file, wantKey string }{
		{"ttl too long", "devices:\n  ttl: 2400h\n", "devices.ttl"},
		{"bad cookie", "devices:\n  cookie_name: \"a b\"\n", "devices.cookie_name"},
		{"max per user", "devices:\n  max_per_user: 0\n", "devices.max_per_user"},
		{"unknown event", "notifications:\n  events: [new_device, coffee]\n", "notifications.events[1]"},
		{"unknown template", "notifications:\n  templates: {coffee: hi}\n", "notifications.templates.coffee"},
		{"broken template", "notifications:\n  templates: {lockout: \"{{.Time\"}\n", "notifications.templates.lockout"},
		{"broken subject", "notifications:\n  subject: \"{{\"\n", "notifications.subject"},
		{"bad channel", "notifications:\n  channel: pigeon\n", "notifications.channel"},
		// The channel's sender must be configured even when the factor is off.
		{"channel sender unset", "notifications:\n  enabled: true\n  channel: email\nfactors:\n  email:\n    sender: webhook\n", "factors.email.webhook.url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(Source{Environ: validEnv(), File: writeFile(t, "c.yaml", tc.file)})
			if err == nil || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("error does not name %q: %v", tc.wantKey, err)
			}
		})
	}
}

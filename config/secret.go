package config

// Secret is a string that never prints itself. Use Reveal where the value is
// really needed; fmt, slog, JSON and YAML all see "[redacted]".
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether a value is present.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer with a redacted value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v redacted too.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText redacts the value in JSON, YAML and slog output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML redacts the value for gopkg.in/yaml.v3.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

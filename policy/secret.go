package policy

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// redacted is what a Secret shows wherever it is printed or encoded.
const redacted = "[redacted]"

// Secret is a credential such as a provider API key. Every way of printing or
// encoding it (fmt verbs, JSON, text, slog) yields "[redacted]"; only Reveal
// returns the value, so a Secret can sit in structs that get logged.
type Secret string

// Reveal returns the secret value. Call it only where the value is sent on,
// never to log it.
func (s Secret) Reveal() string { return string(s) }

// String implements [fmt.Stringer]. It returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString implements [fmt.GoStringer]. It returns "[redacted]".
func (s Secret) GoString() string { return redacted }

// Format implements [fmt.Formatter], so that every verb, including ones that
// are invalid for strings such as %d, prints "[redacted]".
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements [json.Marshaler]. It returns "[redacted]" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements [encoding.TextMarshaler]. It returns "[redacted]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements [slog.LogValuer]. It returns "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// envRef matches a complete ${VAR} or ${VAR:-default} reference.
var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}$`)

// bareEnvRef matches $VAR, a common slip for ${VAR}.
var bareEnvRef = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)

// secretRef says where a provider's credential comes from: an environment
// variable (with an optional non-secret default) or a file.
type secretRef struct {
	field      string // "api_key" or "api_key_file", for messages
	line, col  int    // position of the field's key
	env        string // variable name for api_key
	def        string // default after ":-"
	hasDefault bool
	file       string // path for api_key_file, already joined with the policy's directory
}

// parseEnvRef parses the value of api_key. It never echoes the value in its
// error, since a literal in that field is most likely a real key.
func parseEnvRef(v string) (env, def string, hasDefault bool, err error) {
	m := envRef.FindStringSubmatch(v)
	if m != nil {
		return m[1], m[3], m[2] != "", nil
	}
	if m := bareEnvRef.FindStringSubmatch(v); m != nil {
		return "", "", false, fmt.Errorf("must be written ${%s}, with braces", m[1])
	}
	if strings.HasPrefix(v, "${") {
		return "", "", false, fmt.Errorf("malformed reference; want ${VAR} or ${VAR:-default} where VAR is letters, digits and underscores")
	}
	return "", "", false, fmt.Errorf("must be a ${VAR} reference to an environment variable, or use api_key_file; " +
		"provider keys are never written into the policy (value not shown)")
}

// resolve returns the secret, or a reason why it could not be resolved.
func (r *secretRef) resolve(opts LoadOptions) (Secret, string) {
	if r.file != "" {
		data, err := opts.ReadFile(r.file)
		if err != nil {
			return "", fmt.Sprintf("cannot read api_key_file: %v", err)
		}
		v := strings.TrimRightFunc(string(data), unicode.IsSpace)
		if v == "" {
			return "", fmt.Sprintf("api_key_file %s is empty", r.file)
		}
		return Secret(v), ""
	}
	v, ok := opts.LookupEnv(r.env)
	switch {
	case v != "":
		return Secret(v), ""
	case r.hasDefault && r.def != "":
		return Secret(r.def), ""
	case ok:
		return "", fmt.Sprintf("environment variable %s is empty", r.env)
	default:
		return "", fmt.Sprintf("environment variable %s is not set", r.env)
	}
}

// secretPath makes a relative api_key_file path relative to the directory of
// the policy file named source. Embedded policies have no directory.
func secretPath(source, path string) string {
	if filepath.IsAbs(path) || strings.HasPrefix(source, embeddedPrefix) {
		return path
	}
	return filepath.Join(filepath.Dir(source), path)
}

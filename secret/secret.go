// Package secret holds Secret, a credential that never shows when printed,
// logged or encoded. It is a leaf package: the policy file model and every
// provider type keep their credentials in it.
package secret

import (
	"fmt"
	"log/slog"
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

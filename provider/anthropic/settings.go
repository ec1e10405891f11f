package anthropic

import (
	"errors"
	"fmt"
	"github.com/tollgate-dev/tollgate/provider/internal/baseurl"
	"net/url"

	"github.com/tollgate-dev/tollgate/secret"
)

// The fields of a provider of this type, besides type, models and budgets.
const (
	fieldBaseURL    = "base_url"
	fieldAPIKey     = "api_key"
	fieldAPIKeyFile = "api_key_file"
)

// Settings is what a policy says about one provider of type anthropic. A
// loaded policy's Provider.Settings holds one; it is then immutable and safe
// for concurrent use.
type Settings struct {
	// BaseURL is the provider's absolute http or https URL, without a
	// trailing slash: base_url, or DefaultBaseURL without one.
	BaseURL *url.URL
	// APIKey is the credential from api_key or api_key_file, sent as
	// x-api-key. It is empty when the secret could not be resolved, in which
	// case the policy's warnings say why.
	APIKey secret.Secret

	// keyFields lists the credential fields the provider has (api_key,
	// api_key_file), in document order.
	keyFields []string
	// keyInvalid is set when a credential field's value was refused by Set,
	// which already reported it.
	keyInvalid bool
}

func newSettings() *Settings {
	u, _ := url.Parse(DefaultBaseURL) // a constant that parses
	return &Settings{BaseURL: u}
}

// fieldError is a problem with one field as a whole, such as a second
// credential field; the policy decoder reports it at that field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.msg }

// Field returns the name of the field the problem is about.
func (e *fieldError) Field() string { return e.field }

// Set decodes the value of one of the type's fields, as written in the policy;
// the decoder calls it in document order. For api_key and api_key_file the
// value is a reference (a ${VAR} or a path), not the secret: Resolve fetches
// the secret.
func (s *Settings) Set(field, value string) error {
	switch field {
	case fieldBaseURL:
		u, err := parseBaseURL(value)
		if err != nil {
			return err
		}
		s.BaseURL = u
	case fieldAPIKey, fieldAPIKeyFile:
		s.keyFields = append(s.keyFields, field)
		if field == fieldAPIKeyFile && value == "" {
			s.keyInvalid = true
			return errors.New("must not be empty")
		}
	default:
		return fmt.Errorf("type %s has no field %q", TypeName, field)
	}
	return nil
}

// Resolve completes the settings once every field is set: exactly one of
// api_key and api_key_file is required, and its secret is fetched with env
// (for api_key, a ${VAR} reference) or file (for api_key_file, a path). An
// error from env or file is returned as it is, after APIKey is left empty.
func (s *Settings) Resolve(env, file func(field string) (secret.Secret, error)) error {
	switch {
	case len(s.keyFields) == 0:
		return errors.New("api_key or api_key_file is required")
	case len(s.keyFields) > 1:
		return &fieldError{field: s.keyFields[1], msg: "api_key and api_key_file are mutually exclusive; keep one"}
	case s.keyInvalid:
		return nil
	}
	fetch := env
	if s.keyFields[0] == fieldAPIKeyFile {
		fetch = file
	}
	key, err := fetch(s.keyFields[0])
	s.APIKey = key
	return err
}

// parseBaseURL parses and checks a base_url.
func parseBaseURL(s string) (*url.URL, error) {
	return baseurl.Parse(s, DefaultBaseURL, "; use api_key or api_key_file")
}

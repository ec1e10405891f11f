package openai

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/provider/internal/baseurl"
	"github.com/tollgate-dev/tollgate/secret"
)

// DefaultBaseURL is OpenAI's API, under which /chat/completions is served.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultToolNameLimit is the longest tool name OpenAI's Chat Completions
// API accepts (function names match ^[a-zA-Z0-9_-]{1,64}$).
const DefaultToolNameLimit = 64

// The fields of a provider of this type, besides type, models and budgets.
const (
	fieldBaseURL         = "base_url"
	fieldAPIKey          = "api_key"
	fieldAPIKeyFile      = "api_key_file"
	fieldAuth            = "auth"
	fieldAzureDeployment = "azure_deployment"
	fieldAPIVersion      = "api_version"
	fieldHeaders         = "headers"
	fieldMaxTokensField  = "max_tokens_field"
	fieldStreamOptions   = "stream_options"
	fieldToolNameLimit   = "tool_name_limit"
	fieldMaxOutputTokens = "max_output_tokens"
)

// fieldNames returns the type's fields in the order messages list them.
func fieldNames() []string {
	return []string{fieldBaseURL, fieldAPIKey, fieldAPIKeyFile, fieldAuth, fieldAzureDeployment, fieldAPIVersion,
		fieldHeaders, fieldMaxTokensField, fieldStreamOptions, fieldToolNameLimit, fieldMaxOutputTokens}
}

// Auth is how the provider's key is sent.
type Auth string

// The ways of sending the key: Authorization: Bearer (OpenAI and most
// compatible APIs), api-key (Azure OpenAI), or no key at all (a local vLLM
// or Ollama).
const (
	AuthBearer Auth = "bearer"
	AuthAPIKey Auth = "api-key"
	AuthNone   Auth = "none"
)

// The values of max_tokens_field: the field the client's max_tokens becomes.
const (
	MaxCompletionTokens = "max_completion_tokens"
	MaxTokens           = "max_tokens"
)

// Header is one extra request header a provider is sent.
type Header struct{ Name, Value string }

// Settings is what a policy says about one provider of type openai: where
// its Chat Completions API is, how its key is sent, and its quirks, as data.
// A loaded policy's Provider.Settings holds one; it is then immutable and
// safe for concurrent use.
type Settings struct {
	// BaseURL is the API's base; requests go to its path plus
	// /chat/completions, or with AzureDeployment to its path plus
	// /openai/deployments/{deployment}/chat/completions. Default
	// DefaultBaseURL.
	BaseURL *url.URL
	// APIKey is the provider's key from api_key (a ${VAR}) or api_key_file.
	APIKey secret.Secret
	// Auth is how APIKey is sent: auth, default api-key with an Azure
	// deployment and bearer otherwise.
	Auth Auth
	// AzureDeployment is the Azure OpenAI deployment the path names, if any.
	AzureDeployment string
	// APIVersion is sent as the api-version query parameter, if set (Azure).
	APIVersion string
	// Headers are sent with every request (headers: "Name: Value" lines),
	// such as OpenRouter's HTTP-Referer and X-Title.
	Headers []Header
	// MaxTokensField is the field the client's max_tokens becomes:
	// max_completion_tokens (default; OpenAI's current name, which its
	// reasoning models require) or max_tokens (older compatible APIs).
	MaxTokensField string
	// StreamOptions says whether the API accepts stream_options, through
	// which a stream's usage is asked for (include_usage). Default true.
	StreamOptions bool
	// ToolNameLimit is the longest tool name the API accepts; longer names
	// are shortened reversibly. 0 means no limit. Default
	// DefaultToolNameLimit.
	ToolNameLimit int
	// MaxOutputTokens caps the client's max_tokens: a larger one is sent as
	// this (Claude Code asks for 32,000 to 128,000; gpt-4o, for one, takes
	// at most 16,384 and refuses more). 0, the default, sends it as it is.
	MaxOutputTokens int64

	keyFields  []string
	keyInvalid bool
	authSet    bool
}

func newSettings() *Settings {
	u, _ := url.Parse(DefaultBaseURL) // a constant that parses
	return &Settings{BaseURL: u, MaxTokensField: MaxCompletionTokens, StreamOptions: true, ToolNameLimit: DefaultToolNameLimit}
}

// fieldError is a problem with one field as a whole; the policy decoder
// reports it at that field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.msg }

// Field returns the name of the field the problem is about.
func (e *fieldError) Field() string { return e.field }

// Set decodes the value of one of the type's fields, as written in the
// policy; the decoder calls it in document order. For api_key and
// api_key_file the value is a reference (a ${VAR} or a path): Resolve
// fetches the secret.
func (s *Settings) Set(field, value string) error {
	if !slices.Contains(fieldNames(), field) {
		return fmt.Errorf("type %s has no field %q", TypeName, field)
	}
	switch field {
	case fieldBaseURL:
		u, err := baseurl.Parse(value, DefaultBaseURL, "; use api_key or api_key_file")
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
	case fieldAuth:
		switch a := Auth(value); a {
		case AuthBearer, AuthAPIKey, AuthNone:
			s.Auth, s.authSet = a, true
		default:
			return fmt.Errorf("must be bearer, api-key or none, not %q", value)
		}
	case fieldAzureDeployment:
		if value == "" || strings.ContainsAny(value, "/?#%") {
			return errors.New("must be an Azure deployment name, without /, ?, # or %")
		}
		s.AzureDeployment = value
	case fieldAPIVersion:
		if value == "" || url.QueryEscape(value) != value {
			return errors.New("must be an API version such as 2024-10-21")
		}
		s.APIVersion = value
	case fieldHeaders:
		hs, err := parseHeaders(value)
		if err != nil {
			return err
		}
		s.Headers = hs
	case fieldMaxTokensField:
		if value != MaxCompletionTokens && value != MaxTokens {
			return fmt.Errorf("must be %s or %s, not %q", MaxCompletionTokens, MaxTokens, value)
		}
		s.MaxTokensField = value
	case fieldStreamOptions:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("must be true or false, not %q", value)
		}
		s.StreamOptions = b
	case fieldMaxOutputTokens:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("must be 0 (no cap) or a number of tokens, not %q", value)
		}
		s.MaxOutputTokens = n
	case fieldToolNameLimit:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 0 && n < minToolNameLimit {
			return fmt.Errorf("must be 0 (no limit) or a length of at least %d, not %q", minToolNameLimit, value)
		}
		s.ToolNameLimit = n
	}
	return nil
}

// parseHeaders parses headers: one "Name: Value" per line, as in Claude
// Code's ANTHROPIC_CUSTOM_HEADERS. Names are HTTP tokens, stored lower-case;
// the credential headers, pseudo-headers and framing headers are refused.
func parseHeaders(v string) ([]Header, error) {
	var out []Header
	for _, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("line %q is not a \"Name: Value\" header", line)
		}
		switch name {
		case hdrAuthorization, hdrAPIKey, "x-api-key", "host", "content-length", "content-type", "transfer-encoding", "connection":
			return nil, fmt.Errorf("header %s is Tollgate's to set", name)
		}
		if strings.ContainsAny(value, "\r\x00") {
			return nil, fmt.Errorf("header %s has an invalid value", name)
		}
		out = append(out, Header{Name: name, Value: value})
	}
	return out, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// Resolve completes the settings once every field is set. A key (api_key or
// api_key_file, not both) is required unless auth is none, which takes
// none. It is fetched with env (a ${VAR} reference) or file (a path); their
// errors are returned as they are.
func (s *Settings) Resolve(env, file func(field string) (secret.Secret, error)) error {
	if !s.authSet {
		s.Auth = AuthBearer
		if s.AzureDeployment != "" {
			s.Auth = AuthAPIKey
		}
	}
	switch {
	case len(s.keyFields) > 1:
		return &fieldError{field: s.keyFields[1], msg: "api_key and api_key_file are mutually exclusive; keep one"}
	case s.Auth == AuthNone && len(s.keyFields) > 0:
		return &fieldError{field: s.keyFields[0], msg: "auth: none sends no key; remove " + s.keyFields[0] + " or choose bearer or api-key"}
	case s.Auth == AuthNone:
		return nil
	case len(s.keyFields) == 0:
		return errors.New("api_key or api_key_file is required (or auth: none for a provider that takes no key)")
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

package bedrock

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/tollgate-dev/tollgate/provider/internal/baseurl"
	"github.com/tollgate-dev/tollgate/provider/internal/claudeids"
	"github.com/tollgate-dev/tollgate/provider/internal/cloudcompat"
	"github.com/tollgate-dev/tollgate/secret"
)

// The fields of a provider of this type, besides type, models and budgets.
const (
	fieldRegion              = "region"
	fieldBaseURL             = "base_url"
	fieldAccessKeyID         = "access_key_id"
	fieldAccessKeyIDFile     = "access_key_id_file"
	fieldSecretAccessKey     = "secret_access_key"
	fieldSecretAccessKeyFile = "secret_access_key_file"
	fieldSessionToken        = "session_token"
	fieldSessionTokenFile    = "session_token_file"
	fieldAPIKey              = "api_key"
	fieldAPIKeyFile          = "api_key_file"
	fieldCompat              = "compat"
)

// fieldNames returns the type's fields in the order messages list them.
func fieldNames() []string {
	return []string{fieldRegion, fieldBaseURL, fieldAccessKeyID, fieldAccessKeyIDFile,
		fieldSecretAccessKey, fieldSecretAccessKeyFile, fieldSessionToken, fieldSessionTokenFile,
		fieldAPIKey, fieldAPIKeyFile, fieldCompat}
}

// Settings is what a policy says about one provider of type bedrock. A loaded
// policy's Provider.Settings holds one; it is then immutable and safe for
// concurrent use.
type Settings struct {
	// Region is the AWS region, which names the default host and scopes the
	// signature.
	Region string
	// BaseURL is where requests go: base_url (a VPC endpoint, a test fake),
	// or https://bedrock-runtime.{region}.amazonaws.com.
	BaseURL *url.URL
	// APIKey is a Bedrock API key from api_key or api_key_file, sent as
	// Authorization: Bearer instead of a signature.
	APIKey secret.Secret
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials
	// from their fields (the session token is optional).
	AccessKeyID, SecretAccessKey, SessionToken secret.Secret

	// creds signs when neither an API key nor static keys are given: the
	// SDK's default chain (environment, shared config, web identity,
	// container and instance roles), cached and refreshed before expiry by
	// aws.CredentialsCache.
	creds aws.CredentialsProvider
	// models maps Anthropic model ids to the Bedrock ids of the region
	// (DefaultModel); nil until Resolve.
	models *claudeids.Bedrock

	// compat is the table of the betas and body fields Bedrock accepts
	// (package cloudcompat), with the policy's compat overrides.
	compat *cloudcompat.Config

	set        []string // the fields given, in document order
	refInvalid bool     // a *_file field was empty (Set reported it)
}

func newSettings() *Settings { return &Settings{compat: cloudcompat.New(cloudcompat.Bedrock())} }

// fieldError is a problem with one field as a whole; the policy decoder
// reports it at that field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.msg }

// Field returns the name of the field the problem is about.
func (e *fieldError) Field() string { return e.field }

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// Set decodes the value of one of the type's fields, as written in the
// policy; the decoder calls it in document order. For the credential fields
// the value is a reference (a ${VAR} or a path): Resolve fetches the secret.
func (s *Settings) Set(field, value string) error {
	if !slices.Contains(fieldNames(), field) {
		return fmt.Errorf("type %s has no field %q", TypeName, field)
	}
	s.set = append(s.set, field)
	switch field {
	case fieldRegion:
		if !regionPattern.MatchString(value) {
			return errors.New("must be an AWS region such as us-east-1")
		}
		s.Region = value
	case fieldBaseURL:
		u, err := parseBaseURL(value)
		if err != nil {
			return err
		}
		s.BaseURL = u
	case fieldCompat:
		return errors.New("must be a mapping of betas and body fields to pass, drop or adapt")
	default:
		if strings.HasSuffix(field, "_file") && value == "" {
			s.refInvalid = true
			return errors.New("must not be empty")
		}
	}
	return nil
}

// SetEntry decodes one entry of a field whose value is a mapping, as
// written in the policy: for compat, key is a beta or a body field of
// Bedrock's compatibility table and value its action (pass, drop, adapt),
// which overrides the table's; a beta and the field it gates travel
// together, so conflicting actions for the two are an error.
func (s *Settings) SetEntry(field, key, value string) error {
	if field != fieldCompat {
		return fmt.Errorf("%s is not a mapping", field)
	}
	return s.compat.Set(key, value)
}

// has reports whether the policy gave field or its _file form, and which.
func (s *Settings) has(field string) (string, bool) {
	for _, f := range s.set {
		if f == field || f == field+"_file" {
			return f, true
		}
	}
	return "", false
}

// Resolve completes the settings once every field is set. region is
// required. Credentials are one of: api_key (or api_key_file); access_key_id
// and secret_access_key (each possibly _file), with an optional
// session_token; or none, for the SDK's default credential chain. Each secret
// is fetched with env (a ${VAR} reference) or file (a path); their errors are
// returned as they are, joined.
func (s *Settings) Resolve(env, file func(field string) (secret.Secret, error)) error {
	if s.Region == "" {
		return errors.New("region is required")
	}
	if s.BaseURL == nil {
		s.BaseURL = defaultBaseURL(s.Region)
	}
	s.models = defaultModels(s.Region)
	for _, f := range []string{fieldAPIKey, fieldAccessKeyID, fieldSecretAccessKey, fieldSessionToken} {
		if n := countField(s.set, f); n > 1 {
			return &fieldError{field: f + "_file", msg: f + " and " + f + "_file are mutually exclusive; keep one"}
		}
	}
	_, hasKey := s.has(fieldAPIKey)
	idField, hasID := s.has(fieldAccessKeyID)
	secretField, hasSecret := s.has(fieldSecretAccessKey)
	tokenField, hasToken := s.has(fieldSessionToken)
	switch {
	case hasKey && (hasID || hasSecret || hasToken):
		return &fieldError{field: fieldAPIKey, msg: "api_key and AWS access keys are mutually exclusive; keep one"}
	case hasID != hasSecret:
		return errors.New("access_key_id and secret_access_key go together")
	case hasToken && !hasID:
		return &fieldError{field: tokenField, msg: "session_token needs access_key_id and secret_access_key"}
	case s.refInvalid:
		return nil
	}
	fetch := func(field string) (secret.Secret, error) {
		if strings.HasSuffix(field, "_file") {
			return file(field)
		}
		return env(field)
	}
	var errs []error
	get := func(field string, into *secret.Secret) {
		v, err := fetch(field)
		*into = v
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case hasKey:
		f, _ := s.has(fieldAPIKey)
		get(f, &s.APIKey)
	case hasID:
		get(idField, &s.AccessKeyID)
		get(secretField, &s.SecretAccessKey)
		if hasToken {
			get(tokenField, &s.SessionToken)
		}
	default:
		// Loading reads the environment and shared files only; credentials
		// are fetched (and refreshed) when the first request is signed.
		cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(s.Region))
		if err != nil {
			return fmt.Errorf("the default AWS credential chain: %w", err)
		}
		s.creds = cfg.Credentials
	}
	return errors.Join(errs...)
}

func countField(set []string, field string) int {
	n := 0
	for _, f := range set {
		if f == field || f == field+"_file" {
			n++
		}
	}
	return n
}

// defaultBaseURL is Bedrock's runtime endpoint in region.
func defaultBaseURL(region string) *url.URL {
	return &url.URL{Scheme: "https", Host: "bedrock-runtime." + region + ".amazonaws.com"}
}

// parseBaseURL parses and checks a base_url.
func parseBaseURL(s string) (*url.URL, error) {
	return baseurl.Parse(s, "https://bedrock-runtime.us-east-1.amazonaws.com", "")
}

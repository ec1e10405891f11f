package vertex

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/tollgate-dev/tollgate/provider/internal/baseurl"
	"github.com/tollgate-dev/tollgate/provider/internal/claudeids"
	"github.com/tollgate-dev/tollgate/provider/internal/cloudcompat"
	"github.com/tollgate-dev/tollgate/secret"
)

// The fields of a provider of this type, besides type, models and budgets.
const (
	fieldProject         = "project"
	fieldRegion          = "region"
	fieldBaseURL         = "base_url"
	fieldCredentials     = "credentials"
	fieldCredentialsFile = "credentials_file"
	fieldCompat          = "compat"
)

// fieldNames returns the type's fields in the order messages list them.
func fieldNames() []string {
	return []string{fieldProject, fieldRegion, fieldBaseURL, fieldCredentials, fieldCredentialsFile, fieldCompat}
}

// Scope is the OAuth2 scope access tokens are asked for.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// tokenFetchTimeout bounds one request to a token endpoint (or the metadata
// server); the fetch runs apart from every client request.
const tokenFetchTimeout = 30 * time.Second

// Settings is what a policy says about one provider of type vertex. A loaded
// policy's Provider.Settings holds one; it is then immutable (but for the
// token cache, which is safe for concurrent use) and safe for concurrent use.
type Settings struct {
	// Project is the Google Cloud project id (or number) requests are made
	// in and billed to.
	Project string
	// Region is the location of the models: "global", a multi-region ("us"
	// or "eu"), or a region such as "us-east5".
	Region string
	// BaseURL is where requests go: base_url (a Private Service Connect
	// endpoint, a test fake), or the region's host: https://aiplatform.googleapis.com
	// for global, https://aiplatform.{us,eu}.rep.googleapis.com for a
	// multi-region, https://{region}-aiplatform.googleapis.com otherwise.
	BaseURL *url.URL

	// tokens gives every attempt its access token; nil when the policy's
	// credentials did not resolve.
	tokens *tokenCache

	// models maps Anthropic model ids to Vertex AI's (DefaultModel).
	models *claudeids.Vertex
	// compat is the table of the betas and body fields Vertex AI accepts
	// (package cloudcompat), with the policy's compat overrides.
	compat *cloudcompat.Config

	set        []string // the fields given, in document order
	refInvalid bool     // a *_file field was empty (Set reported it)
}

func newSettings() *Settings {
	return &Settings{compat: cloudcompat.New(cloudcompat.Vertex()), models: defaultModels()}
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

var (
	// regionPattern matches Google Cloud regions: us-east5, europe-west1,
	// northamerica-northeast1.
	regionPattern = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	// projectPattern matches project ids (my-project), numbers and
	// domain-scoped ids (example.com:my-project).
	projectPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]*$`)
)

// Set decodes the value of one of the type's fields, as written in the
// policy; the decoder calls it in document order. For the credential fields
// the value is a reference (a ${VAR} or a path): Resolve fetches the secret.
func (s *Settings) Set(field, value string) error {
	if !slices.Contains(fieldNames(), field) {
		return fmt.Errorf("type %s has no field %q", TypeName, field)
	}
	s.set = append(s.set, field)
	switch field {
	case fieldProject:
		if !projectPattern.MatchString(value) {
			return errors.New("must be a Google Cloud project id such as my-project")
		}
		s.Project = value
	case fieldRegion:
		if value != "global" && value != "us" && value != "eu" && !regionPattern.MatchString(value) {
			return errors.New("must be global, us, eu or a Google Cloud region such as us-east5")
		}
		s.Region = value
	case fieldBaseURL:
		u, err := baseurl.Parse(value, "https://us-east5-aiplatform.googleapis.com", "; give the credentials in credentials or credentials_file")
		if err != nil {
			return err
		}
		s.BaseURL = u
	case fieldCredentialsFile:
		if value == "" {
			s.refInvalid = true
			return errors.New("must not be empty")
		}
	case fieldCompat:
		return errors.New("must be a mapping of betas and body fields to pass, drop or adapt")
	}
	return nil
}

// SetEntry decodes one entry of a field whose value is a mapping, as
// written in the policy: for compat, key is a beta or a body field of
// Vertex AI's compatibility table and value its action (pass, drop, adapt),
// which overrides the table's; a beta and the field it gates travel
// together, so conflicting actions for the two are an error.
func (s *Settings) SetEntry(field, key, value string) error {
	if field != fieldCompat {
		return fmt.Errorf("%s is not a mapping", field)
	}
	return s.compat.Set(key, value)
}

// Host returns the Vertex AI host of region: aiplatform.googleapis.com for
// "global", aiplatform.{us,eu}.rep.googleapis.com for the multi-regions,
// {region}-aiplatform.googleapis.com for a region.
func Host(region string) string {
	switch region {
	case "global":
		return "aiplatform.googleapis.com"
	case "us", "eu":
		return "aiplatform." + region + ".rep.googleapis.com"
	}
	return region + "-aiplatform.googleapis.com"
}

// Resolve completes the settings once every field is set. project and
// region are required. The credentials are credentials (a ${VAR} holding
// the JSON) or credentials_file (a path to it): a service-account key, or
// any other JSON golang.org/x/oauth2/google reads (external_account for
// workload identity federation, authorized_user, impersonated service
// accounts); or neither, for Application Default Credentials
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, the metadata server of GCE
// and of GKE workload identity), which are looked up at the first request:
// the lookup may probe the metadata server, which a policy load, `tollgate
// envoy render` included, must not. The secret is fetched with env or file;
// their errors are returned as they are.
func (s *Settings) Resolve(env, file func(field string) (secret.Secret, error)) error {
	switch {
	case s.Project == "":
		return errors.New("project is required")
	case s.Region == "":
		return errors.New("region is required")
	}
	if s.BaseURL == nil {
		s.BaseURL = &url.URL{Scheme: "https", Host: Host(s.Region)}
	}
	_, hasJSON := s.has(fieldCredentials)
	_, hasFile := s.has(fieldCredentialsFile)
	switch {
	case hasJSON && hasFile:
		return &fieldError{field: fieldCredentialsFile, msg: "credentials and credentials_file are mutually exclusive; keep one"}
	case s.refInvalid:
		return nil
	}
	// The token sources keep this context for their requests to token
	// endpoints, which serve every stream and outlive each of them.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: tokenFetchTimeout})
	if !hasJSON && !hasFile {
		s.tokens = newTokenCache(&defaultSource{ctx: ctx})
		return nil
	}
	field, get := fieldCredentials, env
	if hasFile {
		field, get = fieldCredentialsFile, file
	}
	js, err := get(field)
	if err != nil {
		return err
	}
	creds, err := google.CredentialsFromJSONWithParams(ctx, []byte(js.Reveal()), google.CredentialsParams{Scopes: []string{Scope}})
	if err != nil {
		return &fieldError{field: field, msg: "not Google credentials JSON: " + err.Error()}
	}
	s.tokens = newTokenCache(creds.TokenSource)
	return nil
}

// has reports whether the policy gave field, and which.
func (s *Settings) has(field string) (string, bool) {
	for _, f := range s.set {
		if f == field {
			return f, true
		}
	}
	return "", false
}

// defaultSource is a token source over Application Default Credentials,
// found at its first use (and again after a failed lookup).
type defaultSource struct {
	ctx context.Context

	mu sync.Mutex // held while looking up; only the cache's fetch calls Token
	ts oauth2.TokenSource
}

// Token implements oauth2.TokenSource.
func (d *defaultSource) Token() (*oauth2.Token, error) {
	d.mu.Lock()
	if d.ts == nil {
		creds, err := google.FindDefaultCredentials(d.ctx, Scope)
		if err != nil {
			d.mu.Unlock()
			return nil, fmt.Errorf("application default credentials: %w", err)
		}
		d.ts = creds.TokenSource
	}
	ts := d.ts
	d.mu.Unlock()
	return ts.Token()
}

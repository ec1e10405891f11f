// Package bedrock is the AWS Bedrock upstream provider type, for Anthropic
// models through InvokeModel, InvokeModelWithResponseStream and CountTokens
// (WIRE-FORMATS section 4). It owns what a policy says about such a provider
// (its [Settings]: region, base_url and the credentials), what one attempt to
// it needs (the host, a SigV4 signature over the final path and body, or a
// Bedrock API key as bearer), and the translations from Anthropic Messages
// clients: the request body gains anthropic_version and the betas, and loses
// model (to the path) and stream; the response's event stream becomes
// Anthropic SSE, and Bedrock's errors Anthropic's. OpenAI Chat Completions
// clients are served through the same translation (package openaichat).
//
// Like every provider type's package, it imports neither package provider,
// nor policy, nor extproc: the adapter reaches it through interfaces it
// declares, which these types satisfy structurally.
package bedrock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TypeName is the value of a provider's type field that selects this type.
const TypeName = "bedrock"

// SigningService is the SigV4 service name of the Bedrock runtime API.
const SigningService = "bedrock"

// Headers an attempt to Bedrock sets: the signature and its inputs, or the
// API key in authorization.
const (
	hdrAuthorization = "authorization"
	hdrDate          = "x-amz-date"
	hdrSecurityToken = "x-amz-security-token"
	hdrContentSHA256 = "x-amz-content-sha256"
)

// Type is the bedrock provider type. Its zero value is ready to use.
type Type struct{}

// Name returns "bedrock", the value of the type field that selects the type.
func (Type) Name() string { return TypeName }

// Fields returns the fields of a provider of this type besides the ones every
// provider has, in the order messages list them.
func (Type) Fields() []string { return fieldNames() }

// NewSettings returns fresh settings, a *Settings, for the policy decoder to
// fill in.
func (Type) NewSettings() any { return newSettings() }

// SetRequestHeaders sets, through set, the headers an attempt to this
// provider needs at its request headers: the host. The path, which holds the
// model from the body, and the credentials, which sign the final body, are
// set at the body (the translation's TranslateRequest, then SignRequest).
func (s *Settings) SetRequestHeaders(_ string, _ func(name string) bool, set func(name, value string)) {
	set(":authority", s.BaseURL.Host)
}

// CredentialHeaders returns the request headers through which a provider of
// this type is authenticated. An attempt to any other provider removes them,
// since Envoy keeps one request header map across attempts.
func (s *Settings) CredentialHeaders() []string {
	return []string{hdrAuthorization, hdrDate, hdrSecurityToken, hdrContentSHA256}
}

// SetBodyHeaders sets, through set, the headers that depend on the
// translated request, once its body is final: the path (path, from the
// translation, escaped, put under the base URL's path) and the credentials
// of a request with the given method and body, signed at now. They are a
// Bearer API key, or a SigV4 signature (service "bedrock", the settings'
// region) over the host, the path, x-amz-date, the session token if any and
// the body's SHA-256. Credentials from the default chain are fetched with
// ctx, through the SDK's cache.
func (s *Settings) SetBodyHeaders(ctx context.Context, now time.Time, method, path string, body []byte, set func(name, value string)) error {
	path = strings.TrimSuffix(s.BaseURL.EscapedPath(), "/") + path
	set(":path", path)
	if key := s.APIKey.Reveal(); key != "" {
		set(hdrAuthorization, "Bearer "+key)
		return nil
	}
	var creds aws.Credentials
	switch {
	case s.AccessKeyID.Reveal() != "":
		creds = aws.Credentials{AccessKeyID: s.AccessKeyID.Reveal(), SecretAccessKey: s.SecretAccessKey.Reveal(),
			SessionToken: s.SessionToken.Reveal(), Source: "policy"}
	case s.creds != nil:
		c, err := s.creds.Retrieve(ctx)
		if err != nil {
			return fmt.Errorf("AWS credentials: %w", err)
		}
		creds = c
	default:
		return errors.New("no AWS credentials: the policy's secrets did not resolve")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	h, err := Sign(ctx, creds, s.Region, method, s.BaseURL.Host, path, hash, now)
	if err != nil {
		return err
	}
	set(hdrContentSHA256, hash)
	for _, name := range []string{hdrDate, hdrSecurityToken, hdrAuthorization} {
		if v := h.Get(name); v != "" {
			set(name, v)
		}
	}
	return nil
}

// Sign signs a request to host with the SDK's SigV4 signer and returns the
// headers it set (x-amz-date, x-amz-security-token, authorization). The
// signed headers are host, x-amz-content-sha256, x-amz-date and the session
// token: the ones Tollgate sets itself, so that no client header the
// provider may see altered in transit breaks the signature. A fake provider
// verifies a request by signing it again with the same function.
func Sign(ctx context.Context, creds aws.Credentials, region, method, host, path, payloadHash string, at time.Time) (http.Header, error) {
	u := &url.URL{Scheme: "https", Host: host}
	rawPath, query, _ := strings.Cut(path, "?")
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", rawPath, err)
	}
	u.Path, u.RawPath, u.RawQuery = p, rawPath, query
	r := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{}}
	r.Header.Set(hdrContentSHA256, payloadHash)
	if err := v4.NewSigner().SignHTTP(ctx, creds, r, payloadHash, SigningService, region, at.UTC()); err != nil {
		return nil, fmt.Errorf("SigV4: %w", err)
	}
	return r.Header, nil
}

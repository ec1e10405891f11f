// Package baseurl checks the base_url field that provider types share.
package baseurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Parse parses and checks a base_url: an absolute http or https URL with a
// host, without credentials, query or fragment; a trailing slash is dropped.
// example is a valid URL the messages quote, and credentialHint is appended
// to the refusal of a URL carrying credentials (where they belong instead).
func Parse(s, example, credentialHint string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("invalid URL: %w", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an absolute http or https URL, such as " + example)
	case u.Host == "" || u.Opaque != "":
		return nil, errors.New("must be an absolute http or https URL with a host")
	case u.User != nil:
		return nil, errors.New("must not contain credentials" + credentialHint)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("must not have a query or fragment")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

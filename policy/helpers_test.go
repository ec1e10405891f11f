package policy

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/provider/anthropic"
)

// doc joins lines into a YAML document, so that a test's line numbers can be
// read off its position in the list.
func doc(lines ...string) []byte {
	return []byte(strings.Join(lines, "\n") + "\n")
}

// env returns a LookupEnv backed by vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// anyEnv is a LookupEnv in which every variable is set to "set-in-test".
func anyEnv(string) (string, bool) { return "set-in-test", true }

// files returns a ReadFile backed by contents; other names do not exist.
func files(contents map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if c, ok := contents[name]; ok {
			return []byte(c), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
}

// noFiles is a ReadFile for which no file exists.
func noFiles(name string) ([]byte, error) { return files(nil)(name) }

// problems returns the problems of a *LoadError as strings, or fails the test
// for any other error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error is %T, not *LoadError: %v", err, err)
	}
	return strings.Split(le.Error(), "\n")
}

func strs(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// hashK and hashJ are the sha256 of the gateway keys "k" and "j", used in
// test policies; TestHashKey checks them.
const (
	hashK = "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a"
	hashJ = "189f40034be7a199f1fa9891668ee3ab6049f82d38c68be70f596eab2e1857b7"
)

// settings returns the settings of an anthropic provider, or an empty value
// when prov has none (so that a test reports a wrong value, not a panic).
func settings(prov *Provider) *anthropic.Settings {
	if s, ok := prov.Settings.(*anthropic.Settings); ok {
		return s
	}
	return &anthropic.Settings{}
}

// apiKey returns the revealed API key of an anthropic provider.
func apiKey(prov *Provider) string { return settings(prov).APIKey.Reveal() }

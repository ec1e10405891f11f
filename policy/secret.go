package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/secret"
)

// Secret is a credential such as a provider API key; see [secret.Secret].
type Secret = secret.Secret

// envRef matches a complete ${VAR} or ${VAR:-default} reference.
var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}$`)

// bareEnvRef matches $VAR, a common slip for ${VAR}.
var bareEnvRef = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)

// badReference is a secret field whose value is not a reference the policy
// allows. It is always a load error, at the value.
type badReference struct {
	field string
	msg   string
}

func (e *badReference) Error() string { return e.msg }

// unresolvedSecret is a well-formed reference to a secret that cannot be
// fetched. It is a load error only for a provider in use when
// LoadOptions.RequireSecrets is set, and a warning otherwise; either way at
// the field's name.
type unresolvedSecret struct {
	field string
	why   string
}

func (e *unresolvedSecret) Error() string { return "unresolved secret: " + e.why }

// parseEnvRef parses the value of a field that must hold a ${VAR} reference;
// alt names a sibling field that takes a file instead ("" for none). It never
// echoes the value in its error, since a literal in such a field is most
// likely a real key.
func parseEnvRef(v, alt string) (env, def string, hasDefault bool, err error) {
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
	if alt != "" {
		alt = ", or use " + alt
	}
	return "", "", false, fmt.Errorf("must be a ${VAR} reference to an environment variable%s; "+
		"provider keys are never written into the policy (value not shown)", alt)
}

// envSecret returns the secret that the ${VAR} reference in field of the
// provider pd names, for ProviderSettings.Resolve.
func (d *decoder) envSecret(pd *providerDraft) func(field string) (Secret, error) {
	return func(field string) (Secret, error) {
		f, ok := pd.fields[field]
		if !ok {
			return "", fmt.Errorf("%s is not set", field)
		}
		alt := ""
		if t, ok := providerType(pd.p.Type); ok && slices.Contains(t.Fields(), field+"_file") {
			alt = field + "_file"
		}
		name, def, hasDefault, err := parseEnvRef(f.value, alt)
		if err != nil {
			return "", &badReference{field: field, msg: err.Error()}
		}
		v, ok := d.opts.LookupEnv(name)
		switch {
		case v != "":
			return Secret(v), nil
		case hasDefault && def != "":
			return Secret(def), nil
		case ok:
			return "", &unresolvedSecret{field: field, why: fmt.Sprintf("environment variable %s is empty", name)}
		default:
			return "", &unresolvedSecret{field: field, why: fmt.Sprintf("environment variable %s is not set", name)}
		}
	}
}

// fileSecret returns the secret held in the file that field of the provider
// pd names, without trailing white space, for ProviderSettings.Resolve. A
// relative path is relative to the policy file's directory.
func (d *decoder) fileSecret(pd *providerDraft) func(field string) (Secret, error) {
	return func(field string) (Secret, error) {
		f, ok := pd.fields[field]
		if !ok {
			return "", fmt.Errorf("%s is not set", field)
		}
		path := secretPath(d.file, f.value)
		data, err := d.opts.ReadFile(path)
		if err != nil {
			return "", &unresolvedSecret{field: field, why: fmt.Sprintf("cannot read %s: %v", field, err)}
		}
		v := strings.TrimRightFunc(string(data), unicode.IsSpace)
		if v == "" {
			return "", &unresolvedSecret{field: field, why: fmt.Sprintf("%s %s is empty", field, path)}
		}
		return Secret(v), nil
	}
}

// resolveSettings completes the settings of the provider pd, which a route
// uses if used, and records what goes wrong at the field it concerns.
func (d *decoder) resolveSettings(pd *providerDraft, used bool) {
	path := "providers." + pd.p.Name
	err := pd.settings.Resolve(d.envSecret(pd), d.fileSecret(pd))
	if err == nil {
		return
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, err := range errs {
		var (
			unresolved *unresolvedSecret
			bad        *badReference
			named      interface{ Field() string }
		)
		switch {
		case errors.As(err, &unresolved):
			key := d.fieldKey(pd, unresolved.field)
			pr := d.problem(key, path+"."+unresolved.field, "%v", unresolved)
			if used && d.opts.RequireSecrets {
				d.errs = append(d.errs, pr)
			} else {
				d.warns = append(d.warns, pr)
			}
		case errors.As(err, &bad):
			val := pd.name
			if f, ok := pd.fields[bad.field]; ok {
				val = f.val
			}
			d.errorf(val, path+"."+bad.field, "%v", bad)
		case errors.As(err, &named):
			d.errorf(d.fieldKey(pd, named.Field()), path, "%v", err)
		default:
			d.errorf(pd.name, path, "%v", err)
		}
	}
}

// fieldKey returns the key of field in the provider pd, or the provider's
// name when it has no such field.
func (d *decoder) fieldKey(pd *providerDraft, field string) *yaml.Node {
	if f, ok := pd.fields[field]; ok {
		return f.key
	}
	return pd.name
}

// secretPath makes a relative secret file path relative to the directory of
// the policy file named source. Embedded policies have no directory.
func secretPath(source, path string) string {
	if filepath.IsAbs(path) || strings.HasPrefix(source, embeddedPrefix) {
		return path
	}
	return filepath.Join(filepath.Dir(source), path)
}

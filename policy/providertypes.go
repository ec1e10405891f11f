package policy

import (
	"slices"

	"github.com/tollgate-dev/tollgate/provider"
	"github.com/tollgate-dev/tollgate/secret"
)

// ProviderType is what the decoder needs of a provider type, a kind of
// upstream provider named by a provider's type field. The types are those
// package provider registers (each [provider.Type] is one), each in its own
// package under provider/ (provider/anthropic for "anthropic").
type ProviderType interface {
	// Name returns the value of the type field that selects the type.
	Name() string
	// Fields returns the names of the type's own fields, besides type,
	// models and budgets, which every provider has; in the order messages
	// list them.
	Fields() []string
	// NewSettings returns fresh settings for one provider of the type, a
	// value implementing ProviderSettings. After decoding they are the
	// Provider's Settings.
	NewSettings() any
}

// ProviderSettings is what the decoder needs of the settings of a provider
// type (the value its NewSettings returns).
type ProviderSettings interface {
	// Set decodes the value of one of the type's fields, as written in the
	// policy; it is called in document order, and only with fields the type
	// lists. The value of a secret field is its reference (a ${VAR} or a
	// path), never the secret. An error is reported at the value.
	Set(field, value string) error
	// Resolve completes the settings once every field is set: it checks the
	// fields against each other and fetches each secret with env (for a
	// field holding a ${VAR} reference) or file (for a field naming a file).
	// It should return what env or file return as it is (or wrapped), so
	// that an unresolvable secret is a warning where policies allow that.
	// Any other error, or each error joined in it by errors.Join, is
	// reported at the field its Field() string method names, or else at the
	// provider's name.
	Resolve(env, file func(field string) (secret.Secret, error)) error
}

// ModelMapper is implemented by the settings of a provider type whose
// providers know models by ids of their own, such as Bedrock's inference
// profile ids: it maps a client's Anthropic model id to the provider's by
// default. A provider's models field overrides it, id by id (see
// Policy.MapModel), and a request such a provider served is priced by the id
// sent (see Policy.PriceServed).
type ModelMapper interface {
	// DefaultModel returns the id to send to the provider for model (after
	// the route's mapping), or false to send model as it is. It is called
	// on every request and must be cheap and safe for concurrent use.
	DefaultModel(model string) (string, bool)
}

// ProviderEntrySettings is implemented by the settings of a provider type
// with a field whose value is a mapping of strings (bedrock's compat): the
// decoder calls SetEntry with each of its keys and values, in document
// order, instead of Set. An error is reported at the entry's value, under
// the path providers.NAME.FIELD.KEY.
type ProviderEntrySettings interface {
	SetEntry(field, key, value string) error
}

// ProviderTypes returns the provider types package provider registers, in
// the order messages list them.
func ProviderTypes() []ProviderType {
	all := provider.Types()
	types := make([]ProviderType, len(all))
	for i, t := range all {
		types[i] = t
	}
	return types
}

// providerType returns the registered type named name.
func providerType(name string) (ProviderType, bool) {
	t, ok := provider.Lookup(name)
	if !ok {
		return nil, false
	}
	return t, true
}

// providerTypeNames returns the names of the registered types.
func providerTypeNames() []string {
	var names []string
	for _, t := range provider.Types() {
		names = append(names, t.Name())
	}
	return names
}

// providerFields returns the fields a provider of type t has, in the order
// messages list them; for a nil t (a type missing or unknown), the fields of
// every registered type.
func providerFields(t ProviderType) []string {
	fields := []string{"type"}
	types := ProviderTypes()
	if t != nil {
		types = []ProviderType{t}
	}
	for _, t := range types {
		for _, f := range t.Fields() {
			if !slices.Contains(fields, f) {
				fields = append(fields, f)
			}
		}
	}
	return append(fields, "models", "budgets")
}

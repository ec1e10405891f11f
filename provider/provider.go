// Package provider is the registry of upstream provider types: the kinds of
// API a policy's providers may be (its type field), each in its own package
// under this directory (provider/anthropic for "anthropic").
//
// A provider type's package owns everything about the type: the fields a
// policy may give a provider of it and their checks ([Type.NewSettings]),
// what one attempt to such a provider needs (host, path, credentials; the
// settings implement extproc.Upstream), and the translation of requests from
// every client format it serves ([Type.Translator]). Adding a provider type is
// its package plus one line in [types]; the policy decoder and the adapter
// both read this list, and nothing else names a type. A type's package
// imports neither this package, nor policy, nor extproc: its values satisfy
// the interfaces they declare structurally.
package provider

import (
	"slices"

	"github.com/tollgate-dev/tollgate/provider/anthropic"
	"github.com/tollgate-dev/tollgate/provider/bedrock"
	"github.com/tollgate-dev/tollgate/provider/openai"
	"github.com/tollgate-dev/tollgate/provider/vertex"
	"github.com/tollgate-dev/tollgate/translate"
)

// types lists every provider type, in the order messages list them: one line
// per type. It is never modified.
var types = []Type{
	anthropic.Type{},
	bedrock.Type{},
	openai.Type{},
	vertex.Type{},
}

// Type is a kind of upstream provider, named by a provider's type field.
type Type interface {
	// Name returns the value of the type field that selects the type.
	Name() string
	// Fields returns the names of the type's own fields, besides type,
	// models and budgets, which every provider has; in the order messages
	// list them.
	Fields() []string
	// NewSettings returns fresh settings for one provider of the type, which
	// the policy decoder fills in (policy.ProviderSettings) and the adapter
	// sends requests with (extproc.Upstream).
	NewSettings() any
	// Translator returns the translation of requests written in
	// clientFormat to a provider of the type, or false when such clients
	// cannot be served by it.
	Translator(clientFormat string) (translate.Translator, bool)
}

// Types returns the registered provider types, in the order messages list
// them.
func Types() []Type { return slices.Clone(types) }

// Lookup returns the registered type named name.
func Lookup(name string) (Type, bool) {
	for _, t := range types {
		if t.Name() == name {
			return t, true
		}
	}
	return nil, false
}

// Translation returns the translation of requests from clientFormat to a
// provider of type providerType, or false when there is none: a client of
// that format cannot be served by a provider of that type (or the type is
// not registered).
func Translation(clientFormat, providerType string) (translate.Translator, bool) {
	t, ok := Lookup(providerType)
	if !ok {
		return nil, false
	}
	return t.Translator(clientFormat)
}

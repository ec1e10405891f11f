package vertex

import "github.com/tollgate-dev/tollgate/provider/internal/claudeids"

// DefaultModel returns the Vertex AI id to send for model, an Anthropic
// model id, when the provider's models field does not map it: the id the
// price catalog lists under Vertex AI for the same model and snapshot (see
// claudeids.Vertex.Map); "claude-sonnet-4-5" is "claude-sonnet-4-5@20250929".
// It returns false for an id that is already Vertex AI's (one with an "@")
// and for a model the catalog has no Vertex AI id for; that id is sent as it
// is. A request this provider served is priced by the id sent, at the
// catalog's Vertex AI price.
//
// The mapping is built when the settings are made, from the catalog compiled
// in: it needs neither credentials nor the region, so `tollgate envoy
// render` and a policy whose secrets did not resolve have it too.
func (s *Settings) DefaultModel(model string) (string, bool) {
	return s.models.Map(model)
}

// defaultModels returns the default mapping, from the ids the embedded
// price catalog lists under Vertex AI.
func defaultModels() *claudeids.Vertex {
	return claudeids.NewVertex(claudeids.Catalog("vertex_ai"))
}

package bedrock

import "github.com/tollgate-dev/tollgate/provider/internal/claudeids"

// DefaultModel returns the Bedrock id to send for model, an Anthropic model
// id, when the provider's models field does not map it: the id the price
// catalog lists for the same model and snapshot, through the region's
// geographic cross-region inference profile ("us.", "eu.", "apac.", ...),
// else the global profile ("global."), else the in-region model id (see
// claudeids.Bedrock.Map). In us-east-1, "claude-sonnet-4-5" is
// "us.anthropic.claude-sonnet-4-5-20250929-v1:0". It returns false for an id
// that is already Bedrock's (an inference profile id, an ARN) and for a model
// the catalog has no Bedrock id for; that id is sent as it is.
//
// Because the id sent names the inference profile, whose price may differ
// from the global one, a request this provider served is priced by the id
// sent, not by the Anthropic id its response names.
func (s *Settings) DefaultModel(model string) (string, bool) {
	return s.models.Map(model)
}

// defaultModels returns the default mapping of a provider in region, from
// the ids the embedded price catalog lists under Bedrock.
func defaultModels(region string) *claudeids.Bedrock {
	return claudeids.NewBedrock(claudeids.Catalog(TypeName), region)
}

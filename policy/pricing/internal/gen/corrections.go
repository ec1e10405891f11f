package main

// A correction replaces a rate of one LiteLLM entry that is known to be wrong.
// was is the rate the entry must have for the correction to apply ("" for a
// rate the entry lacks), so that a fixed or changed source table stops the
// generator instead of being silently overwritten. Rates are USD per million
// tokens.
type correction struct {
	provider, name string // LiteLLM's provider group and key, as written
	field          int    // fieldInput, …, fieldWrite1h
	was, now       string
	source         string
}

// corrections is the whole table. Keep it small: each entry needs a source
// that beats LiteLLM's, and the report lists every one applied.
var corrections = []correction{
	// The example: the 1-hour write of Haiku 3.5 is 2× its $0.80
	// input, not $6.
	{"anthropic", "claude-3-5-haiku-20241022", fieldWrite1h, "6", "1.60",
		"Anthropic prompt-caching pricing (WIRE-FORMATS 7): Haiku 3.5 1h write $1.60/MTok; Portkey agrees"},

	// claude-3-5-haiku-latest is Anthropic's alias of the dated id, but LiteLLM
	// prices it at the short-lived launch rates.
	{"anthropic", "claude-3-5-haiku-latest", fieldInput, "1", "0.80", haikuLatest},
	{"anthropic", "claude-3-5-haiku-latest", fieldOutput, "5", "4", haikuLatest},
	{"anthropic", "claude-3-5-haiku-latest", fieldCacheRead, "0.10", "0.08", haikuLatest},
	{"anthropic", "claude-3-5-haiku-latest", fieldWrite5m, "1.25", "1", haikuLatest},
	{"anthropic", "claude-3-5-haiku-latest", fieldWrite1h, "6", "1.60", haikuLatest},

	// LiteLLM gives several Claude 3 models a 1-hour write of $6, which is
	// right for Sonnet only.
	{"anthropic", "claude-3-haiku-20240307", fieldWrite1h, "6", "0.50",
		"Anthropic: a 1h write costs 2× input ($0.25/MTok for Haiku 3); Portkey agrees"},
	{"anthropic", "claude-3-opus-20240229", fieldWrite1h, "6", "30",
		"Anthropic: a 1h write costs 2× input ($15/MTok for Opus 3); Portkey agrees"},
	{"anthropic", "claude-3-opus-latest", fieldWrite1h, "6", "30",
		"Anthropic: a 1h write costs 2× input ($15/MTok for Opus 3); Portkey agrees"},

	// The EU inference profile of Haiku 3.5 repeats Haiku 3's rates.
	{"bedrock", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", fieldInput, "0.25", "0.80", euHaiku},
	{"bedrock", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", fieldOutput, "1.25", "4", euHaiku},
	{"bedrock", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", fieldCacheRead, "0.025", "0.08", euHaiku},
	{"bedrock", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", fieldWrite5m, "0.3125", "1", euHaiku},

	// LiteLLM's Vertex entries for Haiku 3.5 keep the launch rates.
	{"vertex_ai-anthropic_models", "vertex_ai/claude-3-5-haiku", fieldInput, "1", "0.80", vertexHaiku},
	{"vertex_ai-anthropic_models", "vertex_ai/claude-3-5-haiku", fieldOutput, "5", "4", vertexHaiku},
	{"vertex_ai-anthropic_models", "vertex_ai/claude-3-5-haiku@20241022", fieldInput, "1", "0.80", vertexHaiku},
	{"vertex_ai-anthropic_models", "vertex_ai/claude-3-5-haiku@20241022", fieldOutput, "5", "4", vertexHaiku},
}

const (
	haikuLatest = "claude-3-5-haiku-latest is Anthropic's alias of claude-3-5-haiku-20241022, " +
		"priced 0.80/4/0.08/1/1.60 (WIRE-FORMATS 7, data quirks); Portkey prices both ids the same"
	euHaiku = "LiteLLM repeats Haiku 3's rates here; its anthropic.… and us.… entries for the same model, " +
		"Anthropic's table (WIRE-FORMATS 7) and Portkey's bedrock entry all give 0.80/4/0.08/1"
	vertexHaiku = "Anthropic's rate for Haiku 3.5 is 0.80/4 (WIRE-FORMATS 7); Portkey's vertex-ai " +
		"claude-3-5-haiku@20241022 agrees"
)

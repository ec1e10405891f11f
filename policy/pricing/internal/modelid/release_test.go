package modelid

import "testing"

// TestReleaseOrder checks the order of ReleaseOf: each id is older than the
// next one, across the id forms of the Anthropic API, Bedrock and Vertex.
func TestReleaseOrder(t *testing.T) {
	for _, chain := range [][]string{
		{
			"claude-3-opus-20240229",
			"claude-3-opus-latest",
			"claude-opus-4-20250514",
			"claude-opus-4-1-20250805",
			"claude-opus-4-1",
			"claude-opus-4-5-20251101",
			"claude-opus-4-6",
			"claude-opus-5",
			"claude-opus-5-5",
			"claude-opus-10",
		},
		{
			"claude-3-haiku-20240307",
			"claude-3-5-haiku-20241022",
			"claude-3-5-haiku-latest",
			"claude-haiku-4-5-20251001",
			"claude-haiku-5-5",
		},
		{
			"gpt-4-0613",
			"gpt-4.1-2025-04-14",
			"gpt-4.1",
			"gpt-4.5-preview",
		},
		{"gpt-4o-2024-05-13", "gpt-4o-2024-08-06", "gpt-4o"},
		{"gpt-5-mini-2025-08-07", "gpt-5.4-mini"},
	} {
		for i := 1; i < len(chain); i++ {
			a, b := ReleaseOf(chain[i-1]), ReleaseOf(chain[i])
			if a.Compare(b) != -1 || b.Compare(a) != 1 {
				t.Errorf("%s (%v) is not older than %s (%v)", chain[i-1], a, chain[i], b)
			}
		}
	}
}

// TestReleaseSame checks ids that are the same release: a model's aliases,
// its Bedrock and Vertex ids and their regional forms.
func TestReleaseSame(t *testing.T) {
	for _, same := range [][]string{
		{"claude-opus-4", "claude-opus-4-0", "claude-4-opus", "vertex_ai/claude-opus-4"},
		{
			"claude-opus-4-5-20251101",
			"anthropic.claude-opus-4-5-20251101-v1:0",
			"us.anthropic.claude-opus-4-5-20251101-v1:0",
			"global.anthropic.claude-opus-4-5-20251101-v1:0",
			"claude-opus-4-5@20251101",
		},
		{
			"claude-opus-4-6",
			"anthropic.claude-opus-4-6-v1",
			"eu.anthropic.claude-opus-4-6-v1",
			"claude-opus-4-6@default",
			"us-gov.anthropic.claude-opus-4-6",
			"openrouter/anthropic/claude-opus-4.6",
		},
		{"claude-3-5-sonnet-20241022", "claude-3-5-sonnet-v2@20241022", "anthropic.claude-3-5-sonnet-20241022-v2:0"},
		{"gpt-4o-2024-08-06", "openai/gpt-4o-2024-08-06"},
	} {
		for _, id := range same[1:] {
			if c := ReleaseOf(same[0]).Compare(ReleaseOf(id)); c != 0 {
				t.Errorf("%s vs %s: Compare = %d, want the same release", same[0], id, c)
			}
		}
	}
}

func TestReleaseOfDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { ReleaseOf("us.anthropic.claude-opus-4-5-20251101-v1:0") }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

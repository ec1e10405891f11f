package claudeids_test

import (
	"fmt"

	"github.com/tollgate-dev/tollgate/provider/internal/claudeids"
)

func ExampleBedrock_Map() {
	m := claudeids.NewBedrock(claudeids.Catalog("bedrock"), "eu-central-1")
	for _, model := range []string{"claude-sonnet-4-5", "claude-opus-4-1-20250805", "us.anthropic.claude-opus-4-8-v1", "claude-opus-9"} {
		fmt.Println(m.Map(model))
	}
	// Output:
	// eu.anthropic.claude-sonnet-4-5-20250929-v1:0 true
	// eu.anthropic.claude-opus-4-1-20250805-v1:0 true
	//  false
	//  false
}

func ExampleVertex_Map() {
	m := claudeids.NewVertex(claudeids.Catalog("vertex_ai"))
	for _, model := range []string{"claude-sonnet-4-5", "claude-haiku-4-5-20251001", "claude-opus-4-6", "claude-opus-9"} {
		fmt.Println(m.Map(model))
	}
	// Output:
	// claude-sonnet-4-5@20250929 true
	// claude-haiku-4-5@20251001 true
	// claude-opus-4-6 true
	//  false
}

package e2e

import (
	"context"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/records"
)

// openai-go closes a stream as soon as it reads data: [DONE], which may be
// before the end of the body reaches the gateway: the fake's "-linger"
// keeps the body open after data: [DONE] so that it always is. The client
// had the whole answer, so the record says ok, with the usage of the
// stream's usage chunk (before the fix: "cancelled", the flake of
// TestOpenAIClientNative and the tool-loop tests under load).
func TestStreamClosedAtItsOwnEndIsComplete(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	c := s.openAIClient("")
	st := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gpt-4o-linger", false))
	var text string
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 {
			text += ch.Choices[0].Delta.Content
		}
	}
	if err := st.Err(); err != nil || text != "Hello from the fake OpenAI." {
		t.Fatalf("stream: %q %v", text, err)
	}
	r := s.recs.wait(t, 1)[0]
	if r.Outcome != records.OutcomeOK || r.Status != 200 || r.Usage.OutputTokens != envoytest.FakeOpenAICompletionTokens || r.UsageEstimated {
		t.Errorf("record outcome %q status %d usage %+v estimated %v; want ok with the stream's usage", r.Outcome, r.Status, r.Usage, r.UsageEstimated)
	}
}

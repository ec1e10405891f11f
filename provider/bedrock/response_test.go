package bedrock

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func readTestdata(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frame encodes one event stream message with the SDK's encoder.
func frame(t testing.TB, headers map[string]string, payload []byte) []byte {
	t.Helper()
	var m eventstream.Message
	for k, v := range headers {
		m.Headers.Set(k, eventstream.StringValue(v))
	}
	m.Payload = payload
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func chunkFrame(t testing.TB, event string) []byte {
	return frame(t, map[string]string{":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"},
		[]byte(`{"bytes":"`+base64.StdEncoding.EncodeToString([]byte(event))+`","p":"abcdefgh"}`))
}

type recorded struct {
	set      map[string]string
	remove   []string
	warnings []string
}

func translateResponse(path string, status int, kv ...string) (func([]byte, bool) []byte, *recorded) {
	r := &recorded{set: map[string]string{}}
	body := fromAnthropic{}.TranslateResponse(path, status, header(kv...),
		func(n, v string) { r.set[n] = v }, func(n string) { r.remove = append(r.remove, n) },
		func(kind, msg string) { r.warnings = append(r.warnings, kind+": "+msg) })
	return body, r
}

// TestEventStreamToSSE splits a stream of frames at every byte boundary and
// in one piece: the SSE is the same, event by event.
func TestEventStreamToSSE(t *testing.T) {
	events := []string{
		`{"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi\n"}}`,
		`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}`,
	}
	var stream, want []byte
	for _, ev := range events {
		stream = append(stream, chunkFrame(t, ev)...)
		typ := ev[len(`{"type":"`) : strings.Index(ev[len(`{"type":"`):], `"`)+len(`{"type":"`)]
		want = append(want, "event: "+typ+"\ndata: "+ev+"\n\n"...)
	}
	for split := 0; split <= len(stream); split++ {
		body, r := translateResponse("/v1/messages", 200, "content-type", "application/vnd.amazon.eventstream")
		if body == nil {
			t.Fatal("no translation for an event stream")
		}
		got := append(body(stream[:split], false), body(stream[split:], true)...)
		if !bytes.Equal(got, want) {
			t.Fatalf("split at %d:\n%s\nwant\n%s", split, got, want)
		}
		if r.set["content-type"] != "text/event-stream" || len(r.remove) != 1 || r.remove[0] != "content-length" {
			t.Fatalf("headers %+v", r)
		}
	}
}

func TestEventStreamException(t *testing.T) {
	body, _ := translateResponse("/v1/messages", 200, "content-type", "application/vnd.amazon.eventstream")
	stream := append(chunkFrame(t, `{"type":"message_start"}`), frame(t, map[string]string{
		":message-type": "exception", ":exception-type": "throttlingException", ":content-type": "application/json"},
		[]byte(`{"message":"Too many tokens"}`))...)
	stream = append(stream, chunkFrame(t, `{"type":"message_stop"}`)...)
	got := string(body(stream, true))
	want := "event: message_start\ndata: {\"type\":\"message_start\"}\n\n" +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Too many tokens\"}}\n\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestEventStreamBroken(t *testing.T) {
	f := chunkFrame(t, `{"type":"message_start"}`)
	for name, stream := range map[string][]byte{
		"cut":     f[:len(f)-3],
		"bad crc": append(append([]byte(nil), f[:len(f)-1]...), f[len(f)-1]^1),
	} {
		body, _ := translateResponse("/v1/messages", 200, "content-type", "application/vnd.amazon.eventstream")
		got := string(body(stream, true))
		if !strings.HasPrefix(got, "event: error\n") || !strings.Contains(got, `"api_error"`) {
			t.Errorf("%s: %q", name, got)
		}
	}
}

// TestErrors maps Bedrock's errors to Anthropic's statuses and types.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		status  int
		errType string
		want    int
		typ     string
	}{
		{429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", 429, "rate_limit_error"},
		{503, "ServiceUnavailableException", 529, "overloaded_error"},
		{429, "ModelNotReadyException", 529, "overloaded_error"},
		{400, "ValidationException", 400, "invalid_request_error"},
		{403, "AccessDeniedException", 403, "permission_error"},
		{403, "InvalidSignatureException", 403, "permission_error"},
		{404, "ResourceNotFoundException", 404, "not_found_error"},
		{408, "ModelTimeoutException", 504, "timeout_error"},
		{500, "InternalServerException", 500, "api_error"},
		{503, "", 529, "overloaded_error"},
		{418, "", 400, "invalid_request_error"},
		{502, "", 500, "api_error"},
	} {
		body, r := translateResponse("/v1/messages", c.status, "x-amzn-errortype", c.errType, "content-type", "application/json")
		got := string(body([]byte(`{"message":"it failed"}`), true))
		want := `{"type":"error","error":{"type":"` + c.typ + `","message":"it failed"}}`
		if r.set[":status"] != strconv.Itoa(c.want) || got != want {
			t.Errorf("%d %s: status %s body %s", c.status, c.errType, r.set[":status"], got)
		}
	}
}

func TestCountTokensAnswer(t *testing.T) {
	body, _ := translateResponse("/v1/messages/count_tokens", 200, "content-type", "application/json")
	if got := string(body([]byte(`{"inputTokens":42}`), true)); got != `{"input_tokens":42}` {
		t.Errorf("%s", got)
	}
}

func TestMessageAnswerPasses(t *testing.T) {
	if body, _ := translateResponse("/v1/messages", 200, "content-type", "application/json"); body != nil {
		t.Error("an InvokeModel answer is translated")
	}
}

// TestInvocationMetricsCrossCheck compares Bedrock's invocation metrics
// with the events' usage: equal, nothing is reported; different, a
// usage_mismatch naming each difference. The events pass unchanged either way.
func TestInvocationMetricsCrossCheck(t *testing.T) {
	start := `{"type":"message_start","message":{"usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":30500,"output_tokens":1}}}`
	delta := `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}`
	for _, c := range []struct {
		metrics string
		want    []string
	}{
		{`{"inputTokenCount":12,"outputTokenCount":15,"cacheReadInputTokenCount":30500,"cacheWriteInputTokenCount":2048,"invocationLatency":9}`, nil},
		{`{"inputTokenCount":12,"outputTokenCount":15}`, nil},
		{`{"inputTokenCount":14,"outputTokenCount":15,"cacheWriteInputTokenCount":0}`,
			[]string{"usage_mismatch: amazon-bedrock-invocationMetrics disagree with the events' usage, which is billed: input 14 (events: 12), cache write 0 (events: 2048)"}},
	} {
		stop := `{"type":"message_stop","amazon-bedrock-invocationMetrics":` + c.metrics + `}`
		body, r := translateResponse("/v1/messages", 200, "content-type", "application/vnd.amazon.eventstream")
		var stream []byte
		for _, ev := range []string{start, delta, stop} {
			stream = append(stream, chunkFrame(t, ev)...)
		}
		out := body(stream, true)
		if !bytes.Contains(out, []byte(stop)) {
			t.Errorf("message_stop changed: %s", out)
		}
		if fmt.Sprint(r.warnings) != fmt.Sprint(c.want) {
			t.Errorf("%s: warnings %q; want %q", c.metrics, r.warnings, c.want)
		}
	}
}

// An Anthropic error event inside a chunk ends the stream like an exception.
func TestEventStreamErrorEventEnds(t *testing.T) {
	body, _ := translateResponse("/v1/messages", 200, "content-type", "application/vnd.amazon.eventstream")
	errEv := `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	stream := append(chunkFrame(t, errEv), chunkFrame(t, `{"type":"message_stop"}`)...)
	if got, want := string(body(stream, true)), "event: error\ndata: "+errEv+"\n\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

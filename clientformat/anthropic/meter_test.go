package anthropic

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCutStreamEventIsTheMarshaledError: the injected event is byte for byte
// what the gateway sent before the event became a constant.
func TestCutStreamEventIsTheMarshaledError(t *testing.T) {
	b, err := json.Marshal(map[string]any{"type": "error", "error": map[string]string{
		"type": "api_error", "message": "the provider's stream ended before message_stop; the response is incomplete",
	}})
	if err != nil || string(b) != cutStreamEvent {
		t.Errorf("marshaled %s (%v)\nconstant  %s", b, err, cutStreamEvent)
	}
}

func TestNewStreamMeter(t *testing.T) {
	for ct, stream := range map[string]bool{
		"text/event-stream": true, " Text/Event-Stream; charset=utf-8": true,
		"application/json": false, "": false, "text/plain": false,
	} {
		if got := (Format{}).NewStreamMeter(ct) != nil; got != stream {
			t.Errorf("%q: stream meter %v; want %v", ct, got, stream)
		}
	}
}

const start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"

func TestStreamMeterCut(t *testing.T) {
	event := "event: error\ndata: " + cutStreamEvent + "\n\n"
	for _, tt := range []struct{ name, sent, want string }{
		{"nothing sent", "", event},
		{"cut on an event boundary", start, event},
		{"cut mid-event", start + "event: content_block_delta\ndata: {\"ty", "\n\n" + event},
		{"crlf boundary", strings.ReplaceAll(start, "\n", "\r\n"), event},
		{"one newline", strings.TrimSuffix(start, "\n"), "\n\n" + event},
		{"complete", start + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", ""},
		{"provider error", start + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := Format{}.NewStreamMeter("text/event-stream")
			for i := range len(tt.sent) { // byte by byte: the tail spans writes
				m.Write([]byte{tt.sent[i]})
			}
			if got := string(m.Cut()); got != tt.want {
				t.Errorf("Cut() = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestStreamMeterUsage(t *testing.T) {
	m := Format{}.NewStreamMeter("text/event-stream")
	m.Write([]byte(start + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + strings.Repeat("x", 400) + "\"}}\n\n"))
	u := m.Usage()
	if u.Complete || !u.Metered || u.Model != "m" || u.Usage.InputTokens != 7 || !u.Estimated || u.Usage.OutputTokens != EstimateOutputTokens(400) {
		t.Errorf("cut stream usage %+v", u)
	}
	m.Write([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n"))
	if u := m.Usage(); u.ErrorType != "overloaded_error" {
		t.Errorf("error type %q", u.ErrorType)
	}
}

func TestParseResponse(t *testing.T) {
	r := Format{}.ParseResponse(200, []byte(`{"model":"claude-x","usage":{"input_tokens":10,"output_tokens":5}}`))
	if !r.Complete || !r.Metered || r.Model != "claude-x" || r.Usage.InputTokens != 10 || r.Usage.OutputTokens != 5 {
		t.Errorf("message %+v", r)
	}
	if r := (Format{}).ParseResponse(529, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`)); r.ErrorType != "overloaded_error" || r.Metered {
		t.Errorf("error %+v", r)
	}
	if r := (Format{}).ParseResponse(200, []byte(`not json`)); r.Metered {
		t.Errorf("malformed %+v", r)
	}
}

package extproc

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/clientformat/openai"
)

func TestMeterInjectsAnErrorEventIntoACutStream(t *testing.T) {
	start := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"
	for _, tt := range []struct {
		name, sent, last string
		wantPrefix       string
	}{
		{"cut on an event boundary", start, "", ""},
		{"cut mid-event", start + "event: content_block_delta\ndata: {\"ty", "", "\n\n"},
		{"last chunk carries data", start, "event: ping\ndata: {}\n\n", ""},
		{"crlf boundary", strings.ReplaceAll(start, "\n", "\r\n"), "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var m meter
			m.start(anthropic.Format{}, "text/event-stream; charset=utf-8")
			if repl := m.chunk([]byte(tt.sent), false, time.Now()); repl != nil {
				t.Fatal("replaced a chunk before the end")
			}
			repl := string(m.chunk([]byte(tt.last), true, time.Now()))
			want := tt.last + tt.wantPrefix + "event: error\ndata: "
			if !strings.HasPrefix(repl, want) || !strings.HasSuffix(repl, "}\n\n") || !strings.Contains(repl, `"type":"api_error"`) {
				t.Errorf("replacement = %q", repl)
			}
			r := m.result(200)
			if r.Complete || !r.Metered || r.Usage.InputTokens != 7 {
				t.Errorf("result = %+v", r)
			}
		})
	}
}

func TestMeterLeavesCompleteAndErroredStreamsAlone(t *testing.T) {
	for _, body := range []string{
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
	} {
		var m meter
		m.start(anthropic.Format{}, "text/event-stream")
		if repl := m.chunk([]byte(body), true, time.Now()); repl != nil {
			t.Errorf("replaced %q", body)
		}
	}
}

func TestMeterJSON(t *testing.T) {
	var m meter
	m.start(anthropic.Format{}, "application/json")
	body := `{"model":"claude-x","usage":{"input_tokens":10,"output_tokens":5}}`
	m.chunk([]byte(body[:20]), false, time.Now())
	m.chunk([]byte(body[20:]), true, time.Now())
	r := m.result(200)
	if !r.Complete || !r.Metered || r.Model != "claude-x" || r.Usage.InputTokens != 10 || r.Usage.OutputTokens != 5 {
		t.Errorf("result = %+v", r)
	}

	var e meter
	e.start(anthropic.Format{}, "application/json")
	e.chunk([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`), true, time.Now())
	if r := e.result(529); r.ErrorType != "overloaded_error" || r.Metered {
		t.Errorf("error result = %+v", r)
	}
}

// A stream whose own end the format saw is complete even when the client
// closed it before the body's end_of_stream reached the role (openai-go
// does at data: [DONE]); one cut before its own end is not.
func TestMeterStreamEndWithoutEndOfStream(t *testing.T) {
	var m meter
	m.start(openai.Format{}, "text/event-stream")
	m.chunk([]byte("data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"), false, time.Now())
	if r := m.result(200); r.Complete {
		t.Fatalf("complete before data: [DONE]: %+v", r)
	}
	m.chunk([]byte("data: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"), false, time.Now())
	if r := m.result(200); !r.Complete || !r.Metered || r.Usage.OutputTokens != 1 {
		t.Errorf("after data: [DONE], no end_of_stream: %+v", r)
	}
}

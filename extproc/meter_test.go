package extproc

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
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

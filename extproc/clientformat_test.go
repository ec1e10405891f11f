package extproc

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
	openaifmt "github.com/tollgate-dev/tollgate/clientformat/openai"
)

// The Anthropic format is an extproc.ClientFormat; its package does not
// import extproc, so the check is here.
var _ ClientFormat = anthropic.Format{}

var _ ClientFormat = openaifmt.Format{}

// testFormats is what the tests' servers serve: the Anthropic format, as the
// gateway registers it.
func testFormats() []ClientFormat { return []ClientFormat{anthropic.Format{}} }

// chatFormat stands in for a second format (OpenAI Chat's shape): it owns
// POST /v1/chat/completions and renders errors as {"error":{...}}.
type chatFormat struct{ anthropic.Format }

func (chatFormat) Name() string { return "chat" }

func (chatFormat) Classify(method, path string) (clientformat.Endpoint, bool, error) {
	if method == "POST" && stripQuery(path) == "/v1/chat/completions" {
		return clientformat.Endpoint{Name: "chat_completions", Metered: true, Body: true}, true, nil
	}
	return clientformat.Endpoint{}, false, nil
}

func (chatFormat) Endpoints() []string { return []string{"POST /v1/chat/completions"} }

func (chatFormat) RenderError(e clientformat.Error) clientformat.ErrorReply {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"message": e.Message, "type": string(e.Code)}})
	return clientformat.ErrorReply{Status: e.Status, ContentType: "application/json; charset=utf-8", Body: b,
		Headers: []clientformat.Header{{Key: "x-chat-error", Value: string(e.Code)}}}
}

// TestNoFormatIsRefused: a server needs a client format to serve.
func TestNoFormatIsRefused(t *testing.T) {
	p := staticPolicies{}
	for _, fs := range [][]ClientFormat{nil, {}, {nil}} {
		if _, err := NewServer(Options{Policies: p, ClientFormats: fs, Translation: translations}); err == nil {
			t.Errorf("NewServer with formats %v: no error", fs)
		}
	}
}

// TestClassifyAsksEachFormatInTurn: the first format that owns a request's
// method and path is the request's; a request none owns is a 404 in the
// first format's shape, naming every format's endpoints.
func TestClassifyAsksEachFormatInTurn(t *testing.T) {
	fs := clientFormats{anthropic.Format{}, chatFormat{}}
	for _, tt := range []struct {
		method, path, format, endpoint string
	}{
		{"POST", "/v1/messages?beta=true", "anthropic", "messages"},
		{"POST", "/v1/chat/completions", "chat", "chat_completions"},
		{"HEAD", "/", "anthropic", "probe"},
	} {
		f, ep, err := fs.classify(tt.method, tt.path, nil)
		if err != nil || f.Name() != tt.format || ep.Name != tt.endpoint {
			t.Errorf("%s %s: %s %+v %v; want %s %s", tt.method, tt.path, f.Name(), ep, err, tt.format, tt.endpoint)
		}
	}
	f, ep, err := fs.classify("POST", "/v1/complete?x=1", nil)
	want := "POST /v1/complete is not an endpoint of this gateway; it serves POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models and POST /v1/chat/completions"
	if err == nil || err.Message != want || err.Code != clientformat.CodeNotFound || f.Name() != "anthropic" || ep.Name != unknownEndpoint {
		t.Errorf("unknown path: %s %+v %v", f.Name(), ep, err)
	}
}

// TestClassifyByHeaders: a format that claims requests by their headers
// (the OpenAI format's GET /v1/models) is asked before every format's
// Classify, though listed after the Anthropic format, which owns the same
// method and path; without its headers the request stays the Anthropic
// format's, and a malformed id it claims is a 404 in its own shape.
func TestClassifyByHeaders(t *testing.T) {
	fs := clientFormats{anthropic.Format{}, openaifmt.Format{}}
	bearer := func(name string) string { return map[string]string{"authorization": "Bearer tg-alice"}[name] }
	anth := func(name string) string {
		return map[string]string{"authorization": "Bearer tg-alice", "anthropic-version": "2023-06-01"}[name]
	}
	for _, tt := range []struct {
		path   string
		header func(string) string
		format string
	}{
		{"/v1/models", bearer, "openai"},
		{"/v1/models/claude-sonnet-4-5", bearer, "openai"},
		{"/v1/models", anth, "anthropic"},
		{"/v1/models", nil, "anthropic"},
	} {
		f, ep, err := fs.classify("GET", tt.path, tt.header)
		if err != nil || f.Name() != tt.format || ep.Name != "models" {
			t.Errorf("GET %s: %s %+v %v; want %s", tt.path, f.Name(), ep, err, tt.format)
		}
	}
	if f, _, err := fs.classify("GET", "/v1/models/..%2ffiles", bearer); err == nil || err.Code != clientformat.CodeNotFound || f.Name() != "openai" {
		t.Errorf("malformed id: %s %v", f.Name(), err)
	}
}

// TestNotFoundMessageUnchanged: with the Anthropic format alone, the 404 of
// an unknown path says what it said before client formats.
func TestNotFoundMessageUnchanged(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, rolePolicy)
	ir := roundTrip(t, c, reqHeaders(false, ":method", "POST", ":path", "/v1/complete?x=1", "x-api-key", "tg-alice")).GetImmediateResponse()
	st, typ, msg := anthropicError(t, ir)
	want := "POST /v1/complete is not an endpoint of this gateway; it serves POST /v1/messages, POST /v1/messages/count_tokens and GET /v1/models"
	if st != 404 || typ != "not_found_error" || msg != want {
		t.Errorf("got %d %s %q; want 404 not_found_error %q", st, typ, msg, want)
	}
	if ir.GetDetails() != "tollgate_not_found_error" {
		t.Errorf("details %q", ir.GetDetails())
	}
}

// TestImmediateRendersInTheRequestsFormat: a refusal is rendered by the
// request's format, body, content type and extra headers; extproc adds
// content-length and x-should-retry, and the code names the details.
func TestImmediateRendersInTheRequestsFormat(t *testing.T) {
	ir := immediate(chatFormat{}, invalidRequest("model: field required"), "r1").GetImmediateResponse()
	h := sets(t, ir.GetHeaders())
	body := string(ir.GetBody())
	if ir.GetStatus().GetCode() != 400 || !strings.Contains(body, `"error":{"message":"model: field required","type":"invalid_request_error"}`) {
		t.Errorf("status %d body %s", ir.GetStatus().GetCode(), body)
	}
	if h["content-type"] != "application/json; charset=utf-8" || h["x-chat-error"] != "invalid_request_error" ||
		h["content-length"] != strconv.Itoa(len(body)) || h[hdrShouldRetry] != "false" || ir.GetDetails() != "tollgate_invalid_request_error" {
		t.Errorf("headers %v details %q (body %d bytes)", h, ir.GetDetails(), len(body))
	}
}

// TestAdapterUsesTheDecisionsFormat: the adapter translates from the client
// format the decision names and renders its refusals in it; a decision that
// names none (from a replica that did not write it) or one this replica does
// not serve means the default format.
func TestAdapterUsesTheDecisionsFormat(t *testing.T) {
	s := newTestServer(t)
	s.formats = clientFormats{anthropic.Format{}, chatFormat{}}
	for _, tt := range []struct {
		format, wantBody string
		wantStatus       int
	}{
		// No translation from "chat" to an anthropic provider: refused, in chat's shape.
		{"chat", `{"error":{"message":"provider \"demo\" of type \"anthropic\" cannot serve requests in the chat format","type":"permission_error"}}`, 403},
		{"", "", 0},
		{"unknown", "", 0},
		{"anthropic", "", 0},
	} {
		c := stream(t, s, roleAdapter)
		req := reqHeaders(false, ":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1")
		req.Attributes = adapterAttrs("demo", 1)
		withDecision(req, Decision{Route: "demo", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1", ClientFormat: tt.format})
		resp := roundTrip(t, c, req)
		ir := resp.GetImmediateResponse()
		if tt.wantStatus == 0 {
			if ir != nil {
				t.Errorf("format %q: refused with %s", tt.format, ir.GetBody())
			}
			continue
		}
		if ir == nil || int(ir.GetStatus().GetCode()) != tt.wantStatus || string(ir.GetBody()) != tt.wantBody {
			t.Errorf("format %q: got %v; want %d %s", tt.format, resp, tt.wantStatus, tt.wantBody)
		}
	}
}

// An OpenAI request asking for n choices is a choicer, so reserve holds the
// output of every choice (policy.BudgetInput.Choices).
func TestOpenAIRequestReportsChoices(t *testing.T) {
	f := openaifmt.Format{}
	ep, ok, err := f.Classify("POST", "/v1/chat/completions")
	if !ok || err != nil {
		t.Fatalf("classify: %v %v", ok, err)
	}
	r, err := f.ReadRequest(ep, "/v1/chat/completions", []byte(`{"model":"gpt-4o","n":4,"messages":[{"role":"user","content":"a"}]}`), false)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.(choicer)
	if !ok || c.Choices() != 4 {
		t.Fatalf("request %T: choicer %v", r, ok)
	}
}

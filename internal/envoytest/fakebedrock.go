package envoytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// FakeBedrockConfig configures a FakeBedrock.
type FakeBedrockConfig struct {
	// Region is the region signatures must be scoped to (required).
	Region string
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials
	// requests must be signed with (SigV4, service "bedrock"). The session
	// token, when set, must arrive as x-amz-security-token.
	AccessKeyID, SecretAccessKey, SessionToken string
	// APIKey, when set, is a Bedrock API key accepted as
	// Authorization: Bearer instead of a signature.
	APIKey string
	// TestdataDir is FakeAnthropicConfig's: the same fixtures answer.
	TestdataDir string
	// Pause, when set, is called by the streams of model ids ending in
	// "-idle" after their first content_block_delta frame, with the
	// request's context; the stream goes on when it returns: a provider
	// silent mid-stream, as Bedrock is while a model thinks.
	Pause func(ctx context.Context)
}

// FakeBedrock is a fake AWS Bedrock runtime for Anthropic models. It
// verifies each request's SigV4 signature by signing it again with the SDK's
// signer (the headers the Authorization header lists, the path as received,
// the body's SHA-256), or the Bearer API key; a bad signature is a 403
// InvalidSignatureException in Bedrock's error shape ({"message"} and
// x-amzn-errortype). It checks the body Bedrock takes: anthropic_version
// bedrock-2023-05-31, max_tokens, no model and no stream, and none of what
// Bedrock rejects of what Anthropic clients send (checkBedrockFeatures: an
// unknown beta, a role "system" message, a beta body field without its
// beta); a 400 ValidationException otherwise, recorded as a violation.
//
// POST /model/{id}/invoke answers messages.json with the model id;
// /invoke-with-response-stream answers messages_stream.sse as an
// application/vnd.amazon.eventstream of chunk frames encoded with the SDK
// ({"bytes":"<base64 event>","p":"..."}, pings left out as Bedrock sends
// none), each frame written in two halves so that frames split across reads,
// message_stop carrying amazon-bedrock-invocationMetrics that agree with the
// events' usage (one input token more for models ending in "-miscounted");
// /count-tokens answers {"inputTokens":N}. Model ids ending in "-throttled"
// get a 429 ThrottlingException, "-unavailable" a 503
// ServiceUnavailableException, streams of "-exception-first" a
// throttlingException frame as their first frame after the 200, streams
// of "-exception" an exception
// frame (modelStreamErrorException) after the first content delta, and
// streams of "-idle" go silent after it until FakeBedrockConfig.Pause returns.
type FakeBedrock struct {
	fakeServer
	cfg  FakeBedrockConfig
	data *FakeAnthropic // for its fixtures
}

// NewFakeBedrock returns a fake Bedrock; call Start.
func NewFakeBedrock(cfg FakeBedrockConfig) *FakeBedrock {
	return &FakeBedrock{cfg: cfg, data: NewFakeAnthropic(FakeAnthropicConfig{TestdataDir: cfg.TestdataDir})}
}

// Start serves on addr ("127.0.0.1:0" typically) until Close.
func (f *FakeBedrock) Start(addr string) error {
	return f.listen("fake bedrock", addr, http.HandlerFunc(f.handle))
}

// violation records msg as a violation (a bad signature is not one: tests
// provoke it on purpose) and answers it.
func (f *FakeBedrock) violation(w http.ResponseWriter, msg string) {
	f.violate(msg)
	bedrockError(w, http.StatusBadRequest, "ValidationException", "fake bedrock: "+msg)
}

// bedrockError answers in Bedrock's error shape.
func bedrockError(w http.ResponseWriter, status int, errType, msg string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("x-amzn-errortype", errType+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (f *FakeBedrock) handle(w http.ResponseWriter, r *http.Request) {
	if !f.active.enter() {
		http.Error(w, "fake bedrock: shutting down", http.StatusServiceUnavailable)
		return
	}
	defer f.active.exit()
	body, err := readAll(r)
	f.record(r, body)
	w.Header().Set("x-amzn-requestid", "fake-bedrock-request")
	if err != nil {
		bedrockError(w, http.StatusBadRequest, "ValidationException", "reading body: "+err.Error())
		return
	}
	for k := range r.Header {
		if lk := strings.ToLower(k); lk == "x-api-key" || (lk != "authorization" && alwaysForbidden(lk)) {
			f.violation(w, "forbidden header "+lk+" reached the provider")
			return
		}
	}
	if msg := f.authenticate(r, body); msg != "" {
		bedrockError(w, http.StatusForbidden, "InvalidSignatureException", msg)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/model/")
	seg, op, ok2 := strings.Cut(rest, "/")
	model, err := url.PathUnescape(seg)
	if !ok || !ok2 || err != nil || r.Method != http.MethodPost {
		bedrockError(w, http.StatusNotFound, "ResourceNotFoundException", "fake bedrock: no such operation "+r.Method+" "+r.URL.EscapedPath())
		return
	}
	if op == "count-tokens" {
		f.countTokens(w, body)
		return
	}
	if op != "invoke" && op != "invoke-with-response-stream" {
		bedrockError(w, http.StatusNotFound, "ResourceNotFoundException", "fake bedrock: no such operation "+op)
		return
	}
	if msg := checkInvokeBody(body); msg != "" {
		f.violation(w, msg)
		return
	}
	switch {
	case strings.HasSuffix(model, "-throttled"):
		bedrockError(w, http.StatusTooManyRequests, "ThrottlingException", "Too many requests, please wait before trying again.")
		return
	case strings.HasSuffix(model, "-unavailable"):
		bedrockError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "Bedrock is unable to process your request.")
		return
	}
	if op == "invoke" {
		data, err := f.data.testdata("messages.json")
		if err != nil {
			bedrockError(w, http.StatusInternalServerError, "InternalServerException", err.Error())
			return
		}
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write(withModel(data, model))
		return
	}
	f.stream(r.Context(), w, model)
}

// checkInvokeBody returns what is wrong with an InvokeModel body, or "".
func checkInvokeBody(body []byte) string {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(body, &v); err != nil {
		return "body is not a JSON object: " + err.Error()
	}
	if string(v["anthropic_version"]) != `"bedrock-2023-05-31"` {
		return fmt.Sprintf("anthropic_version is %s, want \"bedrock-2023-05-31\"", v["anthropic_version"])
	}
	for _, k := range []string{"model", "stream"} {
		if _, ok := v[k]; ok {
			return "the body has " + k + ", which Bedrock rejects"
		}
	}
	if _, ok := v["max_tokens"]; !ok {
		return "the body has no max_tokens, which an Anthropic model requires"
	}
	return checkBedrockFeatures(v)
}

// bedrockBetas are the anthropic_beta values the fake accepts: the ones
// Bedrock's InvokeModel takes per the sources of package cloudcompat
// (provider/internal/cloudcompat), written out here on their own so that a
// table that forgot one fails the tests. Any other value is rejected, as
// Bedrock rejects the whole request on a beta it does not know.
var bedrockBetas = []string{
	"context-1m-2025-08-07", "interleaved-thinking-2025-05-14", "context-management-2025-06-27", "compact-2026-01-12",
	"effort-2025-11-24", "tool-search-tool-2025-10-19", "fine-grained-tool-streaming-2025-05-14",
	"computer-use-2025-01-24", "computer-use-2025-11-24",
}

// checkBedrockFeatures returns what Bedrock rejects in an InvokeModel body
// (decoded into v) for the models the fake serves, or "": an unknown beta;
// a role other than user and assistant (mid-conversation system messages
// are for Claude Opus 4.8 only); context_management, output_config.effort or
// a tool's defer_loading without its beta; a tool's eager_input_streaming.
func checkBedrockFeatures(v map[string]json.RawMessage) string {
	var betas []string
	if raw, ok := v["anthropic_beta"]; ok {
		if err := json.Unmarshal(raw, &betas); err != nil {
			return "anthropic_beta is not a list of strings"
		}
	}
	for _, b := range betas {
		if !slices.Contains(bedrockBetas, b) {
			return "invalid beta flag " + b
		}
	}
	var msgs []struct {
		Role string `json:"role"`
	}
	if err := json.Unmarshal(v["messages"], &msgs); err != nil {
		return "messages is not a list of messages"
	}
	for i, m := range msgs {
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
	}
	if _, ok := v["context_management"]; ok && !slices.Contains(betas, "context-management-2025-06-27") && !slices.Contains(betas, "compact-2026-01-12") {
		return "context_management: Extra inputs are not permitted"
	}
	var oc struct {
		Effort json.RawMessage `json:"effort"`
	}
	if raw, ok := v["output_config"]; ok && json.Unmarshal(raw, &oc) == nil && oc.Effort != nil && !slices.Contains(betas, "effort-2025-11-24") {
		return "output_config.effort: Extra inputs are not permitted"
	}
	var tools []map[string]json.RawMessage
	if raw, ok := v["tools"]; ok {
		if err := json.Unmarshal(raw, &tools); err != nil {
			return "tools is not a list of objects"
		}
	}
	for i, tool := range tools {
		if _, ok := tool["eager_input_streaming"]; ok {
			return fmt.Sprintf("tools.%d.custom.eager_input_streaming: Extra inputs are not permitted", i)
		}
		if _, ok := tool["defer_loading"]; ok && !slices.Contains(betas, "tool-search-tool-2025-10-19") {
			return fmt.Sprintf("tools.%d.custom.defer_loading: Extra inputs are not permitted", i)
		}
	}
	return ""
}

func (f *FakeBedrock) countTokens(w http.ResponseWriter, body []byte) {
	var v struct {
		Input struct {
			InvokeModel struct {
				Body []byte `json:"body"` // base64
			} `json:"invokeModel"`
		} `json:"input"`
	}
	if err := json.Unmarshal(body, &v); err != nil || len(v.Input.InvokeModel.Body) == 0 {
		f.violation(w, "count-tokens body is not {\"input\":{\"invokeModel\":{\"body\":...}}}")
		return
	}
	if msg := checkInvokeBody(v.Input.InvokeModel.Body); msg != "" {
		f.violation(w, "count-tokens: "+msg)
		return
	}
	w.Header().Set("content-type", "application/json")
	fmt.Fprintf(w, `{"inputTokens":%d}`, max(1, len(v.Input.InvokeModel.Body)/4))
}

// authenticate returns why r is not authenticated, or "".
func (f *FakeBedrock) authenticate(r *http.Request, body []byte) string {
	auth := r.Header.Get("authorization")
	if key, ok := strings.CutPrefix(auth, "Bearer "); ok {
		if f.cfg.APIKey == "" || key != f.cfg.APIKey {
			return "The security token included in the request is invalid."
		}
		return ""
	}
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "Missing Authentication Token"
	}
	var signed []string
	for _, part := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "SignedHeaders="); ok {
			signed = strings.Split(v, ";")
		}
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("x-amz-date"))
	if err != nil {
		return "x-amz-date is missing or malformed"
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if got := r.Header.Get("x-amz-content-sha256"); got != "" && got != hash {
		return "x-amz-content-sha256 is not the body's hash"
	}
	if f.cfg.SessionToken != "" && r.Header.Get("x-amz-security-token") != f.cfg.SessionToken {
		return "The security token included in the request is invalid."
	}
	// Sign again what the signature says it covers.
	u := *r.URL
	u.Scheme, u.Host = "https", r.Host
	again := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}
	for _, h := range signed {
		if h != "host" && h != "x-amz-date" && h != "x-amz-security-token" {
			again.Header.Set(h, r.Header.Get(h))
		}
	}
	creds := aws.Credentials{AccessKeyID: f.cfg.AccessKeyID, SecretAccessKey: f.cfg.SecretAccessKey, SessionToken: f.cfg.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hash, "bedrock", f.cfg.Region, at); err != nil {
		return "signing: " + err.Error()
	}
	if again.Header.Get("authorization") != auth {
		return "The request signature we calculated does not match the signature you provided."
	}
	return ""
}

// stream answers the SSE fixture as an event stream.
func (f *FakeBedrock) stream(ctx context.Context, w http.ResponseWriter, model string) {
	data, err := f.data.testdata("messages_stream.sse")
	if err != nil {
		bedrockError(w, http.StatusInternalServerError, "InternalServerException", err.Error())
		return
	}
	w.Header().Set("content-type", "application/vnd.amazon.eventstream")
	w.Header().Set("x-amzn-bedrock-content-type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		_, err := w.Write(b)
		return err == nil && rc.Flush() == nil
	}
	enc := eventstream.NewEncoder()
	deltas := 0
	var usage struct{ in, out, cacheRead, cacheWrite int64 }
	type eventUsage struct {
		InputTokens              int64 `json:"input_tokens"`
		OutputTokens             int64 `json:"output_tokens"`
		CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
		CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	}
	take := func(u eventUsage) {
		for _, f := range []struct {
			dst *int64
			v   int64
		}{{&usage.in, u.InputTokens}, {&usage.out, u.OutputTokens},
			{&usage.cacheRead, u.CacheReadInputTokens}, {&usage.cacheWrite, u.CacheCreationInputTokens}} {
			if f.v != 0 {
				*f.dst = f.v
			}
		}
	}
	for _, ev := range splitEvents(withModel(data, model)) {
		_, rest, _ := bytes.Cut(ev, []byte("\ndata: "))
		payload := bytes.TrimSpace(rest)
		var typed struct {
			Type    string `json:"type"`
			Message struct {
				Usage eventUsage `json:"usage"`
			} `json:"message"`
			Usage eventUsage `json:"usage"`
		}
		_ = json.Unmarshal(payload, &typed)
		switch typed.Type {
		case "ping":
			continue // Bedrock sends no pings
		case "message_start":
			take(typed.Message.Usage)
		case "message_delta":
			take(typed.Usage)
		case "message_stop":
			in := usage.in
			if strings.HasSuffix(model, "-miscounted") {
				in++
			}
			payload = fmt.Appendf(nil, `{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":%d,"outputTokenCount":%d,`+
				`"invocationLatency":1234,"firstByteLatency":321,"cacheReadInputTokenCount":%d,"cacheWriteInputTokenCount":%d}}`,
				in, usage.out, usage.cacheRead, usage.cacheWrite)
		}
		var msg eventstream.Message
		msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		msg.Headers.Set(":event-type", eventstream.StringValue("chunk"))
		msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		msg.Payload, _ = json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(payload), "p": "abcdefghijklmnopqrstuvwxyz"[:1+len(payload)%26]})
		if strings.HasSuffix(model, "-exception") && deltas == 1 {
			msg = eventstream.Message{Payload: []byte(`{"message":"The model stream failed (fake)."}`)}
			msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
			msg.Headers.Set(":exception-type", eventstream.StringValue("modelStreamErrorException"))
			msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		}
		if strings.HasSuffix(model, "-exception-first") {
			msg = eventstream.Message{Payload: []byte(`{"message":"Too many requests, please wait before trying again (fake)."}`)}
			msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
			msg.Headers.Set(":exception-type", eventstream.StringValue("throttlingException"))
			msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		}
		var b bytes.Buffer
		if err := enc.Encode(&b, msg); err != nil {
			return
		}
		half := b.Len() / 2
		if !write(b.Bytes()[:half]) || !write(b.Bytes()[half:]) {
			return
		}
		if msg.Headers.Get(":message-type") == eventstream.StringValue("exception") {
			return
		}
		if bytes.HasPrefix(ev, []byte("event: content_block_delta")) {
			deltas++
			if deltas == 1 && strings.HasSuffix(model, "-idle") && f.cfg.Pause != nil {
				f.cfg.Pause(ctx)
			}
		}
	}
}

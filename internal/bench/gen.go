package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Generated payloads are deterministic: the same size, model and seed always give
// the same bytes, so a run can be reproduced from its scenario file alone.

// words feed the generated prose and code. A few need JSON escapes (quotes,
// backslashes, tabs, newlines) or are not ASCII, as real prompts are, so that a
// scanner meets escapes and multi-byte runes at realistic density.
var words = []string{
	"the", "parser", "returns", "an", "error", "when", "input", "is", "empty", "stream",
	"func", "(p *Parser)", "Next()", "token", "buffer", "offset", "len(b)", "if", "err", "!= nil",
	"return", "nil", "{", "}", `"quoted"`, `path\to\file`, "\t", "\n", "café", "naïve",
	"🚀", "map[string]any", "context", "ctx", "defer", "close", "channel", "select", "case", "range",
	"Claude", "tool_use", "result", "message", "request", "response", "header", "body", "usage", "tokens",
}

// plainWords is how many leading entries of words are ASCII and need no escape.
const plainWords = 22

// prose writes n bytes (at least) of JSON-unescaped text drawn from words.
func prose(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// jsonString appends s as a JSON string the way JavaScript's JSON.stringify
// writes it (Claude Code is a Node program): quotes, backslashes and control
// characters escaped, everything else, including non-ASCII, left as is.
func jsonString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20:
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func quoted(s string) string {
	var b bytes.Buffer
	jsonString(&b, s)
	return b.String()
}

// minBodyBytes is the smallest body ClaudeCodeBody can build: the fixed fields,
// one system block set, one tool and one message.
const minBodyBytes = 1500

// ClaudeCodeBody returns a POST /v1/messages body of exactly size bytes, shaped
// like the ones the Claude Code CLI sends (WIRE-FORMATS.md section 8): the keys
// model, messages, system, tools, metadata, max_tokens, thinking,
// context_management, output_config, stream in that order (so the fields the
// gateway reads sit after the bulk); three system blocks with the attribution
// line first and two cache_control blocks; tools with JSON schemas, some with
// defer_loading; a conversation of tool_use and tool_result turns with thinking
// signatures and a mid-conversation role "system" message; metadata.user_id as
// a JSON-encoded string. Roughly an eighth of the bytes go to the system prompt,
// two fifths to tools (24 to 28 of them in a large body) and the rest to
// messages, as in a first turn of the CLI.
func ClaudeCodeBody(size int, model string, stream bool, seed uint64) ([]byte, error) {
	if size < minBodyBytes {
		return nil, fmt.Errorf("bench: a Claude Code-shaped body needs at least %d bytes; got %d", minBodyBytes, size)
	}
	r := rand.New(rand.NewPCG(seed, 0x70116a7e))

	system := systemBlocks(r, min(max(size/8, 200), 14_000))
	tools := toolList(r, min(max(size*2/5, 300), 42_000))
	var tail bytes.Buffer
	tail.WriteString(`,"system":`)
	tail.WriteString(system)
	tail.WriteString(`,"tools":`)
	tail.WriteString(tools)
	tail.WriteString(`,"metadata":{"user_id":`)
	jsonString(&tail, fmt.Sprintf(`{"device_id":"%016x","account_uuid":"","session_id":"%s"}`, r.Uint64(), uuid(r)))
	tail.WriteString(`},"max_tokens":64000,"thinking":{"type":"adaptive","display":"omitted"}`)
	tail.WriteString(`,"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}`)
	tail.WriteString(`,"output_config":{"effort":"high"},"stream":`)
	tail.WriteString(strconv.FormatBool(stream))
	tail.WriteByte('}')

	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"model":`)
	jsonString(&b, model)
	b.WriteString(`,"messages":[`)
	// The last message is a user text padded to make the size exact.
	const lastOpen, lastClose = `{"role":"user","content":"`, `"}]`
	for turn := 0; ; turn++ {
		m := message(r, turn)
		if b.Len()+len(m)+1 > size-tail.Len()-len(lastOpen)-len(lastClose)-16 {
			break
		}
		b.WriteString(m)
		b.WriteByte(',')
	}
	budget := size - b.Len() - tail.Len() - len(lastOpen) - len(lastClose)
	if budget < 1 {
		return nil, fmt.Errorf("bench: %d bytes is too small for the system prompt and tools", size)
	}
	b.WriteString(lastOpen)
	b.WriteString(padding(r, budget))
	b.WriteString(lastClose)
	b.Write(tail.Bytes())
	if b.Len() != size {
		return nil, fmt.Errorf("bench: built %d bytes, want %d", b.Len(), size)
	}
	return b.Bytes(), nil
}

// padding is exactly n bytes of plain ASCII prose that needs no JSON escape.
func padding(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[r.IntN(plainWords)])
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

func uuid(r *rand.Rand) string {
	a, c := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, a>>16&0xffff, a&0xfff, 0x8000|c>>48&0x3fff, c&0xffffffffffff)
}

func systemBlocks(r *rand.Rand, n int) string {
	rest := max(n-260, 40)
	return `[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332.e5f; cc_entrypoint=cli;"},` +
		`{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude.","cache_control":{"type":"ephemeral"}},` +
		`{"type":"text","text":` + quoted(prose(r, rest)) + `,"cache_control":{"type":"ephemeral"}}]`
}

var toolNames = []string{
	"Task", "Bash", "Glob", "Grep", "LS", "ExitPlanMode", "Read", "Edit", "MultiEdit", "Write",
	"NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput", "KillShell", "SlashCommand",
	"mcp__github__search_code", "mcp__github__get_file", "mcp__github__create_issue", "mcp__github__list_prs",
	"mcp__linear__get_issue", "mcp__linear__update_issue", "mcp__sentry__get_event", "mcp__db__query", "mcp__db__schema",
	"mcp__browser__navigate", "mcp__browser__screenshot",
}

// toolList writes tools until about n bytes are used, at least one.
func toolList(r *rand.Rand, n int) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, name := range toolNames {
		var t bytes.Buffer
		t.WriteString(`{"name":`)
		jsonString(&t, name)
		t.WriteString(`,"description":`)
		jsonString(&t, prose(r, 150+r.IntN(n/len(toolNames)+1)))
		t.WriteString(`,"input_schema":{"type":"object","properties":{`)
		for p := range 2 + r.IntN(4) {
			if p > 0 {
				t.WriteByte(',')
			}
			fmt.Fprintf(&t, `"arg_%d":{"type":"string","description":`, p)
			jsonString(&t, prose(r, 40))
			t.WriteByte('}')
		}
		t.WriteString(`},"required":["arg_0"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`)
		if strings.HasPrefix(name, "mcp__") {
			t.WriteString(`,"defer_loading":true`)
		}
		t.WriteByte('}')
		if i > 0 && b.Len()+t.Len()+2 > n {
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(t.Bytes())
	}
	b.WriteByte(']')
	return b.String()
}

// message returns the turn-th message of a coding conversation.
func message(r *rand.Rand, turn int) string {
	var b bytes.Buffer
	switch {
	case turn == 0:
		b.WriteString(`{"role":"user","content":[{"type":"text","text":`)
		jsonString(&b, "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# claudeMd\n"+prose(r, 600)+"\n</system-reminder>\n")
		b.WriteString(`},{"type":"text","text":`)
		jsonString(&b, prose(r, 120))
		b.WriteString(`,"cache_control":{"type":"ephemeral"}}]}`)
	case turn%7 == 6:
		b.WriteString(`{"role":"system","content":"The user switched to plan mode."}`)
	case turn%2 == 1:
		id := fmt.Sprintf("toolu_01%022d", turn)
		b.WriteString(`{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":`)
		jsonString(&b, fmt.Sprintf("EqQBCkYIBxgCKkB%032x", r.Uint64()))
		b.WriteString(`},{"type":"text","text":`)
		jsonString(&b, prose(r, 80))
		b.WriteString(`},{"type":"tool_use","id":"` + id + `","name":"Read","input":{"file_path":`)
		jsonString(&b, fmt.Sprintf("/repo/internal/pkg%d/file%d.go", turn%5, turn))
		b.WriteString(`}}]}`)
	default:
		id := fmt.Sprintf("toolu_01%022d", turn-1)
		b.WriteString(`{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":`)
		jsonString(&b, prose(r, 1500+r.IntN(6000)))
		b.WriteString(`}]}`)
	}
	return b.String()
}

// AnthropicSSE returns an Anthropic Messages stream of exactly events events,
// one per element, as a provider flushes them (WIRE-FORMATS.md section 1.3):
// message_start with input and cache usage, a thinking block that holds only its
// signature (display "omitted"), a text block with a ping inside, a tool_use block
// streamed as input_json_delta, then message_delta with the cumulative usage and
// message_stop. Events beyond the fixed ones are text deltas (four in five) and
// input_json deltas. events must be at least 11.
func AnthropicSSE(events int, model string, seed uint64) ([][]byte, error) {
	const fixed = 11
	if events < fixed {
		return nil, fmt.Errorf("bench: an SSE response needs at least %d events; got %d", fixed, events)
	}
	r := rand.New(rand.NewPCG(seed, 0x55e))
	deltas := events - fixed
	jsonDeltas := deltas / 5
	textDeltas := deltas - jsonDeltas
	var out [][]byte
	ev := func(name, data string) {
		out = append(out, []byte("event: "+name+"\ndata: "+data+"\n\n"))
	}
	ev("message_start", `{"type":"message_start","message":{"id":"msg_01`+fmt.Sprintf("%022x", r.Uint64())+`","type":"message","role":"assistant","model":`+quoted(model)+
		`,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":30500,`+
		`"cache_creation":{"ephemeral_5m_input_tokens":2048,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}`)
	ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}`)
	ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"`+fmt.Sprintf("EqQBCkYIBxgCKkB%064x", r.Uint64())+`"}}`)
	ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
	ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`)
	for i := range textDeltas {
		if i == textDeltas/2 {
			ev("ping", `{"type": "ping"}`)
		}
		ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":`+quoted(prose(r, 8+r.IntN(40)))+`}}`)
	}
	if textDeltas == 0 {
		ev("ping", `{"type": "ping"}`)
	}
	ev("content_block_stop", `{"type":"content_block_stop","index":1}`)
	ev("content_block_start", `{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01`+fmt.Sprintf("%022x", r.Uint64())+`","name":"Edit","input":{}}}`)
	for i := range jsonDeltas {
		frag := `{\"file_path\": \"/repo/parser.go\", \"old_string\": \"`
		if i > 0 {
			q := quoted(prose(r, 10+r.IntN(20)))
			frag = q[1 : len(q)-1]
		}
		ev("content_block_delta", `{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"`+frag+`"}}`)
	}
	ev("content_block_stop", `{"type":"content_block_stop","index":2}`)
	output := 3*deltas + 20
	ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":30500,"output_tokens":`+strconv.Itoa(output)+`}}`)
	ev("message_stop", `{"type":"message_stop"}`)
	if len(out) != events {
		return nil, fmt.Errorf("bench: built %d events, want %d", len(out), events)
	}
	return out, nil
}

// AnthropicMessage returns a non-streaming Messages response (WIRE-FORMATS.md
// section 1.4) whose text holds about textBytes bytes.
func AnthropicMessage(model string, textBytes int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x3e55a9e))
	return []byte(`{"id":"msg_01` + fmt.Sprintf("%022x", r.Uint64()) + `","type":"message","role":"assistant","model":` + quoted(model) +
		`,"content":[{"type":"text","text":` + quoted(prose(r, textBytes)) + `}],"stop_reason":"end_turn","stop_sequence":null,` +
		`"usage":{"input_tokens":2095,"cache_creation_input_tokens":2051,"cache_read_input_tokens":2051,` +
		`"cache_creation":{"ephemeral_5m_input_tokens":2051,"ephemeral_1h_input_tokens":0},"output_tokens":503,` +
		`"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","inference_geo":"global"}}`)
}

package openai

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// maxLine bounds one line of a stream; a chunk is a few hundred bytes.
const maxLine = 16 << 20

// Block kinds of the open content block.
const (
	blockNone = iota
	blockText
	blockTool
)

// stream turns a Chat Completions chunk stream (data: lines of
// chat.completion.chunk JSON, then data: [DONE]) into Anthropic SSE as the
// chunks arrive; a line may arrive split over body chunks, or several in
// one, and nothing but the current partial line is kept.
//
// The first chunk gives message_start (usage zero: OpenAI reports it only
// at the end). Content deltas open a text block; tool_calls fragments,
// keyed by their index, open one tool_use block each (its id, its name
// restored) and their arguments become input_json_delta. A block closes
// when the next one opens, or at finish_reason. The usage comes with the
// last chunk (include_usage), which may carry a choice as well; at [DONE]
// (or the body's end after a finish_reason) message_delta carries the stop
// reason and the whole usage, input included, then message_stop. An error
// chunk becomes an Anthropic error event; so does a stream that ends before
// its finish_reason, or a chunk that is not JSON. Nothing is emitted after
// an error event or message_stop.
type stream struct {
	names *toolNames
	model string // the request's, for chunks that name none
	warn  func(kind, msg string)

	line []byte // the current line, when it spans body chunks
	out  []byte // the current body chunk's output
	ck   chunkDoc

	started  bool
	done     bool
	blocks   int // blocks started; the next block's index
	open     int // the open block's index
	openKind int
	// tools maps a tool call's index to its block's index.
	tools      []toolBlock
	finish     string // the finish_reason, once seen
	finished   bool
	usage      chatUsage
	haveUsage  bool
	interleave bool // reported once
}

type toolBlock struct{ call, block int }

func newStream(names *toolNames, model string, warn func(kind, msg string)) *stream {
	if warn == nil {
		warn = func(string, string) {}
	}
	return &stream{names: names, model: model, warn: warn, open: -1}
}

// chunk returns the Anthropic SSE for the lines chunk completes; end is
// true on the body's last chunk.
func (s *stream) chunk(chunk []byte, end bool) []byte {
	// A new buffer each time: the adapter hands the returned bytes to gRPC.
	s.out = make([]byte, 0, 2*len(chunk)+64)
	for len(chunk) > 0 && !s.done {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			s.line = append(s.line, chunk...)
			if len(s.line) > maxLine {
				s.fail("api_error", "the provider's stream has a line longer than 16 MiB")
			}
			break
		}
		line := chunk[:i]
		if len(s.line) > 0 {
			s.line = append(s.line, line...)
			line = s.line
		}
		s.handleLine(bytes.TrimSuffix(line, []byte("\r")))
		s.line = s.line[:0]
		chunk = chunk[i+1:]
	}
	if end && !s.done {
		if len(s.line) > 0 { // a last line without its newline
			s.handleLine(bytes.TrimSuffix(s.line, []byte("\r")))
			s.line = s.line[:0]
		}
		if !s.done {
			if s.finished {
				s.stop()
			} else {
				s.fail("api_error", "the provider's stream ended before its finish_reason")
			}
		}
	}
	if len(s.out) == 0 {
		return nil
	}
	return s.out
}

// handleLine handles one SSE line: data lines carry the chunks; event
// names, ids, comments and blank lines carry nothing for this translation.
func (s *stream) handleLine(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	data = bytes.TrimLeft(data, " ")
	if len(data) == 0 {
		return
	}
	if string(data) == "[DONE]" {
		s.stop()
		return
	}
	if err := parseChunk(data, &s.ck); err != nil {
		s.fail("api_error", "the provider sent a stream chunk that is not JSON")
		return
	}
	if e := s.ck.err; e != nil {
		typ, msg := "api_error", ""
		var oe openAIError
		if e[0] == '"' {
			msg = unescape(e[1 : len(e)-1])
		} else if json.Unmarshal(e, &oe) == nil {
			typ, msg = streamErrorType(oe), oe.Message
		}
		if msg == "" {
			msg = "the provider's stream failed"
		}
		s.fail(typ, msg)
		return
	}
	s.start()
	if c := &s.ck; c.choice {
		if len(c.content) > 0 {
			s.text(c.content)
		}
		if len(c.refusal) > 0 {
			s.text(c.refusal)
		}
		for j := range c.tools {
			s.toolCall(&c.tools[j])
		}
		if len(c.finish) > 0 {
			s.finish, s.finished = unescape(c.finish), true
			s.closeBlock()
		}
	}
	if u := s.ck.usage; u != nil {
		var cu chatUsage
		if json.Unmarshal(u, &cu) == nil {
			s.usage, s.haveUsage = cu, true
		}
	}
}

// start emits message_start, once.
func (s *stream) start() {
	if s.started {
		return
	}
	s.started = true
	b := append(s.out, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"...)
	if len(s.ck.id) > 0 {
		b = appendRaw(b, s.ck.id)
	} else {
		b = appendString(b, idOr(""))
	}
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	if len(s.ck.model) > 0 {
		b = appendRaw(b, s.ck.model)
	} else {
		b = appendString(b, s.model)
	}
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	s.out = b
}

// text emits a text delta (t is a JSON string's escaped content), opening
// a text block if none is open.
func (s *stream) text(t []byte) {
	if s.openKind != blockText {
		s.closeBlock()
		s.openBlock(blockText)
		s.out = append(s.out, `{"type":"text","text":""}}`+"\n\n"...)
	}
	b := s.delta(s.open)
	b = append(b, `"text_delta","text":`...)
	b = appendRaw(b, t)
	s.out = append(b, "}}\n\n"...)
}

// toolCall handles one tool_calls fragment: the first of a call (by index)
// opens its tool_use block; its arguments become input_json_delta.
func (s *stream) toolCall(tc *toolFrag) {
	call := len(s.tools) // a fragment without an index starts a call if it has an id
	if tc.hasIndex {
		call = tc.index
	} else if len(tc.id) == 0 && len(s.tools) > 0 {
		call = s.tools[len(s.tools)-1].call
	}
	block := -1
	for _, t := range s.tools {
		if t.call == call {
			block = t.block
		}
	}
	if block < 0 {
		s.closeBlock()
		block = s.openBlock(blockTool)
		s.tools = append(s.tools, toolBlock{call: call, block: block})
		b := append(s.out, `{"type":"tool_use","id":`...)
		if len(tc.id) > 0 {
			b = appendRaw(b, tc.id)
		} else {
			b = appendString(b, toolID("", unescape(s.ck.id), call))
		}
		b = append(b, `,"name":`...)
		b = appendString(b, s.names.restore(unescape(tc.name)))
		s.out = append(b, `,"input":{}}}`+"\n\n"...)
	} else if block != s.open && !s.interleave {
		s.interleave = true
		s.warn("tool_calls_interleaved", "the provider streamed fragments of a tool call after another one started; they keep their block index")
	}
	if len(tc.args) == 0 {
		return
	}
	b := s.delta(block)
	b = append(b, `"input_json_delta","partial_json":`...)
	b = appendRaw(b, tc.args)
	s.out = append(b, "}}\n\n"...)
}

// appendRaw appends a JSON string whose escaped content is raw.
func appendRaw(b, raw []byte) []byte {
	b = append(b, '"')
	b = append(b, raw...)
	return append(b, '"')
}

// openBlock emits the start of a content_block_start event for a new block
// of kind, up to its content_block's value, and returns its index.
func (s *stream) openBlock(kind int) int {
	s.open, s.openKind = s.blocks, kind
	s.blocks++
	b := append(s.out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"...)
	b = strconv.AppendInt(b, int64(s.open), 10)
	s.out = append(b, `,"content_block":`...)
	return s.open
}

// delta appends the start of a content_block_delta event for block, up to
// its delta's type value.
func (s *stream) delta(block int) []byte {
	b := append(s.out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	b = strconv.AppendInt(b, int64(block), 10)
	return append(b, `,"delta":{"type":`...)
}

// closeBlock emits content_block_stop for the open block, if any.
func (s *stream) closeBlock() {
	if s.openKind == blockNone {
		return
	}
	b := append(s.out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	b = strconv.AppendInt(b, int64(s.open), 10)
	s.out = append(b, "}\n\n"...)
	s.openKind = blockNone
}

// stop ends the message: message_delta with the stop reason and the usage,
// then message_stop.
func (s *stream) stop() {
	if !s.finished {
		s.fail("api_error", "the provider's stream ended before its finish_reason")
		return
	}
	s.start()
	s.closeBlock()
	b := append(s.out, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	b = appendString(b, stopReason(s.finish, len(s.tools) > 0))
	b = append(b, `,"stop_sequence":null},"usage":`...)
	b = appendUsage(b, &s.usage)
	b = append(b, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	s.out = b
	s.done = true
	if !s.haveUsage {
		s.warn("no_usage", "the provider's stream carried no usage (is stream_options accepted?)")
	}
}

// fail emits an error event and ends the translation.
func (s *stream) fail(typ, msg string) {
	b := append(s.out, "event: error\ndata: "...)
	b = append(b, errorJSON(typ, msg)...)
	s.out = append(b, "\n\n"...)
	s.done = true
}

package anthropic

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// Limits of the stream parser's memory. An event's data is kept only for the
// few event types that carry usage, model, stop reason or error; every other
// event's bytes are skipped as they arrive.
const (
	// maxEventBytes caps the data kept for one event. A usage-bearing event
	// above it is counted malformed and changes nothing.
	maxEventBytes = 1 << 20
	// initialEventBytes is the first allocation of the event buffer, large
	// enough for a message_start, so that a stream usually allocates it once.
	initialEventBytes = 1024
	// keepEventBytes is the largest event buffer kept between events; a larger
	// one, grown by an unusual event, is released when that event ends.
	keepEventBytes = 64 << 10
	// sniffBytes is how much of an event without an event line is examined for
	// a leading "type" member before the parser decides to keep its data.
	sniffBytes = 256
)

// ErrNoUsage is returned by ParseMessage for a JSON object without "usage".
var ErrNoUsage = errors.New("anthropic: response has no usage")

// ErrMalformed is wrapped by the error ParseMessage returns for a body that is
// not a JSON object of the expected shape.
var ErrMalformed = errors.New("anthropic: malformed response JSON")

// APIError is an Anthropic error body, {"type":"error","error":{...}}, as
// ParseMessage returns it.
type APIError struct {
	// Type is error.type, for example "overloaded_error".
	Type string
	// Message is error.message.
	Message string
}

func (e *APIError) Error() string {
	return "anthropic: provider error: " + e.Type + ": " + e.Message
}

// ParseMessage reads usage and model from a non-streaming Messages JSON
// response. The usage is read as from a stream's message_start (see
// StreamParser for the cache write split). An error body
// ({"type":"error",...}) returns an *APIError; a body without a usage object
// returns ErrNoUsage with the model, if any; a body that is not a JSON object,
// or whose usage counts are not non-negative integers, returns an error
// wrapping ErrMalformed.
func ParseMessage(body []byte) (u pricing.Usage, model string, err error) {
	var m messageDoc
	if off, ok := decodeMessage(body, &m); !ok {
		return pricing.Usage{}, "", fmt.Errorf("%w: near byte %d", ErrMalformed, off)
	}
	if m.typ.is("error") {
		return pricing.Usage{}, "", &APIError{Type: m.errType.String(), Message: m.errMessage.String()}
	}
	model = m.model.String()
	if !m.hasUsage {
		return pricing.Usage{}, model, ErrNoUsage
	}
	var st usageState
	st.apply(&m.usage)
	return st.usage(), model, nil
}

// StreamParser reads an Anthropic Messages SSE response incrementally, chunk by
// chunk as Envoy delivers them; chunks need not be aligned to events or lines.
// The zero value is ready to use. A StreamParser is not safe for concurrent use.
//
// Framing follows the SSE specification: lines end in "\r\n", "\n" or "\r";
// a line starting with ":" is a comment; "data:" and "event:" values lose one
// leading space if present; several data lines of one event are joined with
// "\n"; a blank line ends the event, and an event without data lines is not
// dispatched. An unterminated event at the end of the input is not dispatched
// either, since its data may be incomplete.
//
// An event is identified by its event line. Without one (or with an empty one),
// it is identified by the JSON "type" member of its data, as in streams
// translated from Bedrock's binary framing. Events are then handled as follows:
//
//   - message_start: Started becomes true; message.model and message.usage are
//     read.
//   - message_delta: delta.stop_reason (when not null) and usage are read.
//   - message_stop: Done becomes true. Its data is not read.
//   - error: Err reports error.type and error.message.
//   - content_block_delta: the characters of its delta's text, thinking or
//     partial_json are added to OutputChars, counted as the bytes pass
//     (see deltaCounter); nothing of the event is kept.
//   - anything else (ping, content_block_start, unknown types): its data bytes
//     are skipped without being kept.
//
// Usage semantics follow the Messages API: every usage object overwrites each
// count it carries, since message_delta counts are cumulative, and a count it
// does not carry (or carries as null) keeps its value. Counts are never added.
//
// The cache write split: while no usage object has carried cache_creation, all
// of cache_creation_input_tokens are 5-minute writes. Once one has, its
// ephemeral_5m_input_tokens and ephemeral_1h_input_tokens are the split (a
// cache_creation without cache_creation_input_tokens also sets the total to
// their sum). When a later cache_creation_input_tokens differs from the sum of
// the known split, as when a message_delta carries only the total:
//
//   - a larger total adds the difference to the 5-minute writes, or to the
//     1-hour writes when the known split has only 1-hour writes;
//   - a smaller total keeps the 1-hour writes up to the total and makes the
//     rest 5-minute writes.
//
// An event is counted by Malformed and changes nothing when its data is not
// valid JSON of the expected shape (a usage count must be a non-negative
// integer or null), when its data exceeds 1 MiB, or when part of its data was
// skipped (an event line naming a decoded event after data lines that were
// skipped under an earlier name). A malformed message_start still sets
// Started, and a malformed error event still sets Err, with an empty type and
// message unless another error event could be decoded.
//
// Work per Write is proportional to the chunk, plus the decoding of the few
// events whose data is kept. Memory does not depend on the length of the
// response: skipped events are never buffered, and kept ones are capped.
type StreamParser struct {
	// What the stream has said so far.
	usage      usageState
	model      string
	stopReason string
	started    bool
	done       bool
	errSeen    bool // an error event was dispatched
	errDecoded bool // errType and errMessage come from a decoded error event
	errType    string
	errMessage string
	malformed  int
	// outputChars counts the relayed output text; outputReported is set once
	// a decoded message_delta carried output_tokens.
	outputChars    int64
	outputReported bool

	// Position within the current line.
	lineState  lineState
	valueState lineState // the state after the colon of the current field
	afterCR    bool      // the last line ended in "\r"; a "\n" next is skipped
	fieldLen   uint8
	field      [len("event")]byte // the field name read so far

	// The current event.
	nameLen   uint8
	nameLong  bool     // the event line's value did not fit in name
	name      [32]byte // the event line's value read so far
	named     eventKind
	sniffed   eventKind // from the leading "type" member, when sniffDone
	sniffDone bool
	hasData   bool // a data line was seen
	buffering bool // the current data line's bytes are kept
	dropped   bool // some of the event's data was not kept
	overflow  bool // the event's data exceeded maxEventBytes
	buf       []byte
	// counting is set while the event's data, known to be a
	// content_block_delta's, flows through delta, which has seen all of it.
	counting bool
	delta    deltaCounter
}

// lineState is where the parser is within an SSE line.
type lineState uint8

const (
	stLineStart  lineState = iota // at the start of a line
	stField                       // reading a field name
	stValueStart                  // after the colon, before the optional space
	stEventValue                  // reading an event line's value
	stDataValue                   // reading a data line's value
	stIgnore                      // skipping a comment or an unknown field
)

// eventKind classifies an event by its name or JSON type.
type eventKind uint8

const (
	kindNone eventKind = iota // not known
	kindOther
	kindMessageStart
	kindMessageDelta
	kindMessageStop
	kindError
	kindContentDelta // content_block_delta
)

func kindOf(name []byte) eventKind {
	switch string(name) {
	case "message_start":
		return kindMessageStart
	case "message_delta":
		return kindMessageDelta
	case "message_stop":
		return kindMessageStop
	case "error":
		return kindError
	case "content_block_delta":
		return kindContentDelta
	}
	return kindOther
}

// needsData reports whether an event of kind k is decoded, so its data is kept.
func (k eventKind) needsData() bool {
	return k == kindMessageStart || k == kindMessageDelta || k == kindError
}

// Usage returns the usage seen so far.
func (p *StreamParser) Usage() pricing.Usage { return p.usage.usage() }

// Model returns message.model from the message_start event, or "" before it.
func (p *StreamParser) Model() string { return p.model }

// StopReason returns the last non-null delta.stop_reason of a message_delta
// event, or "" before one.
func (p *StreamParser) StopReason() string { return p.stopReason }

// Started reports whether a message_start event was seen.
func (p *StreamParser) Started() bool { return p.started }

// Done reports whether a message_stop event was seen.
func (p *StreamParser) Done() bool { return p.done }

// Err reports whether an error event was seen, with the error.type and
// error.message of the first one whose data could be decoded. typ and message
// are empty when no error event's data could be decoded.
func (p *StreamParser) Err() (typ, message string, ok bool) {
	return p.errType, p.errMessage, p.errSeen
}

// Malformed returns the number of events skipped as malformed.
func (p *StreamParser) Malformed() int { return p.malformed }

// OutputChars returns the characters of output seen so far in
// content_block_delta events: the decoded text of text_delta, thinking of
// thinking_delta and partial_json of input_json_delta, in Unicode characters
// (a JSON escape such as "\n" or "\u00e9" counts as one).
func (p *StreamParser) OutputChars() int64 { return p.outputChars }

// OutputReported reports whether a message_delta event carried output_tokens,
// the provider's own count of the whole output.
func (p *StreamParser) OutputReported() bool { return p.outputReported }

// BilledUsage returns Usage, with the output tokens estimated from the output
// seen when no message_delta has reported them, as when the client or the
// provider cut the stream before its end: then OutputTokens is the larger of
// EstimateOutputTokens(OutputChars()) and what message_start said, and
// estimated is true when the estimate was the larger.
func (p *StreamParser) BilledUsage() (u pricing.Usage, estimated bool) {
	u = p.Usage()
	if p.outputReported {
		return u, false
	}
	if est := EstimateOutputTokens(p.outputChars); est > u.OutputTokens {
		u.OutputTokens = est
		return u, true
	}
	return u, false
}

// Write feeds the next chunk of the response body. It never fails: malformed
// events are counted and skipped. Write does not retain chunk.
func (p *StreamParser) Write(chunk []byte) {
	for len(chunk) > 0 {
		if p.afterCR {
			// A "\n" right after a "\r" ends the same line.
			p.afterCR = false
			if chunk[0] == '\n' {
				chunk = chunk[1:]
				continue
			}
		}
		switch p.lineState {
		case stLineStart:
			switch c := chunk[0]; c {
			case '\n', '\r':
				p.afterCR = c == '\r'
				chunk = chunk[1:]
				p.dispatch()
			case ':':
				p.lineState = stIgnore
				chunk = chunk[1:]
			default:
				p.lineState = stField
				p.fieldLen = 0
			}
		case stField:
			i := 0
			for ; i < len(chunk); i++ {
				c := chunk[i]
				if c == ':' || c == '\n' || c == '\r' {
					break
				}
				if int(p.fieldLen) == len(p.field) {
					// No field the parser reads is this long.
					p.fieldLen = 0
					p.lineState = stIgnore
					break
				}
				p.field[p.fieldLen] = c
				p.fieldLen++
			}
			chunk = chunk[i:]
			if p.lineState != stField || len(chunk) == 0 {
				continue
			}
			p.beginValue()
			if chunk[0] == ':' {
				chunk = chunk[1:]
				p.lineState = stValueStart
			} else {
				// A field name alone on a line has an empty value.
				p.lineState = p.valueState
				chunk = p.endLine(chunk)
			}
		case stValueStart:
			if chunk[0] == ' ' {
				chunk = chunk[1:]
			}
			p.lineState = p.valueState
		case stEventValue:
			n := lineEnd(chunk)
			k := copy(p.name[p.nameLen:], chunk[:n])
			p.nameLen += uint8(k)
			p.nameLong = p.nameLong || k < n
			chunk = chunk[n:]
			if len(chunk) > 0 {
				chunk = p.endLine(chunk)
			}
		case stDataValue:
			n := lineEnd(chunk)
			if p.buffering {
				p.appendData(chunk[:n])
			} else if p.counting {
				p.delta.feed(chunk[:n])
			}
			chunk = chunk[n:]
			if len(chunk) > 0 {
				chunk = p.endLine(chunk)
			}
		case stIgnore:
			chunk = chunk[lineEnd(chunk):]
			if len(chunk) > 0 {
				chunk = p.endLine(chunk)
			}
		}
	}
}

// lineEnd returns the index of the first "\r" or "\n" in b, or len(b).
func lineEnd(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 {
		n = len(b)
	}
	if r := bytes.IndexByte(b[:n], '\r'); r >= 0 {
		return r
	}
	return n
}

// endLine finishes the current line at the line terminator chunk[0] and
// returns the rest of chunk.
func (p *StreamParser) endLine(chunk []byte) []byte {
	p.afterCR = chunk[0] == '\r'
	if p.lineState == stEventValue {
		p.endEventLine()
	}
	p.lineState = stLineStart
	return chunk[1:]
}

// beginValue starts the value of the field just read.
func (p *StreamParser) beginValue() {
	switch string(p.field[:p.fieldLen]) {
	case "event":
		p.nameLen, p.nameLong = 0, false
		p.valueState = stEventValue
	case "data":
		p.beginData()
		p.valueState = stDataValue
	default:
		p.valueState = stIgnore
	}
}

// kind returns the event's kind as known so far.
func (p *StreamParser) kind() eventKind {
	if p.named != kindNone {
		return p.named
	}
	if p.sniffDone {
		return p.sniffed
	}
	return kindNone
}

// beginData starts a data line: it decides whether the line's bytes are kept,
// counted or skipped.
func (p *StreamParser) beginData() {
	k := p.kind()
	p.buffering = k == kindNone || k.needsData()
	switch {
	case k == kindContentDelta:
		p.startCounting()
		if p.hasData && p.counting {
			p.delta.feed(newline)
		}
	case !p.buffering:
		p.drop()
	case p.hasData:
		p.appendData(newline)
	}
	p.hasData = true
}

var newline = []byte{'\n'}

// startCounting makes the rest of the event's data flow through the delta
// counter, after the data kept so far, if all of it was kept.
func (p *StreamParser) startCounting() {
	if !p.counting && !p.dropped && !p.overflow {
		p.counting = true
		p.delta.feed(p.buf)
	}
	p.drop()
}

// drop discards the event's data.
func (p *StreamParser) drop() {
	p.dropped = true
	p.buffering = false
	p.buf = p.buf[:0]
}

// endEventLine names the event after its event line.
func (p *StreamParser) endEventLine() {
	switch {
	case p.nameLong:
		p.named = kindOther
	case p.nameLen == 0:
		p.named = kindNone
	default:
		p.named = kindOf(p.name[:p.nameLen])
	}
	switch {
	case p.named == kindContentDelta && p.hasData:
		p.startCounting()
	case p.named != kindNone && !p.named.needsData() && p.hasData:
		p.drop()
	}
}

// appendData keeps b as part of the event's data. While an event has no name,
// its first sniffBytes are kept first and examined for a leading "type"
// member, so that the data of an event that turns out to be skipped is never
// kept beyond that.
func (p *StreamParser) appendData(b []byte) {
	if p.named == kindNone && !p.sniffDone && len(p.buf) < sniffBytes {
		n := min(len(b), sniffBytes-len(p.buf))
		p.keep(b[:n])
		b = b[n:]
		if k, ok := sniffType(p.buf); ok {
			p.sniffDone, p.sniffed = true, k
			if k == kindContentDelta {
				p.startCounting()
				if p.counting {
					p.delta.feed(b)
				}
				return
			}
			if k != kindNone && !k.needsData() {
				p.drop()
				return
			}
		}
	}
	if len(b) > 0 {
		p.keep(b)
	}
}

// keep appends b to the event buffer, up to maxEventBytes.
func (p *StreamParser) keep(b []byte) {
	if p.overflow {
		return
	}
	if p.buf == nil {
		p.buf = make([]byte, 0, initialEventBytes)
	}
	if room := maxEventBytes - len(p.buf); len(b) > room {
		b = b[:room]
		p.overflow = true
	}
	p.buf = append(p.buf, b...)
}

// sniffType identifies an event from the start of its data when the data is a
// JSON object whose first member is a string "type". It looks at no more than
// sniffBytes, and its answer for a prefix never changes as the data grows: ok
// is false only while the prefix is too short to tell. kindNone with ok means
// the type is not in the leading member, so the whole data must be read.
func sniffType(b []byte) (k eventKind, ok bool) {
	complete := len(b) >= sniffBytes
	if complete {
		b = b[:sniffBytes]
	}
	undecided := func() (eventKind, bool) { return kindNone, complete }
	i := skipSpace(b, 0)
	if i == len(b) {
		return undecided()
	}
	if b[i] != '{' {
		return kindNone, true
	}
	i = skipSpace(b, i+1)
	const key = `"type"`
	n := min(len(b)-i, len(key))
	if string(b[i:i+n]) != key[:n] {
		return kindNone, true
	}
	if n < len(key) {
		return undecided()
	}
	i = skipSpace(b, i+len(key))
	if i == len(b) {
		return undecided()
	}
	if b[i] != ':' {
		return kindNone, true
	}
	i = skipSpace(b, i+1)
	if i == len(b) {
		return undecided()
	}
	if b[i] != '"' {
		return kindNone, true
	}
	start := i + 1
	for i = start; i < len(b); i++ {
		switch b[i] {
		case '"':
			return kindOf(b[start:i]), true
		case '\\':
			return kindNone, true
		}
	}
	return undecided()
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// dispatch ends the current event at a blank line.
func (p *StreamParser) dispatch() {
	if p.hasData {
		p.handleEvent()
	}
	p.named, p.sniffed = kindNone, kindNone
	p.sniffDone, p.hasData, p.buffering, p.dropped, p.overflow = false, false, false, false, false
	p.counting = false
	if p.delta.fed {
		p.delta.reset()
	}
	if cap(p.buf) > keepEventBytes {
		p.buf = nil
	} else {
		p.buf = p.buf[:0]
	}
}

// handleEvent acts on a complete event with data.
func (p *StreamParser) handleEvent() {
	k := p.kind()
	incomplete := p.dropped || p.overflow
	if k == kindNone {
		if incomplete {
			p.malformed++
			return
		}
		typ, ok := decodeType(p.buf)
		if !ok {
			p.malformed++
			return
		}
		if !typ.esc {
			k = kindOf(typ.raw)
		} else {
			k = kindOf([]byte(typ.String()))
		}
	}
	switch k {
	case kindContentDelta:
		if !p.counting {
			// Identified only now, from its whole data.
			if incomplete {
				return
			}
			p.delta.feed(p.buf)
		}
		p.outputChars += p.delta.chars
	case kindMessageStop:
		p.done = true
	case kindMessageStart:
		p.started = true
		var m startDoc
		if incomplete || !decodeStart(p.buf, &m) {
			p.malformed++
			return
		}
		p.usage.apply(&m.usage)
		if m.model.set {
			p.model = m.model.update(p.model)
		}
	case kindMessageDelta:
		var d deltaDoc
		if incomplete || !decodeDelta(p.buf, &d) {
			p.malformed++
			return
		}
		p.usage.apply(&d.usage)
		if d.usage.set&(1<<fOutput) != 0 {
			p.outputReported = true
		}
		if d.stopReason.set {
			if d.stopReason.esc {
				p.stopReason = d.stopReason.String()
			} else {
				p.stopReason = internStopReason(d.stopReason.raw, p.stopReason)
			}
		}
	case kindError:
		p.errSeen = true
		var e errorDoc
		if incomplete || !decodeError(p.buf, &e) {
			p.malformed++
			return
		}
		if !p.errDecoded {
			p.errDecoded = true
			p.errType, p.errMessage = e.typ.String(), e.message.String()
		}
	}
}

// internStopReason returns the documented stop reasons without allocating,
// and cur when b equals it.
func internStopReason(b []byte, cur string) string {
	switch string(b) {
	case "end_turn":
		return "end_turn"
	case "max_tokens":
		return "max_tokens"
	case "stop_sequence":
		return "stop_sequence"
	case "tool_use":
		return "tool_use"
	case "pause_turn":
		return "pause_turn"
	case "refusal":
		return "refusal"
	case "model_context_window_exceeded":
		return "model_context_window_exceeded"
	case cur:
		return cur
	}
	return string(b)
}

// Usage fields, as indices into usageFields.vals and bits of usageFields.set.
const (
	fInput = iota
	fCacheWrite
	fCacheRead
	fOutput
	fWrite5m
	fWrite1h
	fThinking
	fWebSearch
	fWebFetch
	numUsageFields

	// splitBit is set in usageFields.set when the usage carried a
	// cache_creation object.
	splitBit = 1 << 15
)

// usageFields are the counts one usage object carries.
type usageFields struct {
	set  uint16
	vals [numUsageFields]int64
}

func (u *usageFields) put(f int, v int64) {
	u.vals[f] = v
	u.set |= 1 << f
}

// usageState is the cumulative usage of a response.
type usageState struct {
	vals      [numUsageFields]int64
	haveSplit bool
}

// apply overwrites the counts u carries.
func (st *usageState) apply(u *usageFields) {
	for f := range numUsageFields {
		if u.set&(1<<f) != 0 {
			st.vals[f] = u.vals[f]
		}
	}
	if u.set&splitBit != 0 {
		st.haveSplit = true
		if u.set&(1<<fCacheWrite) == 0 {
			st.vals[fCacheWrite] = st.vals[fWrite5m] + st.vals[fWrite1h]
		}
	}
}

func (st *usageState) usage() pricing.Usage {
	w5m, w1h := splitCacheWrites(st.vals[fCacheWrite], st.vals[fWrite5m], st.vals[fWrite1h], st.haveSplit)
	return pricing.Usage{
		InputTokens:        st.vals[fInput],
		CacheReadTokens:    st.vals[fCacheRead],
		CacheWrite5mTokens: w5m,
		CacheWrite1hTokens: w1h,
		OutputTokens:       st.vals[fOutput],
		ReasoningTokens:    st.vals[fThinking],
		WebSearchRequests:  st.vals[fWebSearch],
		WebFetchRequests:   st.vals[fWebFetch],
	}
}

// splitCacheWrites divides total cache write tokens into 5-minute and 1-hour
// writes given the last known split, by the rule in the StreamParser doc. The
// two results always sum to total.
func splitCacheWrites(total, split5m, split1h int64, haveSplit bool) (w5m, w1h int64) {
	if !haveSplit {
		return total, 0
	}
	switch sum := split5m + split1h; {
	case total == sum:
		return split5m, split1h
	case total > sum:
		if split5m == 0 && split1h > 0 {
			return 0, total
		}
		return total - split1h, split1h
	default:
		w1h = min(split1h, total)
		return total - w1h, w1h
	}
}

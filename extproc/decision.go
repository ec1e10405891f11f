package extproc

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/records"
)

// Decision is what the policy role decided for a request, handed to the adapter
// role of every attempt. It travels in Envoy's dynamic metadata, namespace
// "tollgate", key "decision", not in a header:
//
//   - The policy filter's reply carries it in dynamic_metadata; Envoy writes it
//     into the request's StreamInfo for each namespace that the filter's
//     metadata_options.receiving_namespaces allows (ext_proc
//     Filter::setDynamicMetadata, source/extensions/filters/http/ext_proc/ext_proc.cc;
//     StreamInfoImpl::setDynamicMetadata merges it into filter_metadata).
//   - An upstream filter's StreamInfo is the downstream request's
//     (Router::UpstreamFilterManager::streamInfo, source/common/router/upstream_request.cc),
//     on every attempt, so the adapter filter, which forwards "tollgate"
//     (metadata_options.forwarding_namespaces), finds the decision in the
//     metadata_context of its messages (Filter::addDynamicMetadata) on attempt 1
//     and on every retry.
//
// Clients cannot write dynamic metadata and providers never see it, so the
// decision needs neither a signature nor removing: the header map that Envoy
// keeps across attempts (ENVOY-EXTPROC section 12) never holds it.
type Decision struct {
	// RecordID is the request's own id (its record's), which the adapter's
	// logs and error bodies name. Envoy's access log carries it back with
	// the request's dynamic metadata: it keys the request's ending
	// (endings.go), where a client's x-request-id could be forged.
	RecordID string
	Route    string
	// Path is the client's original :path, query included. The adapter derives the
	// upstream path from it on every attempt, never from the current :path, which an
	// earlier attempt may have rewritten (ENVOY-EXTPROC section 12).
	Path  string
	KeyID string
	// Model is the model id the client asked for, with any "@route/" prefix
	// removed; empty when the request has no body. It tells the adapter at
	// request headers whether it will rewrite the body.
	Model string
	// ClientFormat names the client format the request is written in
	// (ClientFormat.Name): the adapter translates from it and renders its
	// refusals in it. Empty (a decision from a replica that did not write
	// it) means the default format.
	ClientFormat string
	// BodyBytes is the length of the body the router sends to every attempt
	// (after the policy role's edits); 0 when the request has none. A retry
	// that leaves the body as it is restores its content-length from it
	// without reading the body: an earlier attempt's rewrite left its own
	// in the header map Envoy keeps across attempts (ENVOY-EXTPROC section 12).
	BodyBytes int
	// Betas is the client's anthropic-beta header (its values joined by
	// commas), and HasBetas whether the client sent one. Every attempt's
	// adapter sets the header from them, or removes it, before its
	// provider's edits: an attempt to a cloud that takes betas in the header
	// (Vertex AI) sends its compatibility table's filtered value there, and
	// Envoy keeps one header map across attempts (ENVOY-EXTPROC section 12),
	// so without this a later attempt to Anthropic, which must get the
	// client's betas verbatim, would get the filtered ones. The value is a
	// request header's, so Envoy's max_request_headers_kb bounds it, as it
	// bounds Path; dynamic metadata has no limit of its own.
	Betas    string
	HasBetas bool
	// betasKnown is false for a decision from a replica that did not write
	// Betas (or one made without the policy role, in tests, with HasBetas
	// false): the adapter then takes the header map's value.
	betasKnown bool
}

// hdrBeta is the header Anthropic clients send betas in.
const hdrBeta = "anthropic-beta"

// metadataNamespace is the dynamic metadata namespace Tollgate's filters write
// and read; envoy.yaml lets the policy filter receive it and the adapter filter
// forward it.
const metadataNamespace = "tollgate"

// metadataDecision is the key of the decision inside the namespace.
const metadataDecision = "decision"

// The decision's field names in its Struct.
const (
	decRecordID = "record_id"
	decRoute    = "route"
	decPath     = "path"
	decKeyID    = "key_id"
	decModel    = "model"
	decFormat   = "client_format"
	decBody     = "body_bytes"
	// decBetas is the client's anthropic-beta: a string, or null when the
	// client sent none.
	decBetas = "anthropic_beta"
)

// metadata returns d as the dynamic_metadata of a reply:
// {"tollgate": {"decision": {...}}}.
func (d Decision) metadata() *structpb.Struct {
	str := func(s string) *structpb.Value { return structpb.NewStringValue(s) }
	dec := &structpb.Struct{Fields: map[string]*structpb.Value{
		decRecordID: str(d.RecordID),
		decRoute:    str(d.Route),
		decPath:     str(d.Path),
		decKeyID:    str(d.KeyID),
		decModel:    str(d.Model),
		decFormat:   str(d.ClientFormat),
		decBody:     structpb.NewNumberValue(float64(d.BodyBytes)),
	}}
	switch {
	case d.HasBetas:
		dec.Fields[decBetas] = str(d.Betas)
	case d.betasKnown:
		dec.Fields[decBetas] = structpb.NewNullValue()
	}
	ns := &structpb.Struct{Fields: map[string]*structpb.Value{metadataDecision: structpb.NewStructValue(dec)}}
	return &structpb.Struct{Fields: map[string]*structpb.Value{metadataNamespace: structpb.NewStructValue(ns)}}
}

// Errors decisionFrom returns.
var (
	errDecisionMissing = errors.New("no routing decision in dynamic metadata namespace " + metadataNamespace +
		"; envoy.yaml must let the policy filter receive it (metadata_options.receiving_namespaces) and the adapter filter forward it (metadata_options.forwarding_namespaces)")
	errDecisionInvalid = errors.New("the routing decision in dynamic metadata is malformed")
)

// decisionFrom reads the decision from a message's metadata_context.
func decisionFrom(req *extprocv3.ProcessingRequest) (Decision, error) {
	ns := req.GetMetadataContext().GetFilterMetadata()[metadataNamespace]
	v, ok := ns.GetFields()[metadataDecision]
	if !ok {
		return Decision{}, errDecisionMissing
	}
	f := v.GetStructValue().GetFields()
	if f == nil {
		return Decision{}, errDecisionInvalid
	}
	d := Decision{
		RecordID: f[decRecordID].GetStringValue(),
		Route:    f[decRoute].GetStringValue(),
		Path:     f[decPath].GetStringValue(),
		KeyID:    f[decKeyID].GetStringValue(),
		Model:    f[decModel].GetStringValue(),
		// Empty from a replica that did not write it: the default format.
		ClientFormat: f[decFormat].GetStringValue(),
		BodyBytes:    int(f[decBody].GetNumberValue()),
	}
	if b, ok := f[decBetas]; ok {
		// Absent from a replica that did not write it: the header stays.
		d.betasKnown = true
		if sv, isString := b.GetKind().(*structpb.Value_StringValue); isString {
			d.Betas, d.HasBetas = sv.StringValue, true
		}
	}
	if d.Route == "" || d.Path == "" {
		return Decision{}, errDecisionInvalid
	}
	return d, nil
}

// The attempt trail. Each attempt's adapter writes the whole trail so far,
// the earlier attempts' entries (which it reads from the decision's namespace,
// which it forwards) and its own, into the decision's namespace under key
// metadataAttempts, as one string. Attempts are sequential, so the last write
// holds every attempt. The policy filter forwards no namespace: Envoy copies a
// forwarded namespace into every message of the filter, each response body
// chunk included, which cost 780 to 3,900 allocations and 40 to 150 µs of CPU
// per request in the bench. It asks instead for the trail alone as a response
// attribute (AttemptsAttribute, a CEL expression), which Envoy evaluates once,
// for the response headers message.
const metadataAttempts = "attempts"

// AttemptsAttribute is the response attribute the policy filter requests to
// read the attempt trail: the CEL expression whose value is the string the
// attempts wrote. envoy.yaml names it; its lint checks it.
const AttemptsAttribute = "metadata.filter_metadata['" + metadataNamespace + "']['" + metadataAttempts + "']"

// The trail's encoding: one line per attempt, its fields separated by tabs,
// which none can hold (provider names never do; the policy role refuses a
// model id with control characters). Fields are only ever added at the end of
// a line, and a reader ignores those it does not know, so replicas one version
// apart read each other's trails.
const (
	attemptSep      = "\n"
	attemptFieldSep = "\t"
)

// maxAttempts bounds the trail: Envoy's retries are few, and the metadata is
// Tollgate's own, but a record must stay small.
const maxAttempts = 16

// trailFrom returns the attempt trail the earlier attempts of the request
// wrote, from an adapter message's metadata_context.
func trailFrom(req *extprocv3.ProcessingRequest) string {
	return req.GetMetadataContext().GetFilterMetadata()[metadataNamespace].GetFields()[metadataAttempts].GetStringValue()
}

// attemptMetadata returns the dynamic_metadata of an attempt's reply: the
// trail with a's entry added, replacing an entry of the same number. A line is
// "N provider model" at the attempt's request headers and gains "status ms"
// at its response headers (an attempt without response headers keeps three
// fields).
func attemptMetadata(trail string, a records.Attempt) *structpb.Struct {
	var b strings.Builder
	for line := range strings.SplitSeq(trail, attemptSep) {
		n, _, _ := strings.Cut(line, attemptFieldSep)
		if line == "" || n == strconv.Itoa(a.N) {
			continue
		}
		b.WriteString(line)
		b.WriteString(attemptSep)
	}
	b.WriteString(strconv.Itoa(a.N) + attemptFieldSep + a.Provider + attemptFieldSep + a.Model)
	if a.Status != 0 {
		// Status and time to headers, once the attempt has response headers.
		b.WriteString(attemptFieldSep + strconv.Itoa(a.Status) + attemptFieldSep +
			strconv.FormatFloat(a.TimeToHeadersMS, 'f', 1, 64))
	}
	ns := &structpb.Struct{Fields: map[string]*structpb.Value{metadataAttempts: structpb.NewStringValue(b.String())}}
	return &structpb.Struct{Fields: map[string]*structpb.Value{metadataNamespace: structpb.NewStructValue(ns)}}
}

// attemptsFrom reads the attempt trail from the response attribute of a
// policy-role message, in attempt order.
func attemptsFrom(req *extprocv3.ProcessingRequest) []records.Attempt {
	trail := req.GetAttributes()[attrNamespace].GetFields()[AttemptsAttribute].GetStringValue()
	if trail == "" {
		return nil
	}
	var out []records.Attempt
	for line := range strings.SplitSeq(trail, attemptSep) {
		f := strings.Split(line, attemptFieldSep)
		n, err := strconv.Atoi(f[0])
		if len(f) < 3 || err != nil || n < 1 || n > maxAttempts || len(out) == maxAttempts {
			continue
		}
		a := records.Attempt{N: n, Provider: f[1], Model: f[2]}
		if len(f) >= 5 {
			// Unparsable values stay zero: a record is written whatever the trail holds.
			a.Status, _ = strconv.Atoi(f[3])
			if ms, err := strconv.ParseFloat(f[4], 64); err == nil && ms >= 0 {
				a.TimeToHeadersMS = ms
			}
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b records.Attempt) int { return a.N - b.N })
	return out
}

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
	// logs and error bodies name.
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
}

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
	}}
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
	}
	if d.Route == "" || d.Path == "" {
		return Decision{}, errDecisionInvalid
	}
	return d, nil
}

// Each attempt's adapter adds the attempt to the request's dynamic metadata,
// in its own namespace, metadataAttempts, under its number ("1", "2", ...): a
// reply's namespace is merged field by field (StreamInfoImpl::setDynamicMetadata
// MergeFrom), so every attempt's entry stays. The policy filter forwards that
// namespace, not the decision's: Envoy copies a forwarded namespace into every
// message of the filter, each response body chunk included, so what the
// policy filter forwards is kept small. The policy role reads the trail from
// the metadata_context of the response headers message.
const metadataAttempts = "tollgate.attempts"

// An attempt's entry is one string, its fields separated by newlines, which
// none can hold (provider names never do; the policy role refuses a model id
// with control characters): fewer allocations than a Struct on every message
// that carries it. Fields are only ever added at the end, and a reader ignores
// those it does not know, so replicas one version apart read each other's.
const attemptFieldSep = "\n"

// attemptMetadata returns the dynamic_metadata an attempt's reply writes.
func attemptMetadata(a records.Attempt) *structpb.Struct {
	ns := &structpb.Struct{Fields: map[string]*structpb.Value{
		strconv.Itoa(a.N): structpb.NewStringValue(a.Provider + attemptFieldSep + a.Model)}}
	return &structpb.Struct{Fields: map[string]*structpb.Value{metadataAttempts: structpb.NewStructValue(ns)}}
}

// maxAttempts bounds the trail read from metadata: Envoy's retries are few,
// and the metadata is Tollgate's own, but a record must stay small.
const maxAttempts = 16

// attemptsFrom reads the attempt trail from a message's metadata_context, in
// attempt order.
func attemptsFrom(req *extprocv3.ProcessingRequest) []records.Attempt {
	fields := req.GetMetadataContext().GetFilterMetadata()[metadataAttempts].GetFields()
	if len(fields) == 0 {
		return nil
	}
	out := make([]records.Attempt, 0, len(fields))
	for k, v := range fields {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || n > maxAttempts {
			continue
		}
		provider, rest, _ := strings.Cut(v.GetStringValue(), attemptFieldSep)
		model, _, _ := strings.Cut(rest, attemptFieldSep)
		out = append(out, records.Attempt{N: n, Provider: provider, Model: model})
	}
	slices.SortFunc(out, func(a, b records.Attempt) int { return a.N - b.N })
	return out
}

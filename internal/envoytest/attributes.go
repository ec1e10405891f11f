package envoytest

import (
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// hostMetadataAttr matches xds.upstream_host_metadata.filter_metadata['ns']['key'].
var hostMetadataAttr = regexp.MustCompile(`^xds\.upstream_host_metadata\.filter_metadata\[['"]([^'"]+)['"]\]\[['"]([^'"]+)['"]\]$`)

// simpleAttributes are the CEL attribute paths the harness computes; any
// other configured attribute fails Start.
var simpleAttributes = map[string]bool{
	"request.path": true, "request.url_path": true, "request.host": true, "request.scheme": true,
	"request.method": true, "request.id": true, "request.protocol": true, "request.useragent": true,
	"response.code": true, "xds.cluster_name": true, "xds.route_name": true,
	"upstream.request_attempt_count": true, "upstream.address": true,
	"source.address": true, "destination.address": true,
}

// dynamicMetadataAttr matches metadata.filter_metadata['ns'] and
// metadata.filter_metadata['ns']['key']: the request's dynamic metadata.
var dynamicMetadataAttr = regexp.MustCompile(`^metadata\.filter_metadata\[['"]([^'"]+)['"]\](?:\[['"]([^'"]+)['"]\])?$`)

func knownAttribute(a string) bool {
	return simpleAttributes[a] || hostMetadataAttr.MatchString(a) || dynamicMetadataAttr.MatchString(a)
}

// attributes evaluates the configured attributes for the first message of a
// direction, keyed by envoy.filters.http.ext_proc. Attributes that have no
// value at this point are omitted, as a failed CEL evaluation is in Envoy.
// Integers are numbers; everything else is a string.
func (f *extProcFilter) attributes(d direction) map[string]*structpb.Struct {
	names := f.cfg.requestAttributes
	if d == dirResponse {
		names = f.cfg.responseAttributes
	}
	if len(names) == 0 {
		return nil
	}
	fields := map[string]*structpb.Value{}
	for _, n := range names {
		if v, ok := f.attribute(n); ok {
			fields[n] = v
		}
	}
	return map[string]*structpb.Struct{extProcAttributesKey: {Fields: fields}}
}

func (f *extProcFilter) attribute(name string) (*structpb.Value, bool) {
	s := f.s()
	req := s.reqHeaders
	str := func(v string, ok bool) (*structpb.Value, bool) {
		if !ok {
			return nil, false
		}
		return structpb.NewStringValue(v), true
	}
	// The attempt whose host the attribute describes: the filter's own
	// attempt upstream, the last attempt downstream.
	att := f.chain.att
	if att == nil && s.router != nil {
		att = s.router.att
	}
	switch name {
	case "request.path":
		return str(req.get(":path"))
	case "request.url_path":
		p, ok := req.get(":path")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return str(p, ok)
	case "request.host":
		return str(req.get(":authority"))
	case "request.scheme":
		return str(req.get(":scheme"))
	case "request.method":
		return str(req.get(":method"))
	case "request.id":
		return str(req.get("x-request-id"))
	case "request.useragent":
		return str(req.get("user-agent"))
	case "request.protocol":
		return str(s.r.Proto, true)
	case "response.code":
		if f.enc.headers == nil {
			return nil, false
		}
		c, err := strconv.Atoi(firstValue(f.enc.headers, ":status"))
		if err != nil {
			return nil, false
		}
		return structpb.NewNumberValue(float64(c)), true
	case "xds.cluster_name":
		if s.router == nil || s.router.cluster == nil {
			return nil, false
		}
		return str(s.router.cluster.name, true)
	case "xds.route_name":
		if s.route == nil || s.route.name == "" {
			return nil, false
		}
		return str(s.route.name, true)
	case "upstream.request_attempt_count":
		if att == nil {
			return nil, false
		}
		return structpb.NewNumberValue(float64(att.number)), true
	case "upstream.address":
		if att == nil {
			return nil, false
		}
		return str(att.host.addr, true)
	case "source.address":
		return str(s.r.RemoteAddr, true)
	case "destination.address":
		if a, ok := s.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			return str(a.String(), true)
		}
		return nil, false
	}
	if m := dynamicMetadataAttr.FindStringSubmatch(name); m != nil {
		return dynamicMetadataValue(s.meta.ns[m[1]], m[2])
	}
	if m := hostMetadataAttr.FindStringSubmatch(name); m != nil {
		if att == nil {
			return nil, false
		}
		ns := att.host.metadata.GetFilterMetadata()[m[1]]
		v, ok := ns.GetFields()[m[2]]
		if !ok {
			return nil, false
		}
		if sv, isStr := v.GetKind().(*structpb.Value_StringValue); isStr {
			return structpb.NewStringValue(sv.StringValue), true
		}
		b, _ := v.MarshalJSON()
		return structpb.NewStringValue(string(b)), true
	}
	return nil, false
}

// dynamicMetadataValue is the attribute value of the dynamic metadata
// namespace ns (key empty) or of its field key, as ext_proc sends it. Envoy
// evaluates each attribute as a CEL expression against the live StreamInfo
// (StreamActivation::FindValue in source/extensions/filters/common/expr/evaluator.cc
// returns dynamicMetadata() for "metadata") when it builds the first message
// of a direction (Filter::addAttributes, ext_proc.cc), and
// ExpressionManager::evaluateAttributes (ext_proc/matching_utils.cc) keeps
// bools and integers, and sends everything else as the string
// Filters::Common::Expr::print gives: a string as it is, a double in
// absl::StrCat's shortest form (a Struct's numbers are doubles), null as
// "NULL", a map (a Struct) as "CelMap value" and a list as "CelList value". A
// missing namespace or key is an evaluation error, and the attribute is left
// out.
func dynamicMetadataValue(ns *structpb.Struct, key string) (*structpb.Value, bool) {
	if ns == nil {
		return nil, false
	}
	if key == "" {
		return structpb.NewStringValue("CelMap value"), true
	}
	v, ok := ns.GetFields()[key]
	if !ok {
		return nil, false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return structpb.NewStringValue(k.StringValue), true
	case *structpb.Value_BoolValue:
		return structpb.NewBoolValue(k.BoolValue), true
	case *structpb.Value_NumberValue:
		return structpb.NewStringValue(strconv.FormatFloat(k.NumberValue, 'g', 6, 64)), true
	case *structpb.Value_StructValue:
		return structpb.NewStringValue("CelMap value"), true
	case *structpb.Value_ListValue:
		return structpb.NewStringValue("CelList value"), true
	}
	return structpb.NewStringValue("NULL"), true
}

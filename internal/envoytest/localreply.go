package envoytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// localReplyConfig is the HCM local_reply_config: mappers tried in order, the
// first whose filter matches rewrites the reply, then the top-level
// body_format (if any) formats the body.
type localReplyConfig struct {
	mappers    []*replyMapper
	bodyFormat *bodyFormat
}

type replyMapper struct {
	match        func(rc *replyContext) bool
	statusCode   int
	body         *string
	bodyFormat   *bodyFormat
	headersToAdd []*corev3.HeaderValueOption
}

type bodyFormat struct {
	json        any    // a decoded Struct, when json_format is used
	text        string // otherwise
	contentType string
}

// formatOperator matches Envoy substitution operators such as %RESPONSE_CODE%
// and %REQ(x-request-id)%.
var formatOperator = regexp.MustCompile(`%([A-Z_]+)(\(([^)]*)\))?(:[0-9]+)?%`)

var supportedOperators = map[string]bool{
	"LOCAL_REPLY_BODY": true, "RESPONSE_CODE": true, "RESPONSE_CODE_DETAILS": true, "REQ": true,
}

func buildLocalReply(lr *hcmv3.LocalReplyConfig) (*localReplyConfig, error) {
	c := &localReplyConfig{}
	if lr == nil {
		return c, nil
	}
	if err := onlyFields("local_reply_config", lr, "mappers", "body_format"); err != nil {
		return nil, err
	}
	var err error
	if lr.GetBodyFormat() != nil {
		if c.bodyFormat, err = buildBodyFormat(lr.GetBodyFormat()); err != nil {
			return nil, err
		}
	}
	for i, pm := range lr.GetMappers() {
		if err := onlyFields("mapper", pm, "filter", "status_code", "body", "body_format_override", "headers_to_add"); err != nil {
			return nil, err
		}
		m := &replyMapper{statusCode: int(pm.GetStatusCode().GetValue()), headersToAdd: pm.GetHeadersToAdd()}
		if m.match, err = buildFilter(pm.GetFilter()); err != nil {
			return nil, fmt.Errorf("mapper %d: %w", i, err)
		}
		if b := pm.GetBody(); b != nil {
			s := b.GetInlineString()
			if s == "" && len(b.GetInlineBytes()) > 0 {
				s = string(b.GetInlineBytes())
			}
			if b.GetFilename() != "" || b.GetEnvironmentVariable() != "" {
				return nil, fmt.Errorf("mapper %d: only inline bodies are supported", i)
			}
			m.body = &s
		}
		if pm.GetBodyFormatOverride() != nil {
			if m.bodyFormat, err = buildBodyFormat(pm.GetBodyFormatOverride()); err != nil {
				return nil, fmt.Errorf("mapper %d: %w", i, err)
			}
		}
		c.mappers = append(c.mappers, m)
	}
	return c, nil
}

// buildFilter supports the mapper filters Tollgate's envoy.yaml uses:
// status_code_filter, response_flag_filter (no flags listed: any flag), and
// and_filter / or_filter of those.
func buildFilter(f *accesslogv3.AccessLogFilter) (func(*replyContext) bool, error) {
	switch {
	case f.GetStatusCodeFilter() != nil:
		sc := f.GetStatusCodeFilter()
		want := int(sc.GetComparison().GetValue().GetDefaultValue())
		switch sc.GetComparison().GetOp() {
		case accesslogv3.ComparisonFilter_EQ:
			return func(rc *replyContext) bool { return rc.code == want }, nil
		case accesslogv3.ComparisonFilter_GE:
			return func(rc *replyContext) bool { return rc.code >= want }, nil
		case accesslogv3.ComparisonFilter_LE:
			return func(rc *replyContext) bool { return rc.code <= want }, nil
		case accesslogv3.ComparisonFilter_NE:
			return func(rc *replyContext) bool { return rc.code != want }, nil
		}
		return nil, fmt.Errorf("unsupported comparison %v", sc.GetComparison().GetOp())
	case f.GetResponseFlagFilter() != nil:
		flags := f.GetResponseFlagFilter().GetFlags()
		return func(rc *replyContext) bool {
			flag := responseFlag(rc.details)
			if len(flags) == 0 {
				return flag != ""
			}
			return flag != "" && slices.Contains(flags, flag)
		}, nil
	case f.GetAndFilter() != nil, f.GetOrFilter() != nil:
		list, and := f.GetAndFilter().GetFilters(), true
		if f.GetOrFilter() != nil {
			list, and = f.GetOrFilter().GetFilters(), false
		}
		var subs []func(*replyContext) bool
		for _, sf := range list {
			m, err := buildFilter(sf)
			if err != nil {
				return nil, err
			}
			subs = append(subs, m)
		}
		return func(rc *replyContext) bool {
			for _, m := range subs {
				if m(rc) != and {
					return !and
				}
			}
			return and
		}, nil
	}
	return nil, fmt.Errorf("unsupported mapper filter %v: the harness supports status_code_filter, response_flag_filter, and_filter and or_filter", f)
}

// responseFlag is the Envoy response flag of a local reply of the harness,
// from its response code details. Replies the filters send themselves (an
// ext_proc immediate response, a processor error) carry none, as in Envoy.
func responseFlag(details string) string {
	switch {
	case details == "route_not_found":
		return "NR"
	case details == "cluster_not_found":
		return "NC"
	case details == "upstream_response_timeout", details == "upstream_per_try_timeout", details == "upstream_per_try_idle_timeout":
		return "UT"
	case details == "stream_idle_timeout":
		return "SI"
	case strings.HasPrefix(details, "upstream_reset_before_response_started{connection_failure"):
		return "UF"
	case strings.HasPrefix(details, "upstream_reset_before_response_started"):
		return "UC"
	case details == "no_healthy_upstream":
		return "UH"
	}
	return ""
}

func buildBodyFormat(sf *corev3.SubstitutionFormatString) (*bodyFormat, error) {
	if err := onlyFields("body format", sf, "text_format", "json_format", "text_format_source", "content_type"); err != nil {
		return nil, err
	}
	bf := &bodyFormat{contentType: sf.GetContentType()}
	var texts []string
	switch {
	case sf.GetJsonFormat() != nil:
		bf.json = sf.GetJsonFormat().AsMap()
		if bf.contentType == "" {
			bf.contentType = "application/json"
		}
		collectStrings(bf.json, &texts)
	case sf.GetTextFormatSource() != nil:
		bf.text = sf.GetTextFormatSource().GetInlineString()
		texts = append(texts, bf.text)
	default:
		bf.text = sf.GetTextFormat()
		texts = append(texts, bf.text)
	}
	if bf.contentType == "" {
		bf.contentType = "text/plain"
	}
	for _, t := range texts {
		for _, m := range formatOperator.FindAllStringSubmatch(t, -1) {
			if !supportedOperators[m[1]] {
				return nil, fmt.Errorf("substitution operator %%%s%% is not supported by envoytest", m[1])
			}
		}
	}
	return bf, nil
}

func collectStrings(v any, out *[]string) {
	switch t := v.(type) {
	case string:
		*out = append(*out, t)
	case map[string]any:
		for _, x := range t {
			collectStrings(x, out)
		}
	case []any:
		for _, x := range t {
			collectStrings(x, out)
		}
	}
}

// replyContext carries what the formatter operators read.
type replyContext struct {
	code    int
	body    string
	details string
	req     *headerMap
}

func (rc *replyContext) operator(name, arg string) (any, bool) {
	switch name {
	case "LOCAL_REPLY_BODY":
		return rc.body, true
	case "RESPONSE_CODE":
		return rc.code, true
	case "RESPONSE_CODE_DETAILS":
		return rc.details, true
	case "REQ":
		if rc.req != nil {
			if v, ok := rc.req.get(strings.ToLower(arg)); ok {
				return v, true
			}
		}
		return nil, true
	}
	return nil, false
}

// substitute replaces every operator in s. A string that is exactly one
// operator keeps the operator's type (a number for %RESPONSE_CODE%), as in
// Envoy's JSON formatter; elsewhere values are rendered as text and a missing
// value as "-".
func (rc *replyContext) substitute(s string, typed bool) any {
	if typed {
		if m := formatOperator.FindStringSubmatch(s); m != nil && m[0] == s {
			v, _ := rc.operator(m[1], m[3])
			return v
		}
	}
	return formatOperator.ReplaceAllStringFunc(s, func(op string) string {
		m := formatOperator.FindStringSubmatch(op)
		v, _ := rc.operator(m[1], m[3])
		switch t := v.(type) {
		case nil:
			return "-"
		case int:
			return strconv.Itoa(t)
		case string:
			if t == "" && !typed {
				return ""
			}
			return t
		}
		return fmt.Sprint(v)
	})
}

func (rc *replyContext) substituteJSON(v any) any {
	switch t := v.(type) {
	case string:
		return rc.substitute(t, true)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = rc.substituteJSON(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = rc.substituteJSON(x)
		}
		return out
	}
	return v
}

func (bf *bodyFormat) render(rc *replyContext) string {
	if bf.json == nil {
		return rc.substitute(bf.text, false).(string)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(rc.substituteJSON(bf.json)) // Encode appends the newline Envoy's JSON formatter adds.
	return buf.String()
}

// rewrite applies the config to a local reply, as Envoy's LocalReply::rewrite:
// it may change the status and body, add headers and choose the content type.
// formatted reports whether a body format set the content type.
func (c *localReplyConfig) rewrite(rc *replyContext, h *headerMap) (contentType string, formatted bool) {
	format := c.bodyFormat
	for _, m := range c.mappers {
		if !m.match(rc) {
			continue
		}
		if m.statusCode != 0 {
			rc.code = m.statusCode
			h.set(":status", strconv.Itoa(rc.code))
		}
		if m.body != nil {
			rc.body = *m.body
		}
		for _, opt := range m.headersToAdd {
			hv := opt.GetHeader()
			v := hv.GetValue()
			if len(hv.GetRawValue()) > 0 {
				v = string(hv.GetRawValue())
			}
			if opt.GetAppend().GetValue() {
				h.add(strings.ToLower(hv.GetKey()), v)
			} else {
				h.set(strings.ToLower(hv.GetKey()), v)
			}
		}
		if m.bodyFormat != nil {
			format = m.bodyFormat
		}
		break
	}
	if format == nil {
		return "text/plain", false
	}
	rc.body = format.render(rc)
	return format.contentType, true
}

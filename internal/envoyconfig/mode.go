package envoyconfig

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// MergeModeOverride returns the processing mode in effect after a headers
// reply carried mode_override o, merged into cur as Envoy merges it
// (ENVOY-EXTPROC section 2): header and trailer modes left DEFAULT keep the
// current ones, body modes always replace both (an unset one becomes NONE), and
// request_header_mode is ignored. Whether the override is honoured at all
// (allow_mode_override, allowed_override_modes, FULL_DUPLEX_STREAMED) is the
// caller's to check.
func MergeModeOverride(cur, o *extprocv3.ProcessingMode) *extprocv3.ProcessingMode {
	m := &extprocv3.ProcessingMode{
		RequestHeaderMode:   cur.GetRequestHeaderMode(),
		RequestBodyMode:     o.GetRequestBodyMode(),
		RequestTrailerMode:  cur.GetRequestTrailerMode(),
		ResponseHeaderMode:  cur.GetResponseHeaderMode(),
		ResponseBodyMode:    o.GetResponseBodyMode(),
		ResponseTrailerMode: cur.GetResponseTrailerMode(),
	}
	if v := o.GetResponseHeaderMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.ResponseHeaderMode = v
	}
	if v := o.GetRequestTrailerMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.RequestTrailerMode = v
	}
	if v := o.GetResponseTrailerMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.ResponseTrailerMode = v
	}
	return m
}

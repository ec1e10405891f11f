package envoytest

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// dynamicMetadata is the untyped dynamic metadata (filter_metadata) of one
// downstream request's StreamInfo. Envoy's upstream filter manager returns
// the downstream StreamInfo from streamInfo()
// (source/common/router/upstream_request.cc, UpstreamFilterManager), so the
// downstream ext_proc filters and the upstream ones of every attempt read and
// write this one store. It lives on the request's event loop, which is the
// only goroutine that touches it; what leaves it for a gRPC send goroutine is
// a copy.
type dynamicMetadata struct {
	ns map[string]*structpb.Struct
}

// write applies a reply's dynamic_metadata as ext_proc's
// Filter::setDynamicMetadata (ext_proc.cc) does: each top-level key is a
// namespace; a namespace listed in receiving is merged into the store with
// StreamInfoImpl::setDynamicMetadata, that is (*filter_metadata)[ns].MergeFrom
// (source/common/stream_info/stream_info_impl.h); any other is dropped. With
// no receiving namespaces nothing is accepted. MergeFrom on a Struct copies
// its fields map entry by entry, each replacing the value of the same key
// (a nested Struct is replaced, not merged); proto.Merge does the same. A key
// whose value is not a Struct writes an empty Struct (struct_value() of a
// non-struct Value is the default instance), which creates the namespace.
// It returns the dropped namespaces.
func (d *dynamicMetadata) write(receiving []string, dm *structpb.Struct) (dropped []string) {
	for name, v := range dm.GetFields() {
		if !slices.Contains(receiving, name) {
			dropped = append(dropped, name)
			continue
		}
		if d.ns == nil {
			d.ns = map[string]*structpb.Struct{}
		}
		cur, ok := d.ns[name]
		if !ok {
			cur = &structpb.Struct{}
			d.ns[name] = cur
		}
		if sv := v.GetStructValue(); sv != nil {
			proto.Merge(cur, sv)
		}
	}
	slices.Sort(dropped)
	return dropped
}

// forward builds a message's metadata_context as ext_proc's
// Filter::addDynamicMetadata (ext_proc.cc) does: each namespace listed in
// forwarding that the store holds is copied into filter_metadata. Envoy would
// then look for a missing namespace in the connection's dynamic metadata,
// which no filter the harness runs ever writes. The Metadata is always
// present, empty when nothing is forwarded, and a deep copy, so the gRPC send
// goroutine never shares memory with the store.
func (d *dynamicMetadata) forward(forwarding []string) *corev3.Metadata {
	md := &corev3.Metadata{}
	for _, name := range forwarding {
		s, ok := d.ns[name]
		if !ok {
			continue
		}
		if md.FilterMetadata == nil {
			md.FilterMetadata = map[string]*structpb.Struct{}
		}
		md.FilterMetadata[name] = proto.Clone(s).(*structpb.Struct)
	}
	return md
}

// writesMetadata reports whether Envoy applies the reply's dynamic_metadata:
// Filter::onReceiveMessage (ext_proc.cc) calls setDecoderDynamicMetadata or
// setEncoderDynamicMetadata for the six headers, body and trailers replies,
// before it checks that the reply was expected (so a spurious one writes
// too), and for an immediate_response unless disable_immediate_response is
// set. Any other reply (none, or streamed_immediate_response) writes nothing.
func writesMetadata(resp *extprocsvc.ProcessingResponse, disableImmediate bool) bool {
	switch resp.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_RequestHeaders, *extprocsvc.ProcessingResponse_ResponseHeaders,
		*extprocsvc.ProcessingResponse_RequestBody, *extprocsvc.ProcessingResponse_ResponseBody,
		*extprocsvc.ProcessingResponse_RequestTrailers, *extprocsvc.ProcessingResponse_ResponseTrailers:
		return true
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		return !disableImmediate
	}
	return false
}

// receiveMetadata writes resp's dynamic_metadata into the request's store
// under the filter's receiving namespaces.
func (f *extProcFilter) receiveMetadata(resp *extprocsvc.ProcessingResponse) {
	if resp.GetDynamicMetadata() == nil || !writesMetadata(resp, f.cfg.disableImmediateResponse) {
		return
	}
	dropped := f.s().meta.write(f.cfg.receivingNamespaces, resp.GetDynamicMetadata())
	if len(dropped) > 0 {
		f.s().h.count(func(s *Stats) { s.DynamicMetadataDropped += int64(len(dropped)) })
		f.s().h.logf("envoytest: ext_proc %s: dynamic_metadata namespace(s) %v not in receiving_namespaces; dropped", f.cfg.name, dropped)
	}
}

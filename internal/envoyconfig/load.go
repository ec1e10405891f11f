// Package envoyconfig loads Tollgate's envoy.yaml strictly into go-control-plane
// protos and checks it (ENVOY-EXTPROC section 8).
//
//   - Parse and LoadFile decode strictly: unknown fields, duplicate YAML keys,
//     enum typos, bad durations and unregistered @types are errors.
//   - Validate runs protoc-gen-validate on the bootstrap and inside every Any.
//   - Lint checks what the protos cannot express: Envoy's own load-time ext_proc
//     checks, filter order, cluster references, HTTP/2 to the processor, route
//     timeouts, buffer limits and the properties Tollgate relies on.
//   - Check does all three for a file.
//
// NewModel gives an indexed view of a parsed bootstrap (listeners, filter
// chains, routes, clusters, endpoints, ext_proc filters with their roles) for
// Lint and for tools such as the envoytest harness that are driven by
// envoy.yaml.
//
// The protojson errors of Parse locate problems by JSON offset, not YAML line.
package envoyconfig

import (
	"fmt"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// Every @type that envoy.yaml may name must be registered here.
	_ "github.com/cncf/xds/go/xds/type/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// LoadFile reads and parses the Envoy bootstrap at path. See Parse.
func LoadFile(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return bs, nil
}

// Parse converts YAML to JSON (rejecting duplicate keys) and unmarshals it into a
// Bootstrap, rejecting unknown fields and unresolvable @types. It does not validate;
// see Validate.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, bs); err != nil {
		return nil, fmt.Errorf("proto: %w", err)
	}
	return bs, nil
}

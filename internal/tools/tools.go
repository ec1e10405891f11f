//go:build tools

// Package tools pins modules that several packages start using in parallel, so
// go.mod does not churn while they land. Removed once every import is real.
package tools

import (
	_ "github.com/anthropics/anthropic-sdk-go/v2"
	_ "github.com/compose-spec/compose-go/v2/loader"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
	_ "go.yaml.in/yaml/v3"
	_ "google.golang.org/grpc"
)

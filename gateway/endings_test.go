package gateway

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/endings"
	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/records"
)

// TestServeStoresAccessLogEndingsInRedis: the gRPC port serves Envoy's
// access log too, and with Redis the ending of an entry is stored there,
// where every replica's policy role can read it.
func TestServeStoresAccessLogEndingsInRedis(t *testing.T) {
	rdb := redistest.Start(t)
	grpcAddr, _, cancel, done, logs := startServe(t, func(c *Config) { c.RedisURL = rdb.URL() })
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	id := records.NewID(time.Now())
	dec, err := structpb.NewStruct(map[string]any{"decision": map[string]any{"record_id": id, "route": "demo"}})
	if err != nil {
		t.Fatal(err)
	}
	entry := &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			ResponseFlags: &accesslogdatav3.ResponseFlags{UpstreamConnectionTermination: true},
			Metadata:      &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"tollgate": dec}},
		},
		Response: &accesslogdatav3.HTTPResponseProperties{ResponseCodeDetails: "upstream_reset_after_response_started{connection_termination}"},
	}
	msg := &accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "envoy"}, LogName: "tollgate.endings"},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*accesslogdatav3.HTTPAccessLogEntry{entry}}},
	}

	// The server may not listen yet: retry the stream until it takes the entry.
	rc := redis.NewClient(&redis.Options{Addr: rdb.Addr()})
	defer rc.Close()
	var got string
	for i := 0; i < 200 && got == ""; i++ {
		if st, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background()); err == nil {
			if st.Send(msg) == nil {
				st.CloseAndRecv() //nolint:errcheck // the entry is read before the stream ends
			}
		}
		got = rc.Get(context.Background(), endings.KeyPrefix+id).Val()
		if got == "" {
			time.Sleep(25 * time.Millisecond)
		}
	}
	if got != "UC\tupstream_reset_after_response_started{connection_termination}" {
		t.Fatalf("ending in Redis %q; logs:\n%s", got, logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

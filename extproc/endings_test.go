package extproc

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/records"
)

// mapEndings is an Endings in a map; fail makes every call fail.
type mapEndings struct {
	mu   sync.Mutex
	m    map[string]string
	fail bool
}

func (e *mapEndings) Put(_ context.Context, id, v string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail {
		return errors.New("store down")
	}
	if e.m == nil {
		e.m = map[string]string{}
	}
	e.m[id] = v
	return nil
}

func (e *mapEndings) Get(_ context.Context, id string) (string, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail {
		return "", false, errors.New("store down")
	}
	v, ok := e.m[id]
	return v, ok, nil
}

// sendAccessLog sends msgs on one access-log stream to s over loopback and
// waits for the stream's end, after which every entry was handled.
func sendAccessLog(t *testing.T, s *Server, msgs ...*accesslogv3.StreamAccessLogsMessage) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	accesslogv3.RegisterAccessLogServiceServer(gs, s.AccessLogServer())
	go gs.Serve(lis) //nolint:errcheck
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CloseAndRecv(); err != nil {
		t.Fatalf("the receiver ended the stream with %v", err)
	}
}

func httpLogs(es ...*accesslogdatav3.HTTPAccessLogEntry) *accesslogv3.StreamAccessLogsMessage {
	return &accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: es}}}
}

// logEntry is an access-log entry whose dynamic metadata namespace
// "tollgate" is ns (none when nil), with flags and details.
func logEntry(ns map[string]any, flags *accesslogdatav3.ResponseFlags, details string) *accesslogdatav3.HTTPAccessLogEntry {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	if ns != nil {
		st, err := structpb.NewStruct(ns)
		if err != nil {
			panic(err)
		}
		md.FilterMetadata[metadataNamespace] = st
	}
	return &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{ResponseFlags: flags, Metadata: md},
		Response:         &accesslogdatav3.HTTPResponseProperties{ResponseCodeDetails: details},
	}
}

func decisionNS(id string) map[string]any {
	return map[string]any{metadataDecision: map[string]any{decRecordID: id, decRoute: "demo"}}
}

// The receiver keeps the ending of an entry with a Tollgate record id and a
// flag that says who ended the request, and counts and drops the others:
// no Tollgate metadata, no decision, a record id that is not one, no flag
// worth keeping; TCP entries are not read. A bad entry does not end the
// stream.
func TestAccessLogReceiver(t *testing.T) {
	s := newTestServer(t)
	ends := &mapEndings{}
	s.endings = ends
	id := records.NewID(testNow)
	uc := &accesslogdatav3.ResponseFlags{UpstreamConnectionTermination: true, UpstreamRetryLimitExceeded: true}
	sendAccessLog(t, s,
		httpLogs(
			logEntry(nil, uc, ""), // another gateway's request
			logEntry(map[string]any{"attempts": "1\tdemo"}, uc, ""), // no decision
			logEntry(decisionNS("../../etc"), uc, ""),               // not a record id
			logEntry(decisionNS(strings.ToUpper(id)), uc, ""),       // not one of ours either
			logEntry(decisionNS(id), &accesslogdatav3.ResponseFlags{UpstreamRetryLimitExceeded: true}, ""),
			&accesslogdatav3.HTTPAccessLogEntry{}, // empty
		),
		&accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_TcpLogs{
			TcpLogs: &accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{}}},
		httpLogs(logEntry(decisionNS(id), uc, "upstream_reset_after_response_started{connection_termination}\tx")),
	)
	if got, want := ends.m[id], "UC\tupstream_reset_after_response_started{connection_termination}\tx"; got != want || len(ends.m) != 1 {
		t.Errorf("stored %q (%d endings); want %q alone", got, len(ends.m), want)
	}
	for result, want := range map[string]float64{alStored: 1, alNoRecord: 5, alNoFlags: 1, alError: 0} {
		if got := counterValue(s.metrics.accessLogEntries.WithLabelValues(result)); got != want {
			t.Errorf("entries %s: %v, want %v", result, got, want)
		}
	}

	// A store that fails is counted; the stream goes on.
	ends.fail = true
	sendAccessLog(t, s, httpLogs(logEntry(decisionNS(id), uc, "")))
	if got := counterValue(s.metrics.accessLogEntries.WithLabelValues(alError)); got != 1 {
		t.Errorf("entries error: %v, want 1", got)
	}
}

// Without an endings store the receiver drops every entry.
func TestAccessLogReceiverWithoutStore(t *testing.T) {
	s := newTestServer(t)
	sendAccessLog(t, s, httpLogs(logEntry(decisionNS(records.NewID(testNow)), &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}, "")))
	for _, r := range []string{alStored, alNoRecord, alNoFlags, alError} {
		if got := counterValue(s.metrics.accessLogEntries.WithLabelValues(r)); got != 0 {
			t.Errorf("%s %v without a store", r, got)
		}
	}
}

// Each ending's flags decide the outcome of a response cut after its
// headers; a provider's failure wins over the client's reset it caused.
func TestEndingOutcome(t *testing.T) {
	for _, tt := range []struct {
		stored    string
		outcome   records.Outcome
		errorType string
		ok        bool
	}{
		{"UC\tupstream_reset_after_response_started{connection_termination}", records.OutcomeIncomplete, errorTypeReset, true},
		{"UR\t", records.OutcomeIncomplete, errorTypeReset, true},
		{"UR,DR\t", records.OutcomeIncomplete, errorTypeReset, true},
		{"UT\tupstream_per_try_idle_timeout", records.OutcomeIncomplete, errorTypeStalled, true},
		{"UT\tresponse_timeout", records.OutcomeIncomplete, errorTypeTimeout, true},
		{"DC\tdownstream_remote_disconnect", records.OutcomeCancelled, "", true},
		{"DR\thttp2.remote_reset", records.OutcomeCancelled, "", true},
		{"SI\tstream_idle_timeout", "", "", false},
		{"", "", "", false},
	} {
		o, et, ok := decodeEnding(tt.stored).outcome()
		if o != tt.outcome || et != tt.errorType || ok != tt.ok {
			t.Errorf("%q: %q %q %v; want %q %q %v", tt.stored, o, et, ok, tt.outcome, tt.errorType, tt.ok)
		}
	}
	e := ending{flags: []string{"UT"}, details: strings.Repeat("d", 300)}
	if got := decodeEnding(e.encode()); len(got.details) != maxEndingDetails || got.flags[0] != "UT" {
		t.Errorf("encoded ending %+v", got)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// lateEndings answers Get with nothing until its n-th call.
type lateEndings struct {
	mapEndings
	mu    sync.Mutex
	calls int
	n     int
}

func (e *lateEndings) Get(ctx context.Context, id string) (string, bool, error) {
	e.mu.Lock()
	e.calls++
	early := e.calls < e.n
	e.mu.Unlock()
	if early {
		return "", false, nil
	}
	return e.mapEndings.Get(ctx, id)
}

// waitEnding polls until the ending is there, gives up at the wait's end,
// and returns at once when the store fails; each result is counted.
func TestWaitEnding(t *testing.T) {
	id := records.NewID(testNow)
	t.Run("found after a few polls", func(t *testing.T) {
		s := newTestServer(t)
		ends := &lateEndings{n: 3}
		ends.m = map[string]string{id: "UR\t"}
		s.endings, s.endingWait = ends, time.Minute
		e, ok := s.waitEnding(context.Background(), id)
		if o, et, _ := e.outcome(); !ok || o != records.OutcomeIncomplete || et != errorTypeReset || ends.calls != 3 {
			t.Errorf("ending %+v %v after %d polls", e, ok, ends.calls)
		}
		if n := counterValue(s.metrics.endingWaits.WithLabelValues(waitFound)); n != 1 {
			t.Errorf("found %v", n)
		}
	})
	t.Run("missed", func(t *testing.T) {
		s := newTestServer(t)
		s.endings, s.endingWait = &mapEndings{}, 50*time.Millisecond
		if _, ok := s.waitEnding(context.Background(), id); ok {
			t.Error("found an ending never stored")
		}
		if n := counterValue(s.metrics.endingWaits.WithLabelValues(waitMissed)); n != 1 {
			t.Errorf("missed %v", n)
		}
	})
	t.Run("store error", func(t *testing.T) {
		s := newTestServer(t)
		s.endings, s.endingWait = &mapEndings{fail: true}, time.Minute
		if _, ok := s.waitEnding(context.Background(), id); ok {
			t.Error("found an ending in a failing store")
		}
		if n := counterValue(s.metrics.endingWaits.WithLabelValues(waitError)); n != 1 {
			t.Errorf("errors %v", n)
		}
	})
}

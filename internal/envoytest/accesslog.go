package envoytest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	accesslogconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The HTTP connection manager's access_log, for the one logger the harness
// implements: envoy.access_loggers.http_grpc (HttpGrpcAccessLogConfig),
// optionally behind a response_flag_filter.
//
//   - An entry is written when the downstream stream is destroyed, after its
//     filters (ConnectionManagerImpl::ActiveStream::~ActiveStream, or the
//     filter manager's log(), source/common/http/conn_manager_impl.cc), so
//     after the ext_proc streams were closed; here, at the end of
//     requestStream.serve, after cleanup.
//   - Its response flags are those set on the request's StreamInfo; the
//     harness sets them where Envoy does (requestStream.setFlag's callers),
//     and, like ~ActiveStream, DC on a stream that ended with no flag and no
//     response code.
//   - Its common_properties.metadata is the StreamInfo's dynamic metadata
//     (GrpcCommon::Utility::extractCommonAccessLogProperties,
//     source/extensions/access_loggers/grpc/grpc_access_log_utils.cc).
//   - Entries are buffered and sent on one gRPC stream per logger: flushed
//     when the buffer reaches buffer_size_bytes (default 16384) and by a
//     timer every buffer_flush_interval (default 1 s); the first message of
//     a stream carries the identifier (node, log_name); a broken stream is
//     opened again at the next flush (GrpcAccessLogger::log and flush,
//     source/extensions/access_loggers/common/grpc_access_logger.h). Envoy
//     has one logger per worker thread; the harness has one per configured
//     access log, as a single-worker Envoy would. Entries buffered when the
//     harness closes are dropped, as Envoy drops them at shutdown.

// accessLogConfig is one access_log entry of the HTTP connection manager.
type accessLogConfig struct {
	name          string
	logName       string
	grpc          grpcTarget
	flushInterval time.Duration
	bufferBytes   int
	// filterFlags is the response_flag_filter: nil for no filter; empty
	// for "any flag".
	filterFlags []string
}

func buildAccessLog(al *accesslogconfv3.AccessLog) (*accessLogConfig, error) {
	what := "access_log " + al.GetName()
	if err := onlyFields(what, al, "name", "filter", "typed_config"); err != nil {
		return nil, err
	}
	cfg := &grpcalsv3.HttpGrpcAccessLogConfig{}
	if err := unmarshalAny(al.GetTypedConfig(), cfg); err != nil {
		return nil, fmt.Errorf("%s: only envoy.access_loggers.http_grpc is supported: %w", what, err)
	}
	if err := onlyFields(what, cfg, "common_config"); err != nil {
		return nil, err
	}
	cc := cfg.GetCommonConfig()
	if err := onlyFields(what+" common_config", cc, "log_name", "grpc_service", "transport_api_version",
		"buffer_flush_interval", "buffer_size_bytes"); err != nil {
		return nil, err
	}
	if cc.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("%s: transport_api_version must be V3", what)
	}
	t, err := buildGRPCTarget(what, cc.GetGrpcService())
	if err != nil {
		return nil, err
	}
	c := &accessLogConfig{name: al.GetName(), logName: cc.GetLogName(), grpc: t,
		flushInterval: durationOr(cc.GetBufferFlushInterval(), time.Second), bufferBytes: 16384}
	if v := cc.GetBufferSizeBytes(); v != nil {
		c.bufferBytes = int(v.GetValue())
	}
	if f := al.GetFilter(); f != nil {
		rf := f.GetResponseFlagFilter()
		if rf == nil {
			return nil, fmt.Errorf("%s: only a response_flag_filter is supported", what)
		}
		c.filterFlags = append([]string{}, rf.GetFlags()...)
	}
	return c, nil
}

// matches is ResponseFlagFilter::evaluate (source/common/access_log/
// access_log_impl.cc): any of the configured flags, or with none configured
// any flag at all.
func (c *accessLogConfig) matches(flags []string) bool {
	if c.filterFlags == nil {
		return true
	}
	if len(c.filterFlags) == 0 {
		return len(flags) > 0
	}
	for _, f := range flags {
		if slices.Contains(c.filterFlags, f) {
			return true
		}
	}
	return false
}

// accessLogger is one configured gRPC access log: its buffer and its stream.
type accessLogger struct {
	h    *Harness
	conf *accessLogConfig
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	pending  []*accesslogdatav3.HTTPAccessLogEntry
	size     int
	stream   accesslogv3.AccessLogService_StreamAccessLogsClient
	cancel   context.CancelFunc
	watchers sync.WaitGroup // one per stream opened (watch)
}

func newAccessLogger(h *Harness, c *accessLogConfig) *accessLogger {
	l := &accessLogger{h: h, conf: c, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flushLoop()
	return l
}

// flushLoop is the flush timer, re-armed after each flush.
func (l *accessLogger) flushLoop() {
	defer close(l.done)
	t := time.NewTimer(l.conf.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.flush()
			l.mu.Unlock()
			t.Reset(l.conf.flushInterval)
		}
	}
}

// close stops the timer and ends the stream; what is buffered is dropped.
// The server is given a moment to end the stream after the half close.
func (l *accessLogger) close() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	st, cancel := l.stream, l.cancel
	l.stream = nil
	l.mu.Unlock()
	if st != nil {
		_ = st.CloseSend()
		ended := make(chan struct{})
		go func() { l.watchers.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(time.Second):
		}
		cancel()
	}
	l.watchers.Wait()
}

// log buffers e and flushes once the buffer is full.
func (l *accessLogger) log(e *accesslogdatav3.HTTPAccessLogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, e)
	l.size += proto.Size(e)
	l.h.count(func(s *Stats) { s.AccessLogEntries++ })
	if l.size >= l.conf.bufferBytes {
		l.flush()
	}
}

// flush sends the buffered entries in one message, opening the stream if
// there is none. Called with l.mu held.
func (l *accessLogger) flush() {
	if len(l.pending) == 0 {
		return
	}
	msg := &accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: l.pending}}}
	n := len(l.pending)
	l.pending, l.size = nil, 0
	if l.stream == nil {
		conn, err := l.h.grpcConn(l.conf.grpc.cluster, l.conf.grpc.authority)
		if err != nil {
			l.dropped(n, err)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		st, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
		if err != nil {
			cancel()
			l.dropped(n, err)
			return
		}
		l.stream, l.cancel = st, cancel
		l.watchers.Add(1)
		go l.watch(st)
		msg.Identifier = &accesslogv3.StreamAccessLogsMessage_Identifier{
			Node: &corev3.Node{Id: "envoytest", Cluster: "envoytest"}, LogName: l.conf.logName}
	}
	if err := l.stream.Send(msg); err != nil {
		// The stream broke: the next flush opens a new one.
		l.cancel()
		l.stream = nil
		l.dropped(n, err)
		return
	}
	l.h.count(func(s *Stats) { s.AccessLogMessages++ })
}

// watch waits for the end of stream st, which the server decides (Envoy
// expects no message before it), and forgets the stream then, so that the
// next flush opens a new one (the stream's onRemoteClose in
// grpc_access_logger.h).
func (l *accessLogger) watch(st accesslogv3.AccessLogService_StreamAccessLogsClient) {
	defer l.watchers.Done()
	err := st.RecvMsg(&accesslogv3.StreamAccessLogsResponse{})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stream == st {
		l.h.logf("envoytest: access log %s: stream ended: %v", l.conf.name, err)
		l.cancel()
		l.stream = nil
	}
	l.h.count(func(s *Stats) { s.AccessLogStreamsClosed++ })
}

func (l *accessLogger) dropped(n int, err error) {
	l.h.logf("envoytest: access log %s: %d entries dropped: %v", l.conf.name, n, err)
	l.h.count(func(s *Stats) { s.AccessLogEntriesDropped += int64(n) })
}

// Response flags the harness sets, by their short names (%RESPONSE_FLAGS%).
const (
	flagUpstreamConnectionFailure       = "UF"
	flagUpstreamConnectionTermination   = "UC"
	flagUpstreamRemoteReset             = "UR"
	flagUpstreamRequestTimeout          = "UT"
	flagUpstreamOverflow                = "UO"
	flagUpstreamRetryLimitExceeded      = "URX"
	flagStreamIdleTimeout               = "SI"
	flagDownstreamConnectionTermination = "DC"
	flagDownstreamRemoteReset           = "DR"
)

// setFlag sets a response flag on the request's StreamInfo.
func (s *requestStream) setFlag(f string) {
	if !slices.Contains(s.flags, f) {
		s.flags = append(s.flags, f)
	}
}

// writeAccessLogs writes the request's entry to every access log whose
// filter it passes. It runs once the stream's loop and helpers are done.
func (s *requestStream) writeAccessLogs() {
	if len(s.h.accessLogs) == 0 {
		return
	}
	if len(s.flags) == 0 && s.responseCode == 0 {
		// ~ActiveStream: "A downstream disconnect can be identified for HTTP
		// requests when the upstream returns with a 0 response code and when
		// no other response flags are set."
		s.setFlag(flagDownstreamConnectionTermination)
	}
	for _, l := range s.h.accessLogs {
		if l.conf.matches(s.flags) {
			l.log(s.accessLogEntry())
		}
	}
}

// accessLogEntry is the request's HTTPAccessLogEntry, with what Tollgate and
// the tests read: flags, dynamic metadata, status and details, and the
// request's identity.
func (s *requestStream) accessLogEntry() *accesslogdatav3.HTTPAccessLogEntry {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for ns, st := range s.meta.ns {
		md.FilterMetadata[ns] = proto.Clone(st).(*structpb.Struct)
	}
	cp := &accesslogdatav3.AccessLogCommon{
		StartTime:     timestamppb.New(s.started),
		Metadata:      md,
		ResponseFlags: responseFlagsProto(s.flags),
		AccessLogType: accesslogdatav3.AccessLogType_DownstreamEnd,
	}
	if s.router != nil && s.router.cluster != nil {
		cp.UpstreamCluster = s.router.cluster.name
	}
	if s.router != nil {
		cp.UpstreamRequestAttemptCount = uint32(s.router.attempts)
	}
	h := s.reqHeaders
	req := &accesslogdatav3.HTTPRequestProperties{
		Scheme: firstValue(h, ":scheme"), Authority: firstValue(h, ":authority"), Path: firstValue(h, ":path"),
		RequestId: firstValue(h, "x-request-id"), UserAgent: firstValue(h, "user-agent"),
	}
	if m, ok := corev3.RequestMethod_value[strings.ToUpper(firstValue(h, ":method"))]; ok {
		req.RequestMethod = corev3.RequestMethod(m)
	}
	resp := &accesslogdatav3.HTTPResponseProperties{ResponseCodeDetails: s.details}
	if s.responseCode != 0 {
		resp.ResponseCode = wrapperspb.UInt32(uint32(s.responseCode))
	}
	version := accesslogdatav3.HTTPAccessLogEntry_HTTP11
	if s.r.ProtoMajor == 2 {
		version = accesslogdatav3.HTTPAccessLogEntry_HTTP2
	}
	return &accesslogdatav3.HTTPAccessLogEntry{CommonProperties: cp, ProtocolVersion: version, Request: req, Response: resp}
}

// responseFlagsProto is GrpcCommon::Utility::responseFlagsToAccessLogResponseFlags
// for the flags the harness sets.
func responseFlagsProto(flags []string) *accesslogdatav3.ResponseFlags {
	rf := &accesslogdatav3.ResponseFlags{}
	for _, f := range flags {
		switch f {
		case flagUpstreamConnectionFailure:
			rf.UpstreamConnectionFailure = true
		case flagUpstreamConnectionTermination:
			rf.UpstreamConnectionTermination = true
		case flagUpstreamRemoteReset:
			rf.UpstreamRemoteReset = true
		case flagUpstreamRequestTimeout:
			rf.UpstreamRequestTimeout = true
		case flagUpstreamOverflow:
			rf.UpstreamOverflow = true
		case flagUpstreamRetryLimitExceeded:
			rf.UpstreamRetryLimitExceeded = true
		case flagStreamIdleTimeout:
			rf.StreamIdleTimeout = true
		case flagDownstreamConnectionTermination:
			rf.DownstreamConnectionTermination = true
		case flagDownstreamRemoteReset:
			rf.DownstreamRemoteReset = true
		}
	}
	return rf
}

// downstreamResetDetails is the response code details of a client that went
// away: DownstreamRemoteDisconnect, which completeRequest sets with DC, or
// the HTTP/2 codec's details of a received RST_STREAM, which onResetStream
// propagates.
func downstreamResetDetails(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "http2.remote_reset"
	}
	return "downstream_remote_disconnect"
}

// downstreamResetFlag is the flag of a client that went away: DC when it
// closed its HTTP/1 connection (ConnectionManagerImpl::ActiveStream::
// completeRequest, on remote_close_), DR when it reset its HTTP/2 stream
// (ActiveStream::onResetStream).
func downstreamResetFlag(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return flagDownstreamRemoteReset
	}
	return flagDownstreamConnectionTermination
}

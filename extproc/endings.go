package extproc

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate-dev/tollgate/records"
)

// How a response that started ends is not always visible to the policy
// role. When a provider resets its connection, or stalls past the route's
// per_try_idle_timeout, after the response headers went to the client,
// Envoy resets the client's stream and, with it, both ext_proc streams of
// the request; a client that leaves does exactly the same to them. Envoy's
// access log tells the two apart: the entry of the request carries the
// response flags Envoy set.
//
//   - A provider's reset: Router::Filter::onUpstreamReset
//     (source/common/router/router.cc) ends in onUpstreamAbort with
//     streamResetReasonToResponseFlag of the reset reason: UC
//     (upstream_connection_termination) for ConnectionTermination, which an
//     HTTP/1.1 provider closing its connection mid-body is, UR
//     (upstream_remote_reset) for RemoteReset, an HTTP/2 provider's
//     RST_STREAM. onUpstreamAbort sets the flag before its sendLocalReply,
//     which, the headers being sent, resets the client's stream.
//   - A stall: Router::Filter::onPerTryIdleTimeout calls
//     onPerTryTimeoutCommon, which, with no retry possible once the response
//     started (maybeRetryReset), calls onUpstreamTimeoutAbort with UT
//     (upstream_request_timeout) and the details
//     "upstream_per_try_idle_timeout" (response_code_details).
//   - A client that leaves: over HTTP/1.1 it closes its connection, and
//     ConnectionManagerImpl::ActiveStream::completeRequest
//     (source/common/http/conn_manager_impl.cc) sets DC
//     (downstream_connection_termination) on remote_close_; over HTTP/2 its
//     RST_STREAM reaches ActiveStream::onResetStream, which sets DR
//     (downstream_remote_reset).
//
// The access-log stream (envoy.access_loggers.http_grpc) may reach another
// replica than the policy role's stream, so the receiver stores each ending
// in Endings under the request's record id, which it reads from the
// entry's dynamic metadata (the decision, namespace "tollgate": clients
// cannot write it, unlike x-request-id). The policy role, for a stream reset
// after its response headers and only then, waits a bounded time for it.

// Endings is a short-lived store of request endings keyed by record id.
// endings.Memory (one process) and endings.Redis (shared by replicas)
// implement it. Calls are bounded by their contexts.
type Endings interface {
	Put(ctx context.Context, recordID, ending string) error
	Get(ctx context.Context, recordID string) (ending string, ok bool, err error)
}

// DefaultEndingWait is how long the policy role waits for an ending by
// default: the access log's buffer_flush_interval in envoy.yaml (0.2 s) with
// room for a slow Redis.
const DefaultEndingWait = 2 * time.Second

// endingTimeout bounds one endings store call.
const endingTimeout = time.Second

// Results of an access-log entry (tollgate_access_log_entries_total).
const (
	alStored   = "stored"
	alNoRecord = "no_record"
	alNoFlags  = "no_flags"
	alError    = "error"
)

// Results of a wait (tollgate_ending_waits_total).
const (
	waitFound  = "found"
	waitMissed = "missed"
	waitError  = "error"
)

// Error types of responses cut after their headers.
const (
	errorTypeReset   = "provider_reset"
	errorTypeTimeout = "provider_timeout"
)

// maxEndingDetails bounds the response_code_details an ending keeps.
const maxEndingDetails = 128

// endingFlags are the response flags an ending keeps, by their short names
// (%RESPONSE_FLAGS%); flagsOf reads them. Others do not decide an outcome.
var endingFlags = []struct {
	name string
	set  func(*accesslogdatav3.ResponseFlags) bool
}{
	{"UR", (*accesslogdatav3.ResponseFlags).GetUpstreamRemoteReset},
	{"UC", (*accesslogdatav3.ResponseFlags).GetUpstreamConnectionTermination},
	{"UT", (*accesslogdatav3.ResponseFlags).GetUpstreamRequestTimeout},
	{"UPE", (*accesslogdatav3.ResponseFlags).GetUpstreamProtocolError},
	{"LR", (*accesslogdatav3.ResponseFlags).GetLocalReset},
	{"SI", (*accesslogdatav3.ResponseFlags).GetStreamIdleTimeout},
	{"DC", (*accesslogdatav3.ResponseFlags).GetDownstreamConnectionTermination},
	{"DR", (*accesslogdatav3.ResponseFlags).GetDownstreamRemoteReset},
}

func flagsOf(f *accesslogdatav3.ResponseFlags) []string {
	var out []string
	for _, ef := range endingFlags {
		if f != nil && ef.set(f) {
			out = append(out, ef.name)
		}
	}
	return out
}

// ending is how Envoy ended a request: its response flags and details.
type ending struct {
	flags   []string
	details string
}

// encode is the ending as stored: "UC,DC\tdetails".
func (e ending) encode() string {
	return strings.Join(e.flags, ",") + "\t" + clip(e.details, maxEndingDetails)
}

func decodeEnding(s string) ending {
	flags, details, _ := strings.Cut(s, "\t")
	var e ending
	if flags != "" {
		e.flags = strings.Split(flags, ",")
	}
	e.details = details
	return e
}

func (e ending) has(flag string) bool {
	for _, f := range e.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// outcome is the outcome and error type of a response cut after its
// headers that ended as e; ok is false when e's flags do not say who cut
// it. A provider's failure wins over a client that left: Envoy resets the
// client's stream because of it.
func (e ending) outcome() (o records.Outcome, errorType string, ok bool) {
	switch {
	case e.has("UR"), e.has("UC"), e.has("UPE"):
		return records.OutcomeIncomplete, errorTypeReset, true
	case e.has("UT") && strings.Contains(e.details, "per_try_idle_timeout"):
		return records.OutcomeIncomplete, errorTypeStalled, true
	case e.has("UT"):
		// The route's timeout or per_try_timeout; Tollgate's routes set
		// neither (timeout: 0s), but envoy.yaml is the operator's.
		return records.OutcomeIncomplete, errorTypeTimeout, true
	case e.has("DC"), e.has("DR"):
		return records.OutcomeCancelled, "", true
	}
	return "", "", false
}

// validRecordID reports whether id looks like records.NewID's: 36 bytes of
// hex digits and dashes. Entries come from Envoy, but the id is a Redis key.
func validRecordID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// AccessLogServer returns the receiver of Envoy's gRPC access log
// (envoy.service.accesslog.v3.AccessLogService), to register on the same
// gRPC server as the ext_proc service. It stores the ending of every HTTP
// entry that carries a Tollgate record id and a response flag that says who
// ended the request; every other entry is counted and dropped. Without
// Options.Endings it drops everything.
func (s *Server) AccessLogServer() accesslogv3.AccessLogServiceServer { return accessLogServer{s: s} }

type accessLogServer struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	s *Server
}

// StreamAccessLogs implements AccessLogServiceServer. Envoy keeps one stream
// per worker open and sends batches of entries on it
// (GrpcAccessLogger::flush, source/extensions/access_loggers/common/
// grpc_access_logger.h); it expects no reply until the stream ends.
func (a accessLogServer) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
			}
			return err
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			a.s.storeEnding(stream.Context(), e)
		}
	}
}

// storeEnding keeps the ending of one access-log entry, if it has one.
func (s *Server) storeEnding(ctx context.Context, e *accesslogdatav3.HTTPAccessLogEntry) {
	if s.endings == nil {
		return
	}
	cp := e.GetCommonProperties()
	dec := cp.GetMetadata().GetFilterMetadata()[metadataNamespace].GetFields()[metadataDecision].GetStructValue()
	id := dec.GetFields()[decRecordID].GetStringValue()
	if !validRecordID(id) {
		s.metrics.accessLogEntries.WithLabelValues(alNoRecord).Inc()
		return
	}
	end := ending{flags: flagsOf(cp.GetResponseFlags()), details: e.GetResponse().GetResponseCodeDetails()}
	if len(end.flags) == 0 {
		s.metrics.accessLogEntries.WithLabelValues(alNoFlags).Inc()
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endingTimeout)
	defer cancel()
	if err := s.endings.Put(ctx, id, end.encode()); err != nil {
		s.metrics.accessLogEntries.WithLabelValues(alError).Inc()
		s.log.Warn("access log: storing a request's ending failed", zap.String("request_id", id), zap.Error(err))
		return
	}
	s.metrics.accessLogEntries.WithLabelValues(alStored).Inc()
}

// Polling intervals of waitEnding: the first look is soon, since Envoy
// flushes its access log every buffer_flush_interval; later ones back off.
const (
	endingPollFirst = 20 * time.Millisecond
	endingPollMax   = 200 * time.Millisecond
)

// waitEnding waits up to the server's ending wait for the ending of the
// request recordID in the endings store. It runs in the finishing stream's
// own goroutine, after the reservation was settled, and holds no other
// stream.
func (s *Server) waitEnding(ctx context.Context, recordID string) (ending, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.endingWait)
	defer cancel()
	wait := endingPollFirst
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.metrics.endingWaits.WithLabelValues(waitMissed).Inc()
			return ending{}, false
		case <-t.C:
		}
		v, ok, err := s.endings.Get(ctx, recordID)
		switch {
		case err != nil && ctx.Err() != nil:
			s.metrics.endingWaits.WithLabelValues(waitMissed).Inc()
			return ending{}, false
		case err != nil:
			s.metrics.endingWaits.WithLabelValues(waitError).Inc()
			s.log.Warn("reading a request's ending failed; its outcome is told by timing", zap.String("request_id", recordID), zap.Error(err))
			return ending{}, false
		case ok:
			s.metrics.endingWaits.WithLabelValues(waitFound).Inc()
			return decodeEnding(v), true
		}
		wait = min(2*wait, endingPollMax)
		t.Reset(wait)
	}
}

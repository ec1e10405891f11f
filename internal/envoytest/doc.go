// Package envoytest is an Envoy stand-in for Tollgate's tests: a real HTTP
// server that reproduces, from envoy.yaml itself, what Envoy's ext_proc filter,
// router and upstream filters do with a request, a fake Anthropic provider
// (FakeAnthropic) that asserts what reaches it, and a fake AWS Bedrock
// (FakeBedrock) that verifies SigV4 signatures and answers event streams
// from the same fixtures, and a fake Google Vertex AI (FakeVertex, a front on
// a FakeAnthropic) with its own token endpoints, that verifies bearer tokens.
// No Envoy binary runs
// on the development machines, so every end-to-end test goes through it. It
// is a development and test aid, not a production proxy.
//
// # What it reproduces
//
// The bootstrap is parsed with internal/envoyconfig into go-control-plane
// types; the listener, HCM, routes, clusters and filters are read from it,
// with cluster addresses optionally overridden (Config.Clusters).
// Configuration it cannot honour makes Start fail instead of being ignored.
// The rules follow ENVOY-EXTPROC.md (section 10):
//
//   - Protocol (rule 1): one gRPC stream per ext_proc filter per request,
//     opened lazily, with initial_metadata and :authority set to the cluster
//     name; messages in section 1.1 order; headers lowercase with pseudo-headers
//     and the value in raw_value only; protocol_config on the stream's first
//     message; attributes under "envoy.filters.http.ext_proc" on each
//     direction's first message only; metadata_context always present (rule
//     10 says what it holds). Exactly one reply of the matching type per
//     message: anything else is spurious and answered with status_on_error. The stream is closed as Envoy does (half
//     close, then reset), and early once no further message can be sent.
//   - Modes (rule 2): NONE, STREAMED, BUFFERED, BUFFERED_PARTIAL and
//     FULL_DUPLEX_STREAMED per direction (see rule 3); header SEND/SKIP; ExtProcPerRoute (disabled, and overrides of
//     processing_mode, failure_mode_allow, grpc_service, grpc_initial_metadata)
//     from the route or virtual host; mode_override merged per section 2
//     (headers replies only, allow_mode_override, allowed_override_modes,
//     unset body modes become NONE).
//   - Buffering (rule 3): the stream buffer limit is the listener's
//     per_connection_buffer_limit_bytes (default 1 MiB), raised by
//     request_body_buffer_limit; BUFFERED over it is a 413 on requests and a 500
//     (or a reset) on responses, including data that arrived during the headers
//     wait. STREAMED chunks are sent as they arrive, pipelined, re-injected FIFO
//     as their replies come; the held headers continue at the headers reply,
//     before any chunk's reply (processor_state.cc
//     ProcessorState::handleHeadersResponse, sendBufferedDataInStreamedMode
//     then continueIfNecessary; this corrects ENVOY-EXTPROC section 7), except
//     when the whole body arrived during the headers wait: it then goes as one
//     buffered message and the headers wait for its reply. Each released chunk
//     is flushed to the client at once. FULL_DUPLEX_STREAMED (static, with
//     that direction's trailer mode SEND as config.cc requires, or set by a
//     mode_override, which a configured FULL_DUPLEX_STREAMED disables): each
//     chunk goes to the processor at once, even during the headers wait, and
//     Envoy's copy is drained; only streamed_response replies continue, any
//     number of them, unsolicited too, once a chunk was sent and until
//     end_of_stream (processor_state.cc handleStreamedBodyCallback,
//     handleDuplexStreamedBodyResponse); any other body reply is spurious; no
//     message timer runs in that direction (onStartProcessorCall); failure
//     mode allow ends once a chunk was sent (ext_proc.cc
//     Filter::failureModeAllow); a body complete during the headers wait keeps
//     the headers held until end_of_stream.
//   - Header mutations (rule 4): removals before sets, the append BoolValue,
//     the mutation_rules checker order (host and pseudo-header removal,
//     disallow/allow expressions, disallow_all, allow_all_routing for
//     :authority/host/:method/:scheme, no appended or disallow_system pseudo
//     headers, allow_envoy for x-envoy-*), invalid routing values treated as
//     disallowed, disallowed operations ignored and counted unless
//     disallow_is_error, invalid characters always an error.
//   - Content-length (rule 5): removed at header time in STREAMED,
//     BUFFERED_PARTIAL and BUFFERED with header SKIP (a content-length the
//     processor sets is skipped); kept in BUFFERED with header SEND, where a
//     body mutation that does not match it is a 500 with details
//     mismatch_between_content_length_and_the_length_of_the_mutated_body;
//     CONTINUE_AND_REPLACE with a body removes it. allow_content_length_header
//     disables the removal.
//   - Route cache (rule 6): clear_route_cache honoured on the request path of
//     a downstream filter with a header_mutation in the same response
//     (route_cache_action and disable_clear_route_cache respected); the router
//     re-matches on the mutated headers, so a cluster_header route follows a
//     header set in the request-body reply.
//   - Failures (rule 7): message_timeout (504,
//     ext_proc_error_per-message_timeout_exceeded), override_message_timeout
//     within max_message_timeout, gRPC errors (status_on_error, details
//     ext_proc_error_gRPC_error_<code>{msg}), failure_mode_allow, a processor
//     closing with OK, client disconnects (the processor sees the stream reset),
//     immediate responses (headers checked against mutation_rules) as local
//     replies before the response headers left, and as a stream reset (closed
//     HTTP/1.1 connection, HTTP/2 RST_STREAM) after.
//   - Local replies go through the encoder filters the request passed (so a
//     downstream processor sees the router's 503) and are shaped by the HCM
//     local_reply_config: status_code_filter, response_flag_filter (flags derived
//     from the reply's details: NR, NC, UT, SI, UF, UC, UH; filters' own replies
//     carry none) and and/or_filter mappers, status_code, body,
//     headers_to_add, body_format(_override) json_format and text_format with
//     %LOCAL_REPLY_BODY%, %RESPONSE_CODE%, %RESPONSE_CODE_DETAILS% and %REQ(x)%.
//   - Upstream (rule 8): the routed cluster (cluster or cluster_header,
//     cluster_not_found_response_code); for envoy.clusters.aggregate, children
//     as priorities. Each attempt runs the routed cluster's upstream ext_proc
//     filters on new streams, with xds.upstream_host_metadata,
//     upstream.request_attempt_count and xds.cluster_name; the router replays
//     the original body to a retry while the header map carries the previous
//     attempt's mutations over; an upstream filter's local reply is final.
//     Upstream connect failure is a 503 "upstream connect error or
//     disconnect/reset before headers. reset reason: connection failure"
//     ("retried and the latest reset reason" after a retry,
//     Router::Filter::onUpstreamReset); the route timeout (default 15 s, 0
//     disables) is a 504; the route idle_timeout or HCM stream_idle_timeout a
//     408 or a reset. Sources: source/common/router/router.cc,
//     upstream_request.cc, retry_state_impl.cc.
//   - Retry decisions (RetryStateImpl::wouldRetryFromHeaders and
//     wouldRetryFromReset): 5xx, gateway-error and retriable-status-codes on
//     response headers; a reset (connect failure included) on reset, 5xx or
//     gateway-error, a connect failure also on connect-failure.
//     RetryStateImpl::shouldRetry then checks num_retries (else
//     UpstreamRetryLimitExceeded) and the routed cluster's retries resource
//     (else UpstreamRetryOverflow, and the attempt's own response or reset
//     reaches the client). The resource is circuit_breakers' DEFAULT
//     threshold: max_retries (default 3) or a retry_budget, max(budget_percent
//     (default 20) of the cluster's requests in flight,
//     min_retry_concurrency (default 3)) (ResourceManagerImpl::RetryBudgetImpl,
//     source/common/upstream/resource_manager_impl.h). A retry holds it from
//     its scheduling to its own outcome. The resource belongs to the routed
//     cluster, so for an aggregate route it is the aggregate's; since
//     requests count on the child clusters, an aggregate's budget allows
//     exactly min_retry_concurrency (the aggregate cluster architecture doc:
//     max_retries is the one circuit breaker read at the aggregate level).
//   - Back-off (RetryStateImpl::enableBackoffTimer,
//     JitteredExponentialBackOffStrategy::nextBackOffMs in
//     source/common/common/backoff_strategy.cc): each retry waits a uniform
//     random time below an interval that starts at base_interval (default
//     25 ms), doubles while below half of max_interval (default ten times the
//     base) and then stays at max_interval.
//   - Per-try timeouts (UpstreamRequest::setupPerTryTimeout,
//     resetPerTryIdleTimer; Router::Filter::onPerTryTimeoutCommon):
//     per_try_timeout (ignored when not below the route timeout, and once the
//     response started downstream) and per_try_idle_timeout (re-armed by
//     response headers and data after the upstream filters, active after
//     headers too) reset the attempt, count it as a local-origin timeout,
//     and retry it as a local reset would be; otherwise the client gets 504
//     "upstream request timeout" with details upstream_per_try_timeout or
//     upstream_per_try_idle_timeout (flag UT), or a reset once the response
//     headers were sent. x-envoy-expected-rq-timeout-ms carries the per-try
//     timeout when set (FilterUtility::setTimeoutHeaders), updated on retries.
//   - Priorities over an aggregate cluster (AggregateClusterLoadBalancer::
//     LoadBalancerImpl::chooseHost in source/extensions/clusters/aggregate/
//     cluster.cc, LoadBalancerBase::recalculatePerPriorityState and
//     recalculateLoadInTotalPanic, PreviousPrioritiesRetryPriority::
//     determinePriorityLoad): with one host per child a child's health is
//     100 (1.4 × 1/1, capped) or 0 when its host is ejected, so the load goes
//     to the first child whose host is not ejected; with every host ejected
//     all priorities are in panic and a child is drawn at random by host
//     count. previous_priorities (update_frequency N) excludes the
//     priorities attempted so far every N attempts and sends the retry to the
//     first healthy priority left; with none left it falls back to the
//     original load for the rest of the request (its reset loop assigns a
//     copy, so the exclusions stay). A child whose only host is ejected still
//     uses it when chosen (panic mode), and a plain routed cluster always does.
//   - Outlier detection on a non-aggregate cluster (DetectorImpl and
//     DetectorHostMonitorImpl, source/common/upstream/outlier_detection_impl.cc):
//     response codes reaching the router count towards consecutive_5xx and
//     consecutive_gateway_failure (502, 503, 504); resets and connect
//     failures are local-origin failures and per-try or route timeouts
//     local-origin timeouts, counted as 503 and 504 unless
//     split_external_local_origin_errors, in which case they count towards
//     consecutive_local_origin_failure and every established connection
//     (onPoolReady) resets that counter. At the threshold the host is ejected
//     if max_ejection_percent allows it: with one host the ejected share is
//     100%, so the default 10% never ejects unless always_eject_one_host is
//     set; then enforcing_consecutive_* (defaults 100, gateway 0) decides. The
//     ejection lasts base_ejection_time × the ejection backoff (incremented
//     per ejection, decremented per interval without one), capped by
//     max_ejection_time, plus max_ejection_time_jitter, and ends on an
//     interval tick; counters reset on unejection. Stats: OutlierEjections,
//     OutlierEjectionsOverflow.
//   - Real HTTP (rule 9): HTTP/1.1 and h2c downstream; net/http upstream over
//     real sockets (TLS with SNI unless the cluster is overridden), the request
//     body streamed, the response read and passed on one read at a time.
//   - Dynamic metadata (rule 10, ENVOY-EXTPROC section 13): each request has
//     one store, the downstream StreamInfo's dynamic metadata, which the
//     downstream ext_proc filters and the upstream filters of every attempt
//     share, as Envoy's UpstreamFilterManager::streamInfo() returns the
//     downstream request's StreamInfo (source/common/router/upstream_request.cc).
//     A reply's dynamic_metadata is written as Filter::setDynamicMetadata does
//     (source/extensions/filters/http/ext_proc/ext_proc.cc): each top-level key
//     is a namespace, kept only if metadata_options.receiving_namespaces.untyped
//     lists it (none is accepted when the list is empty; dropped ones are
//     logged and counted), and merged into the namespace with Struct MergeFrom
//     as StreamInfoImpl::setDynamicMetadata does
//     (source/common/stream_info/stream_info_impl.h): top-level fields replace
//     their namesakes, a nested Struct is replaced whole. Headers and body
//     replies write, a spurious one too (the write precedes the check), and an
//     immediate_response unless disable_immediate_response; a message carrying
//     override_message_timeout does not. Every headers and body message carries
//     metadata_context.filter_metadata with the namespaces of
//     forwarding_namespaces.untyped that the store holds when it is built
//     (Filter::addDynamicMetadata, called by buildHeaderRequest and
//     setupBodyChunk); without forwarding namespaces it is an empty Metadata.
//     The attributes metadata.filter_metadata['ns'] and
//     metadata.filter_metadata['ns']['key'] read the store when the first
//     message of a direction is built (Filter::addAttributes; "metadata" is the
//     StreamInfo's dynamicMetadata in StreamActivation::FindValue,
//     filters/common/expr/evaluator.cc): a string leaf as it is, a number as
//     its printed double, a Struct as "CelMap value", a list as "CelList
//     value", null as "NULL" (ExpressionManager::evaluateAttributes,
//     ext_proc/matching_utils.cc, and Expr::print); a missing one is left out.
//   - Access log (how requests end; accesslog.go cites the Envoy functions):
//     the HTTP connection manager's access_log of type
//     envoy.access_loggers.http_grpc, behind an optional response_flag_filter.
//     One entry per request when its stream ends, after the ext_proc streams
//     were closed, with the StreamInfo's dynamic metadata and the response
//     flags set where Envoy sets them: UF, UC (HTTP/1 provider) or UR (HTTP/2
//     provider) for a connect failure or reset that is not retried, before or
//     after the response headers; UT for a per-try (idle) timeout that is not
//     retried; UO and URX for a retry refused by the circuit breaker or the
//     retry limit; SI for the stream idle timeout; DC (HTTP/1) or DR (HTTP/2)
//     for a client that went away, and DC for a stream that ended with no
//     flag and no response code. Entries are buffered and sent on one gRPC
//     stream (identifier on its first message), flushed at buffer_size_bytes
//     and every buffer_flush_interval; once the server ends a stream the next
//     flush opens another. Stats: AccessLogEntries, AccessLogMessages,
//     AccessLogEntriesDropped, AccessLogStreamsClosed.
//   - x-request-id generated when absent, x-forwarded-proto set,
//     x-envoy-expected-rq-timeout-ms and x-envoy-upstream-service-time added,
//     server: envoy on responses, hop-by-hop headers dropped.
//
// # Where it is not exact
//
//   - Not supported (Start fails): the GRPC body mode, trailer mode SEND
//     other than beside FULL_DUPLEX_STREAMED (trailers are never forwarded, so
//     no trailers message is ever sent), observability_mode, send_body_without_waiting_for_header_response,
//     http_service, forward_rules, processing_request_modifier, typed
//     metadata namespaces (metadata_options forwarding_namespaces.typed and
//     receiving_namespaces.typed), cluster_metadata_forwarding_namespaces,
//     metadata_options in ExtProcPerRoute overrides,
//     CEL attributes other than the listed ones, other HTTP filters, redirects,
//     direct responses, weighted clusters, path rewrites, RDS/CDS/EDS, more than
//     one listener or filter chain, and cluster types other than STATIC,
//     STRICT_DNS, LOGICAL_DNS and aggregate.
//   - typed_dynamic_metadata in replies is ignored (the ext_proc.cc read
//     writes dynamic_metadata only); no filter writes connection dynamic
//     metadata, which Envoy consults for a forwarding namespace the request
//     lacks; streamed_immediate_response is treated as spurious;
//     CONTINUE_AND_REPLACE on a body reply acts as CONTINUE.
//   - Chunking follows net/http reads, not Envoy's codec: data that arrives
//     while a headers reply is pending is sent as one chunk (as Envoy does), but
//     chunk boundaries otherwise differ. There is no watermark flow control:
//     STREAMED queues are unbounded.
//   - A cluster uses its first endpoint only; no load balancing or health
//     checks. Of the circuit breakers only the retries resource is enforced;
//     max_connections, max_pending_requests and max_requests are accepted and
//     not enforced, and per_host_thresholds and retry_budget.budget_interval
//     are refused. Outlier detection is consecutive-error only: success-rate
//     and failure-percentage settings are accepted only while their minimum
//     host counts exceed one (so they never fire); extension monitors are
//     refused; ejections happen at once, where Envoy posts them to the main
//     thread and the workers see them a moment later. Hedging and retry host
//     predicates other than previous_hosts (accepted, a no-op with one
//     endpoint per cluster) are absent. Retries happen only once the
//     downstream request is complete. Per-try timers start when the attempt
//     starts (Envoy: when the connection pool is ready), so connect time
//     counts towards them. Upstream filters get no per-route config and use
//     the downstream buffer limit.
//   - Route matching covers prefix, path and safe_regex (Go regexp, not RE2)
//     with header matchers; virtual hosts match :authority exactly, by
//     wildcard or "*" (no port stripping).
//   - The local-reply JSON formatter sorts keys (Envoy keeps the configured
//     order) and supports only the operators above; header count and size
//     limits of mutations are not enforced (max_request_headers_kb applies to
//     the downstream request only).
//   - Response code details are approximations where Envoy's exact strings
//     are unknown (spurious messages, invalid mutations).
//   - Messages are sent through a per-stream queue: message_timeout starts
//     when a message is queued, and for pipelined chunks restarts on each
//     reply.
//   - Access log (accesslog.go): only envoy.access_loggers.http_grpc, only
//     a response_flag_filter; the flags set are UF, UC, UR, UT, UO, URX, SI,
//     DC and DR (not NR, NC, LR, UPE, DPE and the rest), and every reset of
//     an HTTP/2 attempt is UR, where Envoy says UC for a connection that
//     dropped rather than a stream reset (RST_STREAM); one logger and
//     stream for all requests, where Envoy has one per worker; an entry holds
//     the flags, the dynamic metadata, the request's identity, status and
//     details, not every timing and byte count.
package envoytest

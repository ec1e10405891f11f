-- The cost records table, one row per client request (records.Record),
-- partitioned by day of start_time (UTC). Partitions are created by Tollgate
-- ahead of time and on demand (records_pYYYYMMDD), and dropped whole by
-- retention. Text columns are '' rather than NULL when the record has no value.

-- +goose Up
CREATE TABLE records (
    id                     text             NOT NULL,
    start_time             timestamptz      NOT NULL,
    end_time               timestamptz      NOT NULL,
    client_request_id      text             NOT NULL DEFAULT '',
    trace_id               text             NOT NULL DEFAULT '',
    session_id             text             NOT NULL DEFAULT '',
    agent_id               text             NOT NULL DEFAULT '',
    parent_agent_id        text             NOT NULL DEFAULT '',
    key_id                 text             NOT NULL DEFAULT '',
    user_name              text             NOT NULL DEFAULT '',
    team                   text             NOT NULL DEFAULT '',
    project                text             NOT NULL DEFAULT '',
    metadata               jsonb,
    route                  text             NOT NULL DEFAULT '',
    provider               text             NOT NULL DEFAULT '',
    attempts               jsonb,
    endpoint               text             NOT NULL DEFAULT '',
    method                 text             NOT NULL DEFAULT '',
    path                   text             NOT NULL DEFAULT '',
    requested_model        text             NOT NULL DEFAULT '',
    model                  text             NOT NULL DEFAULT '',
    response_model         text             NOT NULL DEFAULT '',
    stream                 boolean          NOT NULL DEFAULT false,
    status                 integer          NOT NULL DEFAULT 0,
    error_type             text             NOT NULL DEFAULT '',
    outcome                text             NOT NULL DEFAULT '',
    input_tokens           bigint           NOT NULL DEFAULT 0,
    cache_read_tokens      bigint           NOT NULL DEFAULT 0,
    cache_write_5m_tokens  bigint           NOT NULL DEFAULT 0,
    cache_write_1h_tokens  bigint           NOT NULL DEFAULT 0,
    output_tokens          bigint           NOT NULL DEFAULT 0,
    reasoning_tokens       bigint           NOT NULL DEFAULT 0,
    web_search_requests    bigint           NOT NULL DEFAULT 0,
    web_fetch_requests     bigint           NOT NULL DEFAULT 0,
    cost_pico_usd          bigint           NOT NULL DEFAULT 0,
    cost_usd               text             NOT NULL DEFAULT '',
    price_estimated        boolean          NOT NULL DEFAULT false,
    usage_estimated        boolean          NOT NULL DEFAULT false,
    price_catalog          text             NOT NULL DEFAULT '',
    latency_ms             double precision NOT NULL DEFAULT 0,
    ttft_ms                double precision NOT NULL DEFAULT 0,
    cache_status           text             NOT NULL DEFAULT '',
    cost_saved_pico_usd    bigint           NOT NULL DEFAULT 0,
    cost_saved_usd         text             NOT NULL DEFAULT '',
    budget_outcome         text             NOT NULL DEFAULT '',
    reservation_id         text             NOT NULL DEFAULT '',
    reserved_pico_usd      bigint           NOT NULL DEFAULT 0,
    max_tokens_fitted      bigint           NOT NULL DEFAULT 0,
    thinking_budget_fitted bigint           NOT NULL DEFAULT 0,
    request_body           text             NOT NULL DEFAULT '',
    response_body          text             NOT NULL DEFAULT '',
    -- A partitioned table's keys must hold the partition key; a record's
    -- start never changes between retries, so (id, start_time) dedupes
    -- replays as well as id alone.
    PRIMARY KEY (id, start_time)
) PARTITION BY RANGE (start_time);

-- The dashboard's queries: a time range, grouped or filtered by team, user,
-- key, model, session, or one trace.
CREATE INDEX records_start_idx   ON records (start_time);
CREATE INDEX records_team_idx    ON records (team, start_time);
CREATE INDEX records_user_idx    ON records (user_name, start_time);
CREATE INDEX records_key_idx     ON records (key_id, start_time);
CREATE INDEX records_model_idx   ON records (model, start_time);
CREATE INDEX records_session_idx ON records (session_id, start_time) WHERE session_id <> '';
CREATE INDEX records_trace_idx   ON records (trace_id) WHERE trace_id <> '';

-- +goose Down
DROP TABLE records;

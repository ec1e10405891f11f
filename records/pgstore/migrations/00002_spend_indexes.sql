-- For the spend API: the Claude Code request class hint of each record
-- (x-claude-code-request-class; '' when not sent), and indexes for its
-- filters that 00001 has none for: a time range of one project, route or
-- provider (a project's or provider's budget, a filter in the dashboard).
-- Team, user, key, model and session are indexed by 00001. On a partitioned
-- table, a column and an index go to every partition.

-- +goose Up
ALTER TABLE records ADD COLUMN request_class text NOT NULL DEFAULT '';
CREATE INDEX records_project_idx  ON records (project, start_time);
CREATE INDEX records_route_idx    ON records (route, start_time);
CREATE INDEX records_provider_idx ON records (provider, start_time);

-- +goose Down
DROP INDEX records_provider_idx;
DROP INDEX records_route_idx;
DROP INDEX records_project_idx;
ALTER TABLE records DROP COLUMN request_class;

-- The spend API's filters that 00001 has no index for: a time range of one
-- project, route or provider (a project's or provider's budget, a filter in
-- the dashboard). Team, user, key, model and session are indexed by 00001.
-- On a partitioned table each index is created on every partition.

-- +goose Up
CREATE INDEX records_project_idx  ON records (project, start_time);
CREATE INDEX records_route_idx    ON records (route, start_time);
CREATE INDEX records_provider_idx ON records (provider, start_time);

-- +goose Down
DROP INDEX records_provider_idx;
DROP INDEX records_route_idx;
DROP INDEX records_project_idx;

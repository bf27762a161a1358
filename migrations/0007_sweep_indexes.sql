-- Indexes for the sweep (workers/src/sweep.rs), so each of its deletes finds
-- its rows by range instead of reading the whole table every minute. The test
-- `every_sweep_statement_is_served_by_an_index` checks the plans.

-- Codes and refresh tokens a day past their expiry.
CREATE INDEX one_time_codes_expires_idx ON one_time_codes (expires_at);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- Finished notifications past NOTIFICATION_RETENTION_SECS, oldest first. A plain
-- index on the creation time (not partial on the status): the statuses a row
-- can finish in may grow, and every row finishes within hours of its creation.
CREATE INDEX notifications_created_idx ON notifications (created_at);

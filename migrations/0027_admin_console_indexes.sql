-- no-transaction
-- The admin console's dashboard (core/src/exchange/overview.rs) counts the
-- door commands that failed in the last 24 hours on every view; door commands
-- stay in the table for good, so the count reads only the failed ones.
-- Built CONCURRENTLY, outside a transaction (hence the first line): door
-- commands keep being written while it builds. IF NOT EXISTS lets a start
-- that died after the build but before sqlx recorded it run again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS door_commands_failed_idx ON door_commands (failed_at) WHERE status = 'failed';

-- no-transaction
-- The admins' list of items (core/src/exchange/overview.rs) is newest first
-- over every sender; without an index it sorts the whole table for each page.
-- Built CONCURRENTLY, outside a transaction, so deposits and collections go on
-- while it builds (see 0027 for IF NOT EXISTS).
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_created_idx ON items (created_at DESC, id DESC);

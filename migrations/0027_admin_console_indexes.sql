-- The admin console's figures and lists (core/src/exchange/overview.rs):
-- failed door commands of the last 24 hours are counted on every dashboard
-- view, and door commands stay in the table for good, so the count reads only
-- the failed ones; the admins' list of items is newest first, over every
-- sender, which without an index sorts the whole table for each page.
CREATE INDEX door_commands_failed_idx ON door_commands (failed_at) WHERE status = 'failed';
CREATE INDEX items_created_idx ON items (created_at DESC, id DESC);

-- Door commands carry their whole story: when the controller acknowledged the
-- open (acked_at), when retries ran out (failed_at), and when the door was
-- reported closed after that open (closed_at), so a replayed controller event
-- finds its work done.
ALTER TABLE door_commands
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN closed_at timestamptz;

-- The door's latest open command: what a `door_closed` without a command id means.
CREATE INDEX door_commands_item_idx ON door_commands (item_id, created_at DESC) WHERE item_id IS NOT NULL;

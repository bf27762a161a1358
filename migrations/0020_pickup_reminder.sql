-- The receiver's pickup reminder (core/src/exchange/collection/reminder.rs):
-- one message PICKUP_REMINDER_AFTER_SECS after an item was stored, if it is
-- still waiting. `reminded_at` makes it once: the sweep sets it in the same
-- statement that picks the item.
ALTER TABLE items ADD COLUMN reminded_at timestamptz;

-- The sweep's question: stored items not reminded yet, oldest first. The
-- partial index holds only those, so a run reads the due ones and no others.
CREATE INDEX items_reminder_due_idx ON items (stored_at) WHERE status = 'stored' AND reminded_at IS NULL;

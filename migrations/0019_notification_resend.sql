-- Operators send a failed message again (`lockers-admin notifications resend`)
-- as a new message; the failed one is kept as it was and the new one names it.
ALTER TABLE notifications
    ADD COLUMN resent_from uuid REFERENCES notifications (id) ON DELETE SET NULL;

-- One resend per failed message: two operators (or one pressing twice) cannot
-- send it twice. A resend that fails in turn is resent from its own row.
CREATE UNIQUE INDEX notifications_resent_from_key ON notifications (resent_from);

-- `lockers-admin notifications failed`: the newest failed messages first.
CREATE INDEX notifications_failed_idx ON notifications (created_at DESC, id DESC) WHERE status = 'failed';

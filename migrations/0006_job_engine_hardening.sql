-- Job engine hardening (issue 8): leases on running jobs, idempotency keys that
-- outlive job rows, and an outbox claim so a message is sent at most once.

-- Set when a run starts (not when it is prefetched): past it, a job still
-- `running` under a live process is put back by the rescue pass (its handler
-- hung past the queue's timeout, or its outcome could not be recorded).
ALTER TABLE jobs ADD COLUMN lease_until timestamptz;
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';

-- Idempotency keys live here, not on the job row, so a key deduplicates for
-- JOB_KEY_WINDOW_SECS whatever happens to its job (deleted at completion with
-- JOB_RETENTION_SECS=0, dead, retried). The engine's maintenance deletes keys
-- older than the window. `jobs.idempotency_key` stays as a label for operators.
CREATE TABLE job_keys (
    queue      text        NOT NULL,
    key        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, key)
);
CREATE INDEX job_keys_created_at ON job_keys (created_at);
INSERT INTO job_keys (queue, key, created_at)
    SELECT queue, idempotency_key, created_at FROM jobs WHERE idempotency_key IS NOT NULL
    ON CONFLICT DO NOTHING;
-- A dead job no longer holds its key forever.
DROP INDEX jobs_idempotency_key;

-- The outbox: pending -> sending (claimed, in its own short transaction, right
-- before the provider call) -> sent | pending (transient failure, retried) |
-- failed. A message left `sending` past its queue's lease (the process died
-- during the provider call) becomes `unknown` and is never resent by itself.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown'));
ALTER TABLE notifications ADD COLUMN claimed_at timestamptz;
CREATE INDEX notifications_sending ON notifications (claimed_at) WHERE status = 'sending';
CREATE INDEX notifications_pending_sensitive ON notifications (created_at) WHERE status = 'pending' AND sensitive;

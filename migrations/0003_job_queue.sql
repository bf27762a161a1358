-- The job queue: our own table under apalis workers (see README, "Jobs and
-- scaling workers"). Every index is partial on the state it serves, so the cost
-- of claiming, acknowledging and rescuing a job does not grow with the number
-- of finished jobs kept for inspection.
--
-- States (who moves a job in and out is documented in README):
--   ready     waiting for run_at; claimed by a worker's fetcher
--   running   claimed by worker process `locked_by` (a row of job_workers)
--   completed finished; deleted after JOB_RETENTION_SECS
--   dead      out of attempts or failed permanently; kept until retried

CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue           text        NOT NULL,
    state           text        NOT NULL DEFAULT 'ready'
                                CHECK (state IN ('ready', 'running', 'completed', 'dead')),
    payload         jsonb       NOT NULL,
    run_at          timestamptz NOT NULL DEFAULT now(),
    -- Counted when a worker claims the job, so a crash mid-job still counts.
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL CHECK (max_attempts > 0),
    idempotency_key text,
    locked_by       text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

-- The claim: oldest due job of a queue first.
CREATE INDEX jobs_ready ON jobs (queue, run_at, id) WHERE state = 'ready';
-- Rescue and hand-back look up running jobs by their holder.
CREATE INDEX jobs_running ON jobs (locked_by) WHERE state = 'running';
-- Retention deletes completed jobs oldest first.
CREATE INDEX jobs_completed ON jobs (finished_at) WHERE state = 'completed';
-- `lockers-admin jobs failed`.
CREATE INDEX jobs_dead ON jobs (queue, finished_at) WHERE state = 'dead';
-- One job per key and queue while the row exists (including retention).
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (queue, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Worker processes and their last heartbeat. A process missing heartbeats for
-- JOB_RESCUE_AFTER_SECS is presumed dead and its running jobs go back to ready.
CREATE TABLE job_workers (
    id        text PRIMARY KEY,
    last_seen timestamptz NOT NULL DEFAULT now()
);

-- Wakes idle workers the moment an enqueue commits (NOTIFY is delivered at
-- commit, never for a rolled-back transaction). Statement-level, so a bulk
-- insert sends one notification per queue, not one per row.
CREATE FUNCTION jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lockers_jobs', q.queue) FROM (SELECT DISTINCT queue FROM inserted) AS q;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_insert();

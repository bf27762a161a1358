-- Wake-ups without a NOTIFY per enqueue while a queue is busy.
--
-- PostgreSQL serialises the commits of transactions that send NOTIFY (one
-- database-wide lock held until the commit is flushed), which caps enqueueing
-- transactions near one per fsync (ops/bench/RESULTS.md). While a worker polls a
-- queue every few milliseconds anyway it says so here, and the insert trigger
-- then leaves NOTIFY out. An idle queue is still woken by NOTIFY at once.
--
-- Unlogged: a promise about the next fraction of a second is not worth a WAL
-- record, and after a crash the table is empty, which only means "notify".
CREATE UNLOGGED TABLE job_queue_polls (
    queue        text PRIMARY KEY,
    -- A worker claims from this queue at least every few milliseconds until then.
    polled_until timestamptz NOT NULL
);

-- The margin covers the time between this insert and its transaction's commit:
-- a job committed later than `polled_until` would otherwise wait for the
-- backstop poll.
CREATE OR REPLACE FUNCTION jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lockers_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM inserted) AS q
    WHERE NOT EXISTS (
        SELECT 1 FROM job_queue_polls AS p
        WHERE p.queue = q.queue AND p.polled_until > clock_timestamp() + interval '100 milliseconds');
    RETURN NULL;
END;
$$;

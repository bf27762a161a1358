-- The request id (X-Request-Id) of the HTTP request that enqueued a job, so the
-- job's log lines can be joined to the request's. NULL for jobs enqueued by the
-- scheduler, the sweep or the CLI. Not indexed: it is read with the job it
-- belongs to, never searched.
ALTER TABLE jobs ADD COLUMN request_id text;

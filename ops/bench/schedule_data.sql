-- Data for the billing and sweep benchmark (ops/bench/schedule.sh), part 1:
-- written set-based with generate_series into a database of its own (never a
-- test database). Times are relative to now(), so measure right after.
-- Part 2 (schedule_sweep_data.sql) adds what the exchange sweeps find; it
-- comes after the billing measurement, whose population it would change.
--
--   items            1,000,000 stored (the billing population), stored 60 to
--                    119 minutes ago with hour 0 already charged: a run now
--                    charges hour 1 of each (the hourly steady state, one line
--                    per item)
--   lockers          1,100,000 (1,000 points x 1,100 doors)
--   charges          1,000,000 (hour 0 of every stored item)
--   billing_runs     1 (the run that charged them)
--   one_time_codes   1,000,000, half expired more than a day ago
--   refresh_tokens   1,000,000, half expired more than a day ago
--   notifications    1,000,000, half finished and past the retention
--   door_commands    1,000,000 acked
\set ON_ERROR_STOP on
SET synchronous_commit = off;

TRUNCATE billing_runs, charges, transactions, door_commands, one_time_codes, notifications, refresh_tokens, items, lockers,
         locker_points, cities, states, users, audit_log, jobs, job_keys CASCADE;

INSERT INTO states (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Karnataka');
INSERT INTO cities (id, state_id, name)
VALUES ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 'Bengaluru');
INSERT INTO users (id, name, email, email_verified_at)
SELECT gen_random_uuid(), 'Sender ' || n, 'sender' || n || '@bench.example', now() FROM generate_series(1, 1000) n;
INSERT INTO locker_points (id, city_id, name, address, controller_token_hash, last_heartbeat_at)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000002', 'Point ' || n, n || ' Bench Road',
       sha256(n::text::bytea), now()
FROM generate_series(1, 1000) n;
INSERT INTO lockers (id, point_id, door_no, size, status)
SELECT gen_random_uuid(), p.id, d, (ARRAY['S', 'M', 'L', 'XL'])[1 + d % 4], 'occupied'
FROM locker_points p CROSS JOIN generate_series(1, 1100) d;

-- Doors 1-1000 hold a stored item each; 1001-1100 are for part 2.
CREATE TEMP TABLE senders AS SELECT row_number() OVER (ORDER BY id) AS k, id FROM users;
CREATE TEMP TABLE slots AS
SELECT l.id AS locker_id, l.door_no, row_number() OVER (ORDER BY l.id) AS k FROM lockers l;

-- 1,000,000 stored items: stored 60-119 minutes ago, reminded already (so
-- the reminder step has only its due 1,000), pickup window 72 h.
INSERT INTO items (id, locker_id, size, sender_id, name, receiver_email, status, reserved_at, dropoff_by,
                   stored_at, pickup_by, reminded_at)
SELECT gen_random_uuid(), s.locker_id, (ARRAY['S', 'M', 'L', 'XL'])[1 + s.door_no % 4],
       u.id, 'Parcel ' || s.k, 'receiver' || s.k || '@bench.example', 'stored',
       st - interval '5 minutes', st, st, st + interval '72 hours', st
FROM slots s
JOIN senders u ON u.k = 1 + s.k % 1000
CROSS JOIN LATERAL (SELECT now() - make_interval(mins => 60 + (s.k % 30)::int) AS st) t
WHERE s.door_no <= 1000;

-- Hour 0 of every stored item, charged by an earlier run, recorded as the
-- next run's watermark (billing_runs, migration 0022) just after the latest
-- of them was stored.
INSERT INTO charges (item_id, hour_start, amount_paise, currency)
SELECT i.id, i.stored_at, 5000, 'INR' FROM items i
WHERE i.status = 'stored' AND i.reminded_at IS NOT NULL;
INSERT INTO billing_runs (run_at, items, lines)
SELECT max(stored_at) + interval '1 second', count(*), count(*) FROM items WHERE status = 'stored';

INSERT INTO one_time_codes (id, purpose, contact, code_hash, expires_at, created_at)
SELECT gen_random_uuid(), 'login', 'user' || n || '@bench.example', sha256(n::text::bytea),
       CASE WHEN n % 2 = 0 THEN now() - interval '3 days' ELSE now() + interval '5 minutes' END,
       now() - interval '3 days'
FROM generate_series(1, 1000000) n;

INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
SELECT gen_random_uuid(), u.id, gen_random_uuid(), sha256(('t' || n)::bytea),
       CASE WHEN n % 2 = 0 THEN now() - interval '3 days' ELSE now() + interval '20 days' END
FROM generate_series(1, 1000000) n JOIN senders u ON u.k = 1 + n % 1000;

INSERT INTO notifications (id, channel, recipient, kind, subject, body, status, created_at, sent_at)
SELECT gen_random_uuid(), 'email', 'user' || n || '@bench.example', 'item_collected', 'Collected',
       'Lockers: "Parcel" was collected.', 'sent',
       CASE WHEN n % 2 = 0 THEN now() - interval '40 days' ELSE now() - interval '1 day' END,
       now() - interval '1 day'
FROM generate_series(1, 1000000) n;

-- 1,000,000 finished door commands.
INSERT INTO door_commands (id, locker_id, reason, status, created_at, sent_at, acked_at)
SELECT gen_random_uuid(), s.locker_id, 'pickup', 'acked', now() - interval '10 days', now() - interval '10 days',
       now() - interval '10 days'
FROM slots s WHERE s.k <= 1000000;
VACUUM ANALYZE;

-- Data for the billing and sweep benchmark (ops/bench/schedule.sh), part 2,
-- after schedule_data.sql and the billing measurement: 100,000 more items in
-- doors 1001-1100 of every point, 1,000 due for each exchange sweep step, and
-- 1,000 door commands stuck in flight.
\set ON_ERROR_STOP on
SET synchronous_commit = off;

CREATE TEMP TABLE senders AS SELECT row_number() OVER (ORDER BY id) AS k, id FROM users;
CREATE TEMP TABLE slots AS
SELECT l.id AS locker_id, l.door_no, row_number() OVER (ORDER BY l.id) AS k FROM lockers l WHERE l.door_no > 1000;

-- 100,000 others: doors 1001-1100, in 100 bands of 1,000 points.
--   1001: reserved past the drop-off deadline (expire_reservations)
--   1002: reserved, door opened 10 minutes ago and never closed (doors_left_open)
--   1003: stored past the pickup window (expire_stored)
--   1004: expired past the return deadline (abandon_expired)
--   1005: stored 25 h ago, not reminded (remind)
--   1006-1100: collected long ago (history the partial indexes must skip)
INSERT INTO items (id, locker_id, size, sender_id, name, receiver_email, status, reserved_at, dropoff_by,
                   dropoff_requested_at, dropoff_opened_at, stored_at, pickup_by, return_by, reminded_at, closed_at)
SELECT gen_random_uuid(), s.locker_id, (ARRAY['S', 'M', 'L', 'XL'])[1 + s.door_no % 4],
       u.id, 'Parcel ' || s.k, 'receiver' || s.k || '@bench.example',
       CASE s.door_no WHEN 1001 THEN 'reserved' WHEN 1002 THEN 'reserved' WHEN 1003 THEN 'stored'
                      WHEN 1004 THEN 'expired' WHEN 1005 THEN 'stored' ELSE 'collected' END,
       now() - interval '30 days',
       CASE s.door_no WHEN 1001 THEN now() - interval '1 minute' ELSE now() - interval '29 days' END,
       CASE s.door_no WHEN 1002 THEN now() - interval '10 minutes' END,
       CASE s.door_no WHEN 1002 THEN now() - interval '10 minutes' END,
       CASE WHEN s.door_no IN (1001, 1002) THEN NULL
            WHEN s.door_no = 1005 THEN now() - interval '25 hours' ELSE now() - interval '10 days' END,
       CASE WHEN s.door_no IN (1001, 1002) THEN NULL
            WHEN s.door_no = 1005 THEN now() + interval '47 hours' ELSE now() - interval '7 days' END,
       CASE s.door_no WHEN 1004 THEN now() - interval '1 hour' END,
       CASE WHEN s.door_no = 1005 THEN NULL ELSE now() - interval '9 days' END,
       CASE WHEN s.door_no >= 1006 THEN now() - interval '8 days' END
FROM slots s JOIN senders u ON u.k = 1 + s.k % 1000;

-- Collected items leave their lockers; the unique "one active item per
-- locker" index ignores them, so nothing else changes.

-- 1,000 door commands sent an hour ago and never answered.
INSERT INTO door_commands (id, locker_id, reason, status, created_at, sent_at)
SELECT gen_random_uuid(), s.locker_id, 'force_clear', 'sent', now() - interval '1 hour', now() - interval '1 hour'
FROM slots s WHERE s.door_no = 1100;

ANALYZE;

#!/usr/bin/env bash
# Billing accrual and sweep benchmark over 1,000,000 rows per table, in a
# database of its own (BENCH_DB, default lockers_bench_sweep; dropped and
# made again). Prints the load average before each measurement, then:
#   1. `lockers-admin billing run` over 1,000,000 stored items that each
#      started a new hour (1,000,000 lines), then the same run repeated;
#   2. each sweep statement alone (EXPLAIN ANALYZE in a rolled-back
#      transaction, the statement's own text and the values the sweep binds),
#      over tables of 1,000,000 rows or more;
#   3. `lockers-admin sweep run`, everything the minute sweep does.
# Needs lockers-admin built (ADMIN, default target/debug/lockers-admin:
# the time is PostgreSQL's, not the client's). STEPS=sweep skips part 1 and
# billing and runs part 2 and the sweeps on the database a full run left.
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_DB:-lockers_bench_sweep}
ADMIN=${ADMIN:-target/debug/lockers-admin}
export DATABASE_URL="$SERVER/$DB" RUST_LOG=off
load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

STEPS=${STEPS:-billing sweep}
if [[ $STEPS == *billing* ]]; then
psql -q "$SERVER/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
"$ADMIN" migrate
echo "== generating part 1 (places, 1,000,000 stored items, codes, tokens, notifications, door commands)"
time psql -q "$DATABASE_URL" -f ops/bench/schedule_data.sql
psql -q "$DATABASE_URL" -c CHECKPOINT
psql -At "$DATABASE_URL" -c "SELECT 'stored items: ' || count(*) FROM items WHERE status = 'stored'" \
    -c "SELECT 'charge lines: ' || count(*) FROM charges"

echo "== billing"
load
"$ADMIN" billing run
load
"$ADMIN" billing run
psql -At "$DATABASE_URL" -c "SELECT 'charge lines: ' || count(*) || ', items with 2: ' ||
    (SELECT count(*) FROM (SELECT item_id FROM charges GROUP BY item_id HAVING count(*) = 2) t) FROM charges"

fi

echo "== generating part 2 (100,000 more items, 1,000 due per exchange sweep step)"
psql -q "$DATABASE_URL" -f ops/bench/schedule_sweep_data.sql
psql -q "$DATABASE_URL" -c CHECKPOINT

echo "== each sweep statement alone (rolled back)"
load
explain() {
    local name=$1 sql=$2
    local ms
    ms=$(psql -At "$DATABASE_URL" -c "BEGIN" -c "EXPLAIN (ANALYZE, FORMAT JSON) $sql" -c "ROLLBACK" \
        | python3 -c 'import json,sys; t=sys.stdin.read(); p=json.loads(t[t.index("["):t.rindex("]")+1])[0]; print(p["Execution Time"], p["Plan"].get("Actual Rows"), sep=" ms, rows ")')
    printf '%-28s %s\n' "$name" "$ms"
}
# Rust source of each: core/src/messaging/expiry.rs, accounts/expiry.rs,
# messaging/outbox.rs, exchange/deposit/{cancel,outcomes}.rs,
# exchange/collection/{expiry,reminder}.rs, exchange/doors.rs.
NOW="now()"
explain "expired codes (delete)" "DELETE FROM one_time_codes WHERE expires_at < to_timestamp(extract(epoch FROM $NOW)) - interval '1 day'"
explain "expired tokens (delete)" "DELETE FROM refresh_tokens WHERE expires_at < to_timestamp(extract(epoch FROM $NOW)) - interval '1 day'"
explain "finished notifications" "DELETE FROM notifications WHERE created_at < to_timestamp(extract(epoch FROM $NOW)) - make_interval(secs => 2592000) AND status IN ('sent', 'failed', 'unknown')"
explain "expired reservations" "SELECT id FROM items WHERE status = 'reserved' AND dropoff_by <= $NOW AND dropoff_requested_at IS NULL ORDER BY dropoff_by LIMIT 500 FOR UPDATE SKIP LOCKED"
explain "doors left open" "SELECT id FROM items WHERE status = 'reserved' AND dropoff_opened_at IS NOT NULL AND door_left_open_at IS NULL AND dropoff_opened_at <= $NOW - make_interval(secs => 300) ORDER BY dropoff_opened_at LIMIT 500 FOR UPDATE SKIP LOCKED"
explain "expire stored" "WITH due AS (SELECT id FROM items WHERE status = 'stored' AND pickup_by <= $NOW AND collect_requested_at IS NULL ORDER BY pickup_by LIMIT 500 FOR UPDATE SKIP LOCKED) UPDATE items i SET status = 'expired', return_by = $NOW + interval '7 days', updated_at = now() FROM due, lockers l WHERE i.id = due.id AND l.id = i.locker_id RETURNING i.id, i.name, l.door_no"
explain "abandon expired" "WITH due AS (SELECT id FROM items WHERE status = 'expired' AND abandoned_at IS NULL AND return_by <= $NOW AND collect_requested_at IS NULL ORDER BY return_by LIMIT 500 FOR UPDATE SKIP LOCKED) UPDATE items i SET abandoned_at = $NOW, updated_at = now() FROM due WHERE i.id = due.id RETURNING i.id, i.locker_id, i.name, i.return_by"
explain "pickup reminders" "WITH due AS (SELECT id FROM items WHERE status = 'stored' AND reminded_at IS NULL AND stored_at <= $NOW - make_interval(secs => 86400) AND pickup_by > $NOW AND collect_requested_at IS NULL ORDER BY stored_at LIMIT 500 FOR UPDATE SKIP LOCKED) UPDATE items i SET reminded_at = $NOW, updated_at = now() FROM due, lockers l, locker_points p WHERE i.id = due.id AND l.id = i.locker_id AND p.id = l.point_id RETURNING i.id"
explain "stuck door commands" "SELECT id FROM door_commands WHERE status IN ('pending', 'sent') AND created_at <= $NOW - interval '12 minutes' ORDER BY created_at LIMIT 100"

echo "== the whole sweep (lockers-admin sweep run), twice"
load
"$ADMIN" sweep run
load
"$ADMIN" sweep run

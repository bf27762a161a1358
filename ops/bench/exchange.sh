#!/usr/bin/env bash
# The exchange benchmark end to end: a fresh database, `lockers-api --with-workers`
# (simulated doors, console email, SMS to the bench's fake Twilio), the bench, the
# CPU each side used, then the database dropped (app.sh). Release builds first:
#
#   cargo build --release -p lockers-api --bin lockers-api -p lockers-workers --bin lockers-exchange-bench
#   ops/bench/exchange.sh [CLIENTS] [SECS]          # defaults: 64 clients, 30 s
#
# Extra bench flags: BENCH_ARGS="--poll-ms 10"; app settings, BIN_DIR and SPLIT=1 (the
# intake and one lockers-worker as two processes): app.sh.
# Output: stdout and ops/bench/results/exchange-<time>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
source ops/bench/app.sh

clients=${1:-64}
secs=${2:-30}
out="ops/bench/results/exchange-$(date -u +%Y%m%dT%H%M%SZ).txt"
start_app "$out.app.log"

# Transaction ids are cluster-wide: what others (tests in other databases)
# write shows in the bench's COMMITS line. The rate while the app idles:
xids() { psql "$pg/postgres" -Atc "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"; }
x0=$(xids); sleep 5; x1=$(xids)
background="BACKGROUND $(( (x1 - x0) / 5 )) writing transactions/s in the cluster with the app idle (5 s before the run)"

{
    echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$background"
    run_measured "$bin/lockers-exchange-bench" --api "http://127.0.0.1:$port" --twilio-listen "$twilio" \
        --clients "$clients" --secs "$secs" ${BENCH_ARGS:-}
    echo "PEAK RSS (intake first; SPLIT=1 runs the workers as a second process): $(peak_rss)"
    echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"

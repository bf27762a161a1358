#!/usr/bin/env bash
# The exchange benchmark end to end: a fresh database, `lockers-api --with-workers`
# (simulated doors, console email, SMS to the bench's fake Twilio), the bench, the
# CPU each side used, then the database dropped. Release builds first:
#
#   cargo build --release -p lockers-api --bin lockers-api -p lockers-workers --bin lockers-exchange-bench
#   ops/bench/exchange.sh [CLIENTS] [SECS]          # defaults: 64 clients, 30 s
#
# BIN_DIR=dir runs binaries saved elsewhere (to compare two builds in one session).
# Extra bench flags: BENCH_ARGS="--poll-ms 10"; extra app settings: pass them in
# the environment (e.g. WORKER_QUEUES=...). Output: stdout and
# ops/bench/results/exchange-<time>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

clients=${1:-64}
secs=${2:-30}
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db="lockers_bench_$$"
port=${BENCH_PORT:-18081}
twilio=${BENCH_TWILIO:-127.0.0.1:18080}
bin=${BIN_DIR:-target/release}
out="ops/bench/results/exchange-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p ops/bench/results

psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
api_pid=""
cleanup() {
    if [[ -n "$api_pid" ]]; then kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

export DATABASE_URL="$pg/$db"
LISTEN_ADDR=127.0.0.1:$port TRUSTED_PROXIES=127.0.0.1/32 REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} \
    REDIS_KEY_PREFIX="bench$$:" RUST_LOG=${RUST_LOG:-warn} \
    SMS_PROVIDER=twilio TWILIO_ACCOUNT_SID=ACbench TWILIO_AUTH_TOKEN=bench TWILIO_FROM=+15005550006 \
    TWILIO_API_BASE="http://$twilio" SMS_BUDGET_PER_HOUR=100000000 \
    DOOR_DRIVER=simulated EMAIL_PROVIDER=console \
    "$bin/lockers-api" --with-workers >"$out.app.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done

# CPU seconds (user + system) of a set of processes, from /proc.
cpu_of() {
    local total=0 pid
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
pg_pids() { pgrep -u postgres -x postgres | tr '\n' ' '; }
# Transaction ids are cluster-wide: what others (tests in other databases)
# write shows in the bench's COMMITS line. The rate while the app idles:
xids() { psql "$pg/postgres" -Atc "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"; }
x0=$(xids); sleep 5; x1=$(xids)
background="BACKGROUND $(( (x1 - x0) / 5 )) writing transactions/s in the cluster with the app idle (5 s before the run)"
tick=$(getconf CLK_TCK)
all_before=$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat)
pg_before=$(cpu_of $(pg_pids))
api_before=$(cpu_of "$api_pid")
started=$(date +%s.%N)

{
    echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$background"
    "$bin/lockers-exchange-bench" --api "http://127.0.0.1:$port" --twilio-listen "$twilio" \
        --clients "$clients" --secs "$secs" ${BENCH_ARGS:-} &
    bench_pid=$!
    bench_cpu=0
    while kill -0 "$bench_pid" 2>/dev/null; do
        bench_cpu=$(cpu_of "$bench_pid")
        sleep 0.5
    done
    wait "$bench_pid"
    ended=$(date +%s.%N)
    all_after=$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat)
    pg_after=$(cpu_of $(pg_pids))
    api_after=$(cpu_of "$api_pid")
    awk -v t="$tick" -v wall="$(echo "$ended - $started" | bc)" -v api=$((api_after - api_before)) \
        -v pg=$((pg_after - pg_before)) -v bench="$bench_cpu" -v all=$((all_after - all_before)) 'BEGIN {
        printf "CPU over %.1f s wall (setup and warm-up included): api+workers %.1f s, postgres %.1f s, bench %.1f s, other %.1f s, machine busy %.0f%% of 2 cores\n",
            wall, api / t, pg / t, bench / t, (all - api - pg - bench) / t, 100 * all / t / wall / 2 }'
    echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"

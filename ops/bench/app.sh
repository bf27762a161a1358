# Sourced by the HTTP benchmarks (exchange.sh, code.sh): a fresh database, the
# app (`lockers-api --with-workers`, simulated doors, console email, SMS to the
# bench's fake Twilio), CPU accounting helpers, and cleanup on exit (the app
# stopped, the database dropped). Settings: BENCH_PG, BENCH_PORT, BENCH_TWILIO,
# BIN_DIR (binaries saved elsewhere, to compare two builds in one session), and
# any app setting passed in the environment (e.g. WORKER_QUEUES=...).
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db="lockers_bench_$$"
port=${BENCH_PORT:-18081}
twilio=${BENCH_TWILIO:-127.0.0.1:18080}
bin=${BIN_DIR:-target/release}
mkdir -p ops/bench/results

api_pid=""
worker_pid=""
cleanup() {
    local pid
    for pid in $worker_pid $api_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

# start_app LOG: creates the database and starts the app, logging to LOG:
# `lockers-api --with-workers`, or with SPLIT=1 the intake (`lockers-api`) and
# one `lockers-worker` (every queue, the scheduler) as two processes.
start_app() {
    psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
    # BENCH_PG_SOCKET=DIR: the app reaches PostgreSQL over its Unix socket in
    # DIR (same server) instead of TCP.
    if [[ -n ${BENCH_PG_SOCKET:-} ]]; then
        export DATABASE_URL="postgres://postgres@localhost/$db?host=$BENCH_PG_SOCKET"
    else
        export DATABASE_URL="$pg/$db"
    fi
    export LISTEN_ADDR=127.0.0.1:$port TRUSTED_PROXIES=127.0.0.1/32 REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} \
        REDIS_KEY_PREFIX="bench$$:" RUST_LOG=${RUST_LOG:-warn} \
        SMS_PROVIDER=twilio TWILIO_ACCOUNT_SID=ACbench TWILIO_AUTH_TOKEN=bench TWILIO_FROM=+15005550006 \
        TWILIO_API_BASE="http://$twilio" SMS_BUDGET_PER_HOUR=100000000 \
        DOOR_DRIVER=simulated EMAIL_PROVIDER=console
    if [[ ${SPLIT:-0} == 1 ]]; then
        "$bin/lockers-api" >"$1" 2>&1 &
        api_pid=$!
        # The intake creates and migrates the database; the worker starts after.
        wait_up "$1" || return 1
        "$bin/lockers-worker" >"$1.worker" 2>&1 &
        worker_pid=$!
        return 0
    fi
    "$bin/lockers-api" --with-workers >"$1" 2>&1 &
    api_pid=$!
    wait_up "$1" || return 1
    # BENCH_SQL: diagnostics only, run on the bench's database once it is migrated.
    [[ -z ${BENCH_SQL:-} ]] || psql "$pg/$db" -qc "$BENCH_SQL" >/dev/null
}

wait_up() {
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the app did not start; see $1" >&2
    return 1
}

# Peak resident memory (VmHWM) of the app's processes, in MiB.
peak_rss() {
    local pid
    for pid in "$api_pid" $worker_pid; do
        awk -v pid="$pid" '/^VmHWM/ { printf "pid %s %.1f MiB  ", pid, $2 / 1024 }' "/proc/$pid/status"
    done
    echo
}

# CPU seconds (user + system, in clock ticks) of a set of processes, from /proc.
cpu_of() {
    local total=0 pid
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
pg_pids() { pgrep -u postgres -x postgres | tr '\n' ' '; }
machine_cpu() { awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat; }

# run_measured NAME CMD...: runs the bench command, then prints one CPU line
# (the app, PostgreSQL, the bench, everything else) over its wall time.
run_measured() {
    local tick all_before pg_before api_before started bench_pid bench_cpu=0 ended
    tick=$(getconf CLK_TCK)
    all_before=$(machine_cpu)
    pg_before=$(cpu_of $(pg_pids))
    api_before=$(cpu_of "$api_pid" $worker_pid)
    started=$(date +%s.%N)
    "$@" &
    bench_pid=$!
    while kill -0 "$bench_pid" 2>/dev/null; do
        bench_cpu=$(cpu_of "$bench_pid")
        sleep 0.5
    done
    wait "$bench_pid"
    ended=$(date +%s.%N)
    awk -v t="$tick" -v wall="$(echo "$ended - $started" | bc)" -v api=$(($(cpu_of "$api_pid" $worker_pid) - api_before)) \
        -v pg=$(($(cpu_of $(pg_pids)) - pg_before)) -v bench="$bench_cpu" -v all=$(($(machine_cpu) - all_before)) 'BEGIN {
        printf "CPU over %.1f s wall (setup and warm-up included): api+workers %.1f s, postgres %.1f s, bench %.1f s, other %.1f s, machine busy %.0f%% of 2 cores\n",
            wall, api / t, pg / t, bench / t, (all - api - pg - bench) / t, 100 * all / t / wall / 2 }'
}

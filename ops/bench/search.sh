#!/usr/bin/env bash
# Search by place and login storm benchmark (issue 12). Usage:
#   flock /tmp/bench.lock ops/bench/search.sh [search|login|all]
# A fresh database (migrated by the binary under test, filled by
# search_data.sql: 1,030 points, 10,300 lockers), then the intake alone
# (`lockers-api`, no workers), then wrk (installed from Debian if missing):
# each search scenario for SECS seconds (default 10) at CONNS connections
# (default 32) after a 2 s warm-up; the login storm for LOGIN_SECS (15) at 16
# connections. Limits raised by configuration so one machine can load it:
# PUBLIC_READ_LIMIT_PER_MIN and AUTH_IP_LIMIT_PER_MIN=4000000000; logins come
# from distinct addresses through X-Forwarded-For (TRUSTED_PROXIES=127.0.0.1/32).
# REDIS_URL is unset: the in-process limiter counts every request.
# BIN_DIR picks the binaries (default target/release), to compare two builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db="lockers_bench_search_$$"
port=${BENCH_PORT:-18091}
bin=${BIN_DIR:-target/release}
secs=${SECS:-10}
conns=${CONNS:-32}
login_secs=${LOGIN_SECS:-15}
base="http://127.0.0.1:$port"
log=$(mktemp /tmp/lockers-bench-search.XXXXXX.log)

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null

api_pid=""
stop_app() {
    if [[ -n "$api_pid" ]]; then kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
    api_pid=""
}
cleanup() {
    stop_app
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

export DATABASE_URL="$pg/$db" RUST_LOG=${RUST_LOG:-warn} APP_ENV=development
unset REDIS_URL
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
"$bin/lockers-admin" migrate >/dev/null
psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f ops/bench/search_data.sql

start_app() {
    LISTEN_ADDR=127.0.0.1:$port TRUSTED_PROXIES=127.0.0.1/32 DOOR_DRIVER=simulated \
        PUBLIC_READ_LIMIT_PER_MIN=4000000000 AUTH_IP_LIMIT_PER_MIN=4000000000 \
        "$bin/lockers-api" >>"$log" 2>&1 &
    api_pid=$!
    for _ in $(seq 1 100); do
        curl -fs "$base/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the app did not start; see $log" >&2
    exit 1
}
rss_kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$api_pid/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# run NAME CONNS SECS wrk-args...: one row of the results table.
run() {
    local name=$1 c=$2 s=$3 out
    shift 3
    out=$(wrk -t2 -c"$c" -d"${s}s" --latency "$@")
    echo "$out" | awk -v name="$name" -v peak="$(mib "$(rss_kib VmHWM)")" '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 } /Non-2xx/ { bad = $NF } /requests in/ { n = $1 }
        /Socket errors/ { for (i = 1; i < NF; i++) if ($i == "timeout") timeouts = $(i + 1) }
        END { printf "| %s | %d | %.0f | %.2f | %.2f | %d | %d | %s |\n", name, n, rps, p50, p99, bad + 0, timeouts + 0, peak }'
}

echo "binaries: $bin ($(stat -c %y "$bin/lockers-api" | cut -d. -f1)); load before: $(cat /proc/loadavg)"
if [[ "$what" == search || "$what" == all ]]; then
    start_app
    city=$(psql -Atc "SELECT id FROM cities WHERE name = 'Bengalūru'" "$DATABASE_URL")
    point=$(psql -Atc "SELECT id FROM locker_points ORDER BY name LIMIT 1" "$DATABASE_URL")
    echo "| Scenario ($conns connections, ${secs} s) | Requests | Requests/s | p50 ms | p99 ms | Non-2xx | Timeouts (2 s) | Peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    for scenario in \
        "points, no query|/api/v1/locker-points?per_page=20" \
        "points, a word (koramangala)|/api/v1/locker-points?q=koramangala&per_page=20" \
        "points, two words (metro station)|/api/v1/locker-points?q=metro%20station&per_page=20" \
        "points, a city (city_id)|/api/v1/locker-points?city_id=$city&per_page=20" \
        "points, a typo (kormangala)|/api/v1/locker-points?q=kormangala&per_page=20" \
        "points, a word in every address (road)|/api/v1/locker-points?q=road&per_page=20" \
        "lockers, no query|/api/v1/lockers?per_page=20" \
        "lockers, a word (metro)|/api/v1/lockers?q=metro&per_page=20" \
        "lockers, a word (koramangala)|/api/v1/lockers?q=koramangala&per_page=20" \
        "lockers, two words (koramangala metro)|/api/v1/lockers?q=koramangala%20metro&per_page=20" \
        "lockers, a city (city_id)|/api/v1/lockers?city_id=$city&per_page=20" \
        "lockers, a word in every address (road)|/api/v1/lockers?q=road&per_page=20" \
        "lockers, one point (point_id)|/api/v1/lockers?point_id=$point" \
        "lockers/by-place (koramangala)|/api/v1/lockers/by-place?location=koramangala&per_page=20"; do
        name=${scenario%%|*}
        path=${scenario#*|}
        wrk -t2 -c"$conns" -d2s "$base$path" >/dev/null
        run "$name" "$conns" "$secs" "$base$path"
    done
    stop_app
fi
if [[ "$what" == login || "$what" == all ]]; then
    for i in $(seq 0 15); do
        echo "bench password $i" | "$bin/lockers-admin" create-admin --email "bench$i@example.com" --name "Bench $i" >/dev/null 2>&1
    done
    start_app
    ok=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        -d '{"identifier":"bench0@example.com","password":"bench password 0"}' "$base/api/v1/auth/login")
    [[ "$ok" == 200 ]] || { echo "a bench login answered $ok; see $log" >&2; exit 1; }
    before=$(rss_kib VmRSS)
    echo "| Scenario | Requests | Requests/s | p50 ms | p99 ms | Non-2xx | Timeouts (2 s) | Peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    run "login storm, 16 connections, ${login_secs} s" 16 "$login_secs" -s ops/bench/login.lua "$base"
    sleep 5
    echo "RSS: $(mib "$before") MiB before the storm, $(mib "$(rss_kib VmHWM)") MiB peak, $(mib "$(rss_kib VmRSS)") MiB 5 s after"
    stop_app
fi
echo "load after: $(cat /proc/loadavg)"

#!/usr/bin/env bash
# How soon a pickup-code request reaches the SMS provider (code_bench.rs): a fresh
# database, the app with its workers sending SMS to the bench's fake Twilio (app.sh),
# RATE requests/s for SECS seconds. Release builds first:
#
#   cargo build --release -p lockers-api --bin lockers-api -p lockers-workers --bin lockers-code-bench
#   ops/bench/code.sh [RATE] [SECS]          # defaults: 100 requests/s, 60 s
#
# Output: stdout and ops/bench/results/code-<time>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
source ops/bench/app.sh

rate=${1:-100}
secs=${2:-60}
out="ops/bench/results/code-$(date -u +%Y%m%dT%H%M%SZ).txt"
start_app "$out.app.log"
{
    echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    run_measured "$bin/lockers-code-bench" --api "http://127.0.0.1:$port" --twilio-listen "$twilio" \
        --rate "$rate" --secs "$secs" ${BENCH_ARGS:-}
    echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"

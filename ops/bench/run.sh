#!/usr/bin/env bash
# Job engine benchmark, side by side with graphile-worker in the same run.
# Workloads (README.md): A = bulk-enqueue 50,000 no-op jobs, drain with 16 in flight;
# B = one job per transaction at 200 jobs/s and at 2,000 jobs/s for 20 s, enqueue-to-start latency.
# Every timed run holds flock /tmp/bench.lock, so nothing else measured runs at the same time.
#
# Usage: ops/bench/run.sh [runs]     (default 3 runs per workload and system; results under ops/bench/results/)
#        NO_PEERS=1 ops/bench/run.sh  (our engine alone: no node, npm or graphile-worker needed)
# Needs: a release build (cargo build --release -p lockers-workers --bin lockers-jobs-bench),
#        PostgreSQL on 127.0.0.1:5432, node + npm for graphile-worker (npm ci is run here) unless NO_PEERS=1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
peers=${PEERS:-$here/peers}
runs=${1:-3}
bench=${BENCH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/lockers-jobs-bench}
out="$here/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
cpu="python3 $peers/cpuwrap.py"

# Not -e: a run that times out is recorded (its CPU line shows rc=124) and the others still run.
[[ -x $bench ]] || { echo "build first: cargo build --release -p lockers-workers --bin lockers-jobs-bench" >&2; exit 1; }
# The peer comparison is optional: NO_PEERS=1 measures our engine alone.
if [[ -z ${NO_PEERS:-} ]]; then
  (cd "$peers/graphile" && [[ -d node_modules ]] || npm ci --silent)
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'bench_graphile'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE bench_graphile"
  (cd "$peers/graphile" && node bench.js setup >/dev/null)
fi

{
  echo "# $(date -u) on $(nproc) cores; load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# engine settings: JOB_PREFETCH=${JOB_PREFETCH:-100 (default)} JOB_RETENTION_SECS=${JOB_RETENTION_SECS:-0 (default)}"
} | tee "$out/summary.txt"

for i in $(seq "$runs"); do
  echo "## A: drain 50,000, run $i" | tee -a "$out/summary.txt"
  flock /tmp/bench.lock $cpu "lockers-drain" -- timeout 120 "$bench" drain 50000 2>&1 | grep -E "ENQUEUE|DRAIN|CPU|rror" | tee -a "$out/summary.txt"
  [[ -n ${NO_PEERS:-} ]] || (cd "$peers/graphile" && flock /tmp/bench.lock node bench.js enqueue 50000 >/dev/null \
    && flock /tmp/bench.lock $cpu "graphile-drain--tuned" -- timeout 88 node bench.js drain 50000 --tuned 2>&1) \
    | grep -E "DRAIN|CPU|rror" | tee -a "$out/summary.txt"
done

for rate in 200 2000; do
  for i in $(seq "$runs"); do
    echo "## B: $rate jobs/s for 20 s, run $i" | tee -a "$out/summary.txt"
    flock /tmp/bench.lock $cpu "lockers-latency-$rate" -- timeout 120 "$bench" latency "$rate" 20 2>&1 \
      | grep -E "LATENCY|per-second|CPU|rror" | tee -a "$out/summary.txt"
    # graphile's harness produces from one connection in sequence: at 2,000/s it
    # falls behind (one commit takes about 1 ms here); its line reports the rate reached.
    [[ -n ${NO_PEERS:-} ]] || (cd "$peers/graphile" && flock /tmp/bench.lock $cpu "graphile-latency-$rate--tuned" -- timeout 150 node bench.js latency "$rate" 20 --tuned 2>&1) \
      | grep -E "LATENCY|per-second|CPU|rror" | tee -a "$out/summary.txt"
  done
done
echo "results: $out/summary.txt"

#!/usr/bin/env bash
# `make bench` / `make bench-smoke` (BENCH_SMOKE=1): the same workloads against Parley, the
# tutorial's Node.js `ws` server and the tutorial's Python `websockets` server, plus a trivial
# sink that shows the load generator's own ceiling; then the multi-node workload (Parley on
# PostgreSQL: one node, one node + Redis, two nodes + Redis). Writes
# bench/results/latest.{md,json,png} (smoke: smoke.*). The generator is bench/parley_bench
# (`make` installs it into the venv). Extra arguments for `python -m parley_bench suite` go in
# BENCH_ARGS, e.g. BENCH_ARGS="--targets parley,node --workloads fanout --sizes 1000".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

# The Node peer: npm `ws` at the version pinned in package-lock.json.
if command -v npm >/dev/null 2>&1; then
  if [ ! -f bench/peers/node_modules/ws/package.json ] ||
     [ bench/peers/package-lock.json -nt bench/peers/node_modules/.package-lock.json ]; then
    (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "bench: npm not found; the Node ws peer is skipped (make system-deps installs it)" >&2
fi

# Every process started from here inherits the raised open-files limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

args=()
limit=1800
if [ "${BENCH_SMOKE:-0}" = 1 ]; then
  args+=(--smoke)
  limit=240
elif [ "$(id -u)" -eq 0 ]; then
  # The machine may be shared (other test runs): the benchmark's own processes, servers and
  # generator alike, run at a higher priority so that the comparison stays fair and stable.
  args+=(--nice -10)
fi
# shellcheck disable=SC2206
args+=(${BENCH_ARGS:-})
# A session of its own (its own scheduler autogroup, see --nice) and a hard stop in time:
# timeout signals its whole process group, servers and workers included.
setsid timeout --kill-after=20 "$limit" "$PY" -m parley_bench suite "${args[@]}" &
child=$!
trap 'kill -TERM -- "-$child" 2>/dev/null || true; wait "$child"; exit 130' INT TERM
wait "$child"

#!/usr/bin/env bash
# Load test of the forward-auth endpoint /v1/authz with wrk, against a
# sidecar started by internal/perf/cmd/perfsidecar on 127.0.0.1 (SQLite,
# production defaults, logs at warn). Bounded: each scenario runs DURATION
# (default 10s), the sidecar stops by itself after 3 minutes at most.
#
#   bash internal/perf/scripts/load.sh           # or: make bench-load
#   DURATION=5s CONNECTIONS=16 bash internal/perf/scripts/load.sh
#
# Prints the load average before and after, one RESULT line per scenario
# (requests/s, p50/p90/p99/max latency, unexpected statuses, socket errors)
# and the sidecar's CPU time and RSS. The sidecar, the Keycloak-compatible
# server and wrk share the machine's cores: read the numbers as a floor.
set -euo pipefail
cd "$(dirname "$0")/../../.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "skipping the load test: wrk is not installed (Debian: apt-get install wrk)"
  exit 0
fi

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
script=internal/perf/scripts/authz.lua

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/perfsidecar" ./internal/perf/cmd/perfsidecar
"$work/perfsidecar" -env "$work/env" -for 3m 2>"$work/sidecar.log" &
pid=$!
for _ in $(seq 1 120); do
  [ -f "$work/env" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "perfsidecar exited:"; cat "$work/sidecar.log"; exit 1
  fi
  sleep 0.5
done
[ -f "$work/env" ] || { echo "perfsidecar did not start within 60s"; cat "$work/sidecar.log"; exit 1; }
# shellcheck disable=SC1091
. "$work/env"
export ACCESS_TOKEN
case "$SIDECAR_URL" in
  http://127.0.0.1:*) ;;
  *) echo "refusing to load $SIDECAR_URL: loopback only"; exit 1 ;;
esac

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), wrk $(wrk -v 2>&1 | head -n1 | cut -d' ' -f2)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sidecar RSS idle: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
for scenario in "GET 200" "POST 401"; do
  set -- $scenario
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  ORIGINAL_METHOD=$1 EXPECT_STATUS=$2 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$SIDECAR_URL/v1/authz" | tee "$work/wrk.out"
  t1=$(cpu_ticks); s1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" \
    'BEGIN { printf "sidecar CPU during the run: %.1f s over %.1f s wall = %.2f cores\n", (b-a)/hz, s1-s0, (b-a)/hz/(s1-s0) }'
  echo "sidecar RSS after: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
  if grep -q 'RESULT.*unexpected=[1-9]' "$work/wrk.out"; then
    echo "FAIL: answers other than $2 (sidecar log follows)"; cat "$work/sidecar.log"; exit 1
  fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

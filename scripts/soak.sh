#!/bin/sh
# The long soak (not CI): tests/chaos/test_soak.py for 30 minutes in 5-minute windows, a worker
# added and removed in every window, one SIGKILL in the middle window; prints the table.
#   sh scripts/soak.sh [seconds] [window seconds]            # embedded Tansu, ~200 fixes/s
#   sh scripts/soak.sh [seconds] [window seconds] --kafka    # Apache Kafka 3.9.1, 1,000 fixes/s
# --kafka starts scripts/apache-kafka/run.sh (a fresh log dir), runs the soak against it and stops it.
# BANWATCH_SOAK_RATE overrides the rate (fixes/s); BANWATCH_SOAK_BOOTSTRAP and
# BANWATCH_SOAK_BROKER_PID point it at a broker that is already running.
cd "$(dirname "$0")/.." || exit 1
seconds="${1:-1800}"
window="${2:-300}"
if [ "${3:-}" = "--kafka" ]; then
  out="$(sh scripts/apache-kafka/run.sh start)" || exit 1
  printf '%s\n' "$out"
  bootstrap="$(printf '%s\n' "$out" | sed -n 's/^bootstrap: //p')"
  pid="$(printf '%s\n' "$out" | sed -n 's/^pid: //p')"
  BANWATCH_SOAK_S="$seconds" BANWATCH_SOAK_WINDOW_S="$window" \
    BANWATCH_SOAK_RATE="${BANWATCH_SOAK_RATE:-1000}" \
    BANWATCH_SOAK_BOOTSTRAP="$bootstrap" BANWATCH_SOAK_BROKER_PID="$pid" \
    python3 -m pytest -s -q -p no:cacheprovider tests/chaos/test_soak.py
  rc=$?
  sh scripts/apache-kafka/run.sh stop
  exit $rc
fi
BANWATCH_SOAK_S="$seconds" BANWATCH_SOAK_WINDOW_S="$window" \
  exec python3 -m pytest -s -q -p no:cacheprovider tests/chaos/test_soak.py

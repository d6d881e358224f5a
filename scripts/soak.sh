#!/bin/sh
# The long soak (not CI): tests/chaos/test_soak.py for 30 minutes at ~200 fixes/s, 5-minute
# windows, a worker added at 1/4, removed at 1/2, one SIGKILL at 3/4; prints the table.
#   sh scripts/soak.sh [seconds] [window seconds]
cd "$(dirname "$0")/.." || exit 1
BANWATCH_SOAK_S="${1:-1800}" BANWATCH_SOAK_WINDOW_S="${2:-300}" \
  exec python3 -m pytest -s -q -p no:cacheprovider tests/chaos/test_soak.py

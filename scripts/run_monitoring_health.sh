#!/bin/sh
# Deep health check of the monitoring stack: the POSIX twin of run_monitoring_health.ps1.
#
#   scripts/run_monitoring_health.sh           table for people
#   scripts/run_monitoring_health.sh --json    JSON for machines
#
# Exit code: 0 when nothing fails (warnings allowed), 1 when a check fails,
# 2 on a usage or configuration error. Other arguments go to `hux health`.
set -eu
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
PYTHON="$ROOT/.venv/bin/python"
if [ ! -x "$PYTHON" ]; then
    echo "run_monitoring_health: $PYTHON not found; set the project up first: python3 scripts/setup_monitoring.py" >&2
    exit 2
fi
# The stack's home is the checkout (unless HUX_HOME says otherwise), as for setup_monitoring.py.
cd "$ROOT"
exec "$PYTHON" -m hux.cli health "$@"

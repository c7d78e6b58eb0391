#!/usr/bin/env bash
# The test command of README.md: sets up the cached venv if missing, then runs pytest.
# Extra arguments go to pytest (e.g. `bash scripts/run_tests.sh -k beats -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
set -euo pipefail
exec python -m pytest tests "$@"

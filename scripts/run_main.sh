#!/usr/bin/env bash
# The main job of README.md: sets up the cached venv if missing, then runs the default recipe
# (egs2/debian_sounds/sonar1) end to end on the offline corpus it builds itself.
# Extra arguments go to run.sh (e.g. `bash scripts/run_main.sh --stage 3`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
set -euo pipefail
cd egs2/debian_sounds/sonar1
exec ./run.sh "$@"

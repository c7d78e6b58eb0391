#!/usr/bin/env bash
# Print the value of a top-level key of a YAML config (empty if absent).
#   utils/config_value.sh conf/tiny/decar_efficientnet.yaml encoder   -> efficientnet
set -euo pipefail
[ $# -eq 2 ] || { echo "Usage: $0 CONFIG.yaml KEY" >&2; exit 1; }
[ -f "$1" ] || { echo "$0: config $1 not found" >&2; exit 1; }
python - "$1" "$2" <<'PY'
import sys

import yaml

path, key = sys.argv[1], sys.argv[2]
with open(path) as f:
    data = yaml.safe_load(f) or {}
if not isinstance(data, dict):
    sys.exit(f"{path}: not a YAML mapping")
value = data.get(key, "")
print("" if value is None else value)
PY

#!/usr/bin/env bash
# Create (or reuse) the project's Python 3.12 venv, cached outside the clone and keyed on
# requirements.txt and requirements-nodeps.txt (packages installed without their dependencies);
# then install this checkout into it (editable, no deps: seconds).
# Usage: source scripts/venv.sh   (exports SONAR_VENV and puts its bin/ first on PATH)
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_cache="${SONAR_CACHE:-$HOME/.cache/espnet2_sonar}"
_key="$(cat "$_root/requirements.txt" "$_root/requirements-nodeps.txt" | sha256sum | cut -c1-12)"
export SONAR_VENV="$_cache/venv-py312-$_key"

_find_py312() {
    if command -v python3.12 >/dev/null 2>&1 && PYENV_VERSION=3.12.1 python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        echo "env PYENV_VERSION=3.12.1 python3.12"; return
    fi
    for p in "$HOME/.pyenv/versions/3.12.1/bin/python3.12" /usr/bin/python3.12 /usr/local/bin/python3.12; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    echo "error: Python 3.12 not found (try: pyenv install 3.12.1)" >&2; return 1
}

if [ ! -f "$SONAR_VENV/.complete" ]; then
    echo "[venv] creating $SONAR_VENV (first time: ~3 min, ~6.5 GB)" >&2
    mkdir -p "$_cache"
    rm -rf "$SONAR_VENV"
    _py="$(_find_py312)"
    $_py -m venv "$SONAR_VENV"
    "$SONAR_VENV/bin/pip" install -q --upgrade pip >&2
    "$SONAR_VENV/bin/pip" install -q -r "$_root/requirements.txt" >&2
    "$SONAR_VENV/bin/pip" install -q --no-deps -r "$_root/requirements-nodeps.txt" >&2
    touch "$SONAR_VENV/.complete"
fi
# Editable install of this checkout (console entry points); PYTHONPATH makes every process
# started from here import this checkout even when another clone shares the cached venv.
"$SONAR_VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$_root" >&2
export PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SONAR_VENV/bin:$PATH"
export VIRTUAL_ENV="$SONAR_VENV"
set +euo pipefail

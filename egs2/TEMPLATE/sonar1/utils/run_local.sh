#!/usr/bin/env bash
# Local job backend: run_local.sh [--gpu N] [--mem X] [--time T] LOGFILE COMMAND...
# Runs COMMAND here, tee-ing output to LOGFILE; exit status is COMMAND's.
# (--gpu/--mem/--time are accepted for interface parity with run_slurm.sh and ignored.)
set -uo pipefail
while [ $# -gt 0 ]; do
    case "$1" in --gpu|--mem|--time) shift 2 ;; *) break ;; esac
done
log="$1"; shift
mkdir -p "$(dirname "$log")"
{ echo "# $*"; echo "# started $(date)"; } > "$log"
"$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
echo "# ended $(date) with status $status" >> "$log"
exit "$status"

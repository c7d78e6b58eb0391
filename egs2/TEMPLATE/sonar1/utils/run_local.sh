#!/usr/bin/env bash
# Local job backend: run_local.sh [--gpu N] [--mem X] [--time T] [--num_threads T] LOGFILE COMMAND...
# Runs COMMAND here, tee-ing output to LOGFILE; exit status is COMMAND's.
# (--gpu/--mem/--time/--num_threads are accepted for interface parity with run_slurm.sh and ignored;
# --num_nodes above 1 is an error: this machine is one node.)
set -uo pipefail
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu|--mem|--time|--num_threads) shift 2 ;;
        --num_nodes)
            if [ "$2" -gt 1 ]; then echo "run_local.sh: --num_nodes $2: the local backend runs on this machine only; use cmd_backend=slurm" >&2; exit 1; fi
            shift 2 ;;
        *) break ;;
    esac
done
log="$1"; shift
mkdir -p "$(dirname "$log")"
{ echo "# $*"; echo "# started $(date)"; } > "$log"
"$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
echo "# ended $(date) with status $status" >> "$log"
exit "$status"

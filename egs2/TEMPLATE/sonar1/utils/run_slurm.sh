#!/usr/bin/env bash
# Slurm job backend: run_slurm.sh [--gpu N] [--mem X] [--time T] LOGFILE COMMAND...
# Submits COMMAND with srun (blocking) and writes its output to LOGFILE.
# Extra sbatch/srun options come from $SLURM_EXTRA (e.g. "--partition gpu --account me").
set -uo pipefail
gpu=0; mem=16G; time=24:00:00
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) gpu="$2"; shift 2 ;;
        --mem) mem="$2"; shift 2 ;;
        --time) time="$2"; shift 2 ;;
        *) break ;;
    esac
done
log="$1"; shift
mkdir -p "$(dirname "$log")"
command -v srun >/dev/null || { echo "run_slurm.sh: srun not found; use the local backend in cmd.sh" >&2; exit 1; }
gres=""; [ "$gpu" -gt 0 ] && gres="--gres=gpu:${gpu}"
echo "# srun $gres --mem $mem --time $time ${SLURM_EXTRA:-} $*" > "$log"
# shellcheck disable=SC2086
srun $gres --mem "$mem" --time "$time" ${SLURM_EXTRA:-} "$@" >> "$log" 2>&1

#!/usr/bin/env bash
# Slurm job backend: run_slurm.sh [--gpu N] [--mem X] [--time T] [--num_threads T] [--num_nodes M] LOGFILE COMMAND...
# One node (the default): runs COMMAND with a blocking srun and writes its output to LOGFILE.
# --num_nodes M > 1 (ESPnet's launcher, utils/launch.sh): allocates M nodes with salloc (one task per
# node, N GPUs and T CPUs each) and runs COMMAND there; COMMAND is the launcher's
# `srun --export=ALL python ...`, one training process per node.
# Also reachable as utils/slurm.pl: ESPnet's launcher picks its srun path by that name.
# Extra salloc/srun options come from $SLURM_EXTRA (e.g. "--partition gpu --account me").
set -uo pipefail
gpu=0; mem=16G; time=24:00:00; num_threads=1; num_nodes=1
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) gpu="$2"; shift 2 ;;
        --mem) mem="$2"; shift 2 ;;
        --time) time="$2"; shift 2 ;;
        --num_threads) num_threads="$2"; shift 2 ;;
        --num_nodes) num_nodes="$2"; shift 2 ;;
        *) break ;;
    esac
done
log="$1"; shift
mkdir -p "$(dirname "$log")"
gres=""; [ "$gpu" -gt 0 ] && gres="--gres=gpu:${gpu}"
if [ "$num_nodes" -gt 1 ]; then
    command -v salloc >/dev/null || { echo "run_slurm.sh: salloc not found; --num_nodes needs Slurm" >&2; exit 1; }
    launch=(salloc --nodes "$num_nodes" --ntasks-per-node 1 --cpus-per-task "$num_threads")
else
    command -v srun >/dev/null || { echo "run_slurm.sh: srun not found; use the local backend in cmd.sh" >&2; exit 1; }
    launch=(srun)
fi
# shellcheck disable=SC2086
echo "# ${launch[*]} $gres --mem $mem --time $time ${SLURM_EXTRA:-} $*" > "$log"
# shellcheck disable=SC2086
"${launch[@]}" $gres --mem "$mem" --time "$time" ${SLURM_EXTRA:-} "$@" >> "$log" 2>&1

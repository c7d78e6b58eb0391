#!/usr/bin/env bash
# Start one ESPnet training through ESPnet's launcher (python -m espnet2.bin.launch), always as
# DDP when it uses more than one device, never as DataParallel (whose replicas would lose the
# online codebook's buffer updates):
#   utils/launch.sh [--cmd CMD] [--ngpu N] [--num_nodes M] [--cpu_ranks R] LOG MODULE [training args...]
# runs `python -m MODULE [training args...]` with the launcher's --ngpu and distributed options:
#   --ngpu 0 or 1 (one node)    one process: CMD --gpu N LOG python -m MODULE ... --ngpu N
#   --ngpu N > 1 (one node)     DDP, one process per GPU (ESPnet spawns them: --multiprocessing_distributed true)
#   --num_nodes M > 1           DDP over M nodes x N GPUs: CMD must be the Slurm backend (utils/slurm.pl:
#                               salloc of M nodes, srun one task per node); ranks meet through a file next
#                               to LOG (a shared file system)
#   --ngpu 0 --cpu_ranks R > 1  DDP over R CPU processes on this machine (gloo, torch.distributed.run):
#                               CPU-only machines, and the tests of the recipe's DDP
# CMD defaults to utils/run_local.sh (the recipe passes cmd.sh's ${cuda_cmd}). The launcher appends --ngpu and --multiprocessing_distributed
# to the training args (so they win), and keeps older logs as LOG's <name>.1.log, <name>.2.log, ...
set -euo pipefail
cmd=utils/run_local.sh
ngpu=0
num_nodes=1
cpu_ranks=1
die() { echo "launch.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cmd|--ngpu|--num_nodes|--cpu_ranks)
            [ $# -ge 2 ] || die "$1 needs a value"
            printf -v "${1#--}" '%s' "$2"; shift 2 ;;
        --*) die "unknown option $1 (--cmd, --ngpu, --num_nodes, --cpu_ranks)" ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || die "usage: launch.sh [--cmd CMD] [--ngpu N] [--num_nodes M] [--cpu_ranks R] LOG MODULE [args...]"
log=$1 module=$2; shift 2
for name in ngpu num_nodes cpu_ranks; do
    [[ "${!name}" =~ ^[0-9]+$ ]] || die "--${name} must be a non-negative integer, got '${!name}'"
done
[ "${num_nodes}" -ge 1 ] || die "--num_nodes must be at least 1"
[ "${cpu_ranks}" -ge 1 ] || die "--cpu_ranks must be at least 1"
cmd_name=$(basename "${cmd%% *}")
if [ "${num_nodes}" -gt 1 ] && [ "${cmd_name}" != slurm.pl ]; then
    die "--num_nodes ${num_nodes} needs the Slurm backend (cmd_backend=slurm in cmd.sh: utils/slurm.pl), not '${cmd}'"
fi
runner=(python)
train_extra=()
if [ "${cpu_ranks}" -gt 1 ]; then
    [ "${ngpu}" -eq 0 ] || die "--cpu_ranks ${cpu_ranks} is for CPU training: give --ngpu 0 (got --ngpu ${ngpu})"
    [ "${num_nodes}" -eq 1 ] || die "--cpu_ranks runs on this machine only: give --num_nodes 1"
    runner=(python -m torch.distributed.run --standalone --nproc_per_node "${cpu_ranks}")
    train_extra=(--dist_backend gloo)
fi
mkdir -p "$(dirname "${log}")"
exec python -m espnet2.bin.launch --cmd "${cmd}" --log "${log}" --ngpu "${ngpu}" --num_nodes "${num_nodes}" \
    --init_file_prefix "$(dirname "${log}")/.dist_init_" --multiprocessing_distributed true \
    -- "${runner[@]}" -m "${module}" "$@" "${train_extra[@]}"

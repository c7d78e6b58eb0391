#!/usr/bin/env bash
# The base model on valid, once per training seed: does it beat the random-init floor on every
# old task by 10 points or more? (issue: a base that knows something). Writes
# local/base_valid.{json,md}, the committed results file.
#   local/base_seeds.sh [--seeds "0 1 2"] [--exp_dir exp_valid] [any run.sh option, e.g. --base_teacher ge2e]
set -euo pipefail
seeds="0 1 2"
exp_dir=exp_valid
data_dir=data
old_tasks="voice_gender prior_sfx"
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds=$2; shift 2 ;;
        --exp_dir) exp_dir=$2; shift 2 ;;
        --data_dir) data_dir=$2; shift 2 ;;
        *) break ;;
    esac
done
. ./path.sh
# probe on valid: each task's test split is its valid split (the test split is not read)
vt=${exp_dir}/valid_tasks
for t in ${old_tasks}; do
    mkdir -p "${vt}/${t}"
    ln -sfn "$(cd "${data_dir}/tasks/${t}" && pwd)/train" "${vt}/${t}/train"
    ln -sfn "$(cd "${data_dir}/tasks/${t}" && pwd)/valid" "${vt}/${t}/test"
done
ckpts=""
names=""
for s in ${seeds}; do
    # stage 2 only; --seed goes to the base pre-training (init, data order) of this training seed
    ./run.sh --stage 2 --stop_stage 2 --data_dir "${data_dir}" --exp_dir "${exp_dir}/seed${s}" \
        --train_args "--seed ${s}" "$@"
    ckpts+=" seed${s}=${exp_dir}/seed${s}/base/encoder.pt"
    names+=" seed${s}"
done
python -m espnet2_sonar.bin.random_encoder --like "${exp_dir}/seed0/base/encoder.pt" --seed 0 \
    --out "${exp_dir}/random/encoder.pt" >/dev/null
python -m espnet2_sonar.bin.reference_encoder --kind logmel_stats --out "${exp_dir}/floors/logmel.pt" >/dev/null
python -m espnet2_sonar.bin.probe_matrix --ckpts "${ckpts} random=${exp_dir}/random/encoder.pt logmel=${exp_dir}/floors/logmel.pt" \
    --task_dir "${vt}" --tasks "${old_tasks}" --seeds "0 1 2" --out_dir "${exp_dir}/eval" --max_per_class 200
python -m espnet2_sonar.bin.base_check --eval_dir "${exp_dir}/eval" --names "${names}" --floor random \
    --tasks "${old_tasks}" --out local/base_valid.json

#!/usr/bin/env bash
# Reproduces the valid-split findings of local/findings.md (how the defaults were chosen); the
# test split is never read. Each run writes the results file the finding quotes:
#
#   base_steps  (finding 2)   base pre-training for 400 vs 1,600 steps, probed on valid
#                             -> local/valid_runs/base_steps.{json,md}
#   base_seeds  (finding 2)   the 1,600-step base once per training seed -> local/base_valid.{json,md}
#                             (local/base_seeds.sh)
#   stages180   (findings 1, 3, 4)  the default recipe (180 steps a stage), probes on valid
#                             -> local/valid_runs/stages180/{report.md,results.json,results.csv}
#   stages600   (finding 3)   the same with 600 steps a stage (--train_args "--max_epoch 10")
#                             -> local/valid_runs/stages600/...
#
#   local/valid_findings.sh [--only "base_steps base_seeds stages180 stages600"] [--exp_dir exp_valid]
#                           [--train_seeds "0 1 2"] [any run.sh option]
# About 2 CPU-hours for all four on the 2-core machine. The committed results files record the
# code they were made with (report.md / base_check JSON), so a rerun after a change to the
# recipe is compared against them, not silently merged.
set -euo pipefail
only="base_steps base_seeds stages180 stages600"
exp_dir=exp_valid
data_dir=data
train_seeds="0 1 2"
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only=$2; shift 2 ;;
        --exp_dir) exp_dir=$2; shift 2 ;;
        --data_dir) data_dir=$2; shift 2 ;;
        --train_seeds) train_seeds=$2; shift 2 ;;
        *) break ;;
    esac
done
. ./path.sh
old_tasks="voice_gender prior_sfx"
wants() { [[ " ${only} " == *" $1 "* ]]; }

./run.sh --stage 1 --stop_stage 1 --data_dir "${data_dir}" "$@"

if wants base_steps; then
    # 400 steps = 10 epochs x 40 iterations; 1,600 = the config's 10 x 160
    vt=${exp_dir}/base_steps/valid_tasks
    for t in ${old_tasks}; do
        mkdir -p "${vt}/${t}"
        ln -sfn "$(cd "${data_dir}/tasks/${t}" && pwd)/train" "${vt}/${t}/train"
        ln -sfn "$(cd "${data_dir}/tasks/${t}" && pwd)/valid" "${vt}/${t}/test"
    done
    ckpts=""
    for steps in 400 1600; do
        ./run.sh --stage 2 --stop_stage 2 --data_dir "${data_dir}" --exp_dir "${exp_dir}/base_steps/steps${steps}" \
            --train_args "--num_iters_per_epoch $((steps / 10))" "$@"
        ckpts+=" steps${steps}=${exp_dir}/base_steps/steps${steps}/base/encoder.pt"
    done
    python -m espnet2_sonar.bin.random_encoder --like "${exp_dir}/base_steps/steps1600/base/encoder.pt" --seed 0 \
        --out "${exp_dir}/base_steps/random/encoder.pt" >/dev/null
    python -m espnet2_sonar.bin.reference_encoder --kind logmel_stats --out "${exp_dir}/base_steps/logmel.pt" >/dev/null
    python -m espnet2_sonar.bin.reference_encoder --kind teacher --teacher ge2e --out "${exp_dir}/base_steps/teacher_ge2e.pt" >/dev/null
    python -m espnet2_sonar.bin.probe_matrix --task_dir "${vt}" --tasks "${old_tasks}" --seeds "0 1 2" \
        --out_dir "${exp_dir}/base_steps/eval" --max_per_class 200 \
        --ckpts "${ckpts} random=${exp_dir}/base_steps/random/encoder.pt logmel=${exp_dir}/base_steps/logmel.pt teacher_ge2e=${exp_dir}/base_steps/teacher_ge2e.pt"
    python -m espnet2_sonar.bin.base_check --eval_dir "${exp_dir}/base_steps/eval" --names "steps400 steps1600" \
        --floor random --references "logmel teacher_ge2e" --tasks "${old_tasks}" --out local/valid_runs/base_steps.json
fi

if wants base_seeds; then
    local/base_seeds.sh --seeds "${train_seeds}" --exp_dir "${exp_dir}/base_seeds" --data_dir "${data_dir}" "$@"
fi

# the stage-length runs share one base model (stages 1-2 once)
if wants stages180 || wants stages600; then
    ./run.sh --stage 2 --stop_stage 2 --data_dir "${data_dir}" --exp_dir "${exp_dir}/shared" "$@"
fi
for variant in stages180 stages600; do
    wants "${variant}" || continue
    extra=()
    [ "${variant}" = stages600 ] && extra=(--train_args "--max_epoch 10")
    mkdir -p "${exp_dir}/${variant}"
    ln -sfn "$(cd "${exp_dir}/shared" && pwd)/base" "${exp_dir}/${variant}/base"
    ./run.sh --stage 3 --stop_stage 7 --data_dir "${data_dir}" --exp_dir "${exp_dir}/${variant}" \
        --eval_split valid --train_seeds "${train_seeds}" --report_notes "" "${extra[@]}" "$@"
    mkdir -p "local/valid_runs/${variant}"
    cp "${exp_dir}/${variant}/report/"{report.md,results.json,results.csv} "local/valid_runs/${variant}/"
    cp "${exp_dir}/${variant}/RESULTS.md" "local/valid_runs/${variant}/"
done
echo "valid findings written under local/ (see local/findings.md)"

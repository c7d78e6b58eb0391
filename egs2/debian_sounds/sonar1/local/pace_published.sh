#!/usr/bin/env bash
# The PACE table published in results/2026-11-30_default_3seeds/pace/ (README, "Sibling systems"):
# stage 8's stages/pace.sh on the first training run's SONAR encoder after env, with the CPU
# overrides of local/pace_cpu.yaml; naive, analytic and analytic+FSA with seeds 0-2, PACE and
# joint (the slow ones) with seed 0 only. Run after the default run (bash scripts/run_main.sh).
#   local/pace_published.sh [--exp_dir exp]
set -euo pipefail
exp_dir=exp
[ "${1:-}" = --exp_dir ] && exp_dir=$2
. ./path.sh
ckpt="sonar_env:${exp_dir}/tseed0/sonar/env/encoder.pt"
stages/pace.sh --exp_dir "${exp_dir}/pace_sonar" --data_dir data --ckpts "${ckpt}" \
    --seeds "0 1 2" --methods "naive analytic analytic_fsa" --pace_config local/pace_cpu.yaml
stages/pace.sh --exp_dir "${exp_dir}/pace_sonar" --data_dir data --ckpts "${ckpt}" \
    --seeds "0" --methods "pace joint" --pace_config local/pace_cpu.yaml
echo "table: ${exp_dir}/pace_sonar/report/pace_table.md"

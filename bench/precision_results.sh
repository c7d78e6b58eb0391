#!/usr/bin/env bash
# The precision benchmarks of README's "Precision" section, side by side in one go, into OUT_DIR:
#   roofline.txt          the machine's 2048² matmul GFLOP/s per precision
#   enc_base.txt          BEATs base (90M): ours at fp32/bf16 vs ESPnet's encoder at fp32 (forward,
#   enc_tiny.txt          forward+backward), achieved GFLOP/s next to the roofline, last-layer cosine; tiny
#   stage_precision.txt   stages 6 (probes) and 3 (TRSS embeddings) of a recipe run: times and what
#                         they feed downstream (probe accuracies; replay ids and allocation, with the
#                         noise floor of another draw seed)
#   summary.md            all of the above in one markdown file (README quotes it)
# Usage: bench/precision_results.sh OUT_DIR [RECIPE_RUN_DIR]
#   RECIPE_RUN_DIR: a debian_sounds recipe dir after stage 2 (exp/base/encoder.pt, exp/base/lists/train,
#   data/tasks, data/pools/music); without it stage_precision runs its synthetic smoke test.
# Run it alone on the machine: the ratios are measured side by side, but other jobs still add noise.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT_DIR [RECIPE_RUN_DIR]" >&2; exit 1; }
bench=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
run_dir=${2:-}
source "${bench}/../scripts/venv.sh"
set -euo pipefail
quiet() { "$@" 2> >(grep -v -e FutureWarning -e 'WeightNorm.apply' >&2); }

quiet python "${bench}/roofline.py" --precisions fp32,bf16 | tee "${out}/roofline.txt"
quiet python "${bench}/encoder_throughput.py" --arch base --batch 4 --seconds 10 --precisions fp32,bf16 \
    | tee "${out}/enc_base.txt"
quiet python "${bench}/encoder_throughput.py" --arch tiny --batch 4 --seconds 10 --precisions fp32,bf16 \
    | tee "${out}/enc_tiny.txt"
stage_args=()
if [ -n "${run_dir}" ]; then
    cd "${run_dir}"
    stage_args=(--ckpt exp/base/encoder.pt --task_dir data/tasks --tasks "voice_gender prior_sfx instrument animal foley"
                --probe_seeds "0 1 2" --prior_scp exp/base/lists/train/wav.scp --new_scp data/pools/music/wav.scp
                --max_items 0 --sample_args "--max_seconds 4 --num_strata 32")
fi
python "${bench}/stage_precision.py" "${stage_args[@]}" --precisions fp32,bf16 2>/dev/null | tee "${out}/stage_precision.txt"

{
    echo "Written by \`bench/precision_results.sh\` on $(date -u '+%Y-%m-%d') ($(nproc) cores;" \
         "torch $(python -c 'import torch; print(torch.__version__)'))."
    for f in roofline enc_base enc_tiny stage_precision; do
        echo; echo "\`${f}.txt\`:"; echo; echo '```'; cat "${out}/${f}.txt"; echo '```'
    done
} > "${out}/summary.md"
echo "wrote ${out}/summary.md" >&2

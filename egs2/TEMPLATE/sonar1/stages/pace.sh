#!/usr/bin/env bash
# PACE: class-incremental audio continual learning on top of our encoders.
#
#   stages/pace.sh --exp_dir exp/pace --data_dir data \
#       --ckpts "base:exp/base/encoder.pt sonar:exp/tseed0/sonar/env/encoder.pt" --seeds "0 1 2"
#
# For every checkpoint (NAME:PATH), benchmark (${benchmarks}), method (${methods}) and seed,
# runs espnet2_sonar.bin.pace_eval -> ${exp_dir}/<name>/<benchmark>/<method>/seed<N>.json
# (skipped when it exists, so a rerun resumes), then writes the report
# (${exp_dir}/report/pace_table.{md,csv}, pace_sessions.png).
# Any backbone the probe reads works: official BEATs .pt (ours or released), ESPnet .pth or exp dir.
# Run from a recipe dir (egs2/<corpus>/sonar1), like sonar.sh.
set -euo pipefail
log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*" >&2; }

# ---------------------------------------------------------------- options
exp_dir=exp/pace
data_dir=data                                  # holds tasks/<task>/{train,valid,test}
ckpts=""                                       # "name:path ..." (required)
seeds="0 1 2"
benchmarks="coarse fine"
methods="naive analytic analytic_fsa pace joint"
num_sessions=""                                # default: the method config's (4)
pace_config=""                                 # YAML of method-config overrides for every run
device=cpu
pace_args=""                                   # extra args for espnet2_sonar.bin.pace_eval

help_message=$(cat <<EOF
Usage: $0 --exp_dir DIR --data_dir DIR --ckpts "name:path ..." [options]
  --seeds "0 1 2"                        seeds (class order, random features, training order)
  --benchmarks "coarse fine"             class-incremental benchmarks
  --methods "naive analytic analytic_fsa pace joint"
  --num_sessions T                       sessions per benchmark
  --pace_config YAML                     method-config overrides (e.g. adapt: {epochs: 3})
  --device cpu|cuda  --pace_args "..."
EOF
)
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
[ $# -eq 0 ] || { log "unexpected arguments: $*"; exit 1; }
[ -n "${ckpts}" ] || { log "--ckpts \"name:path ...\" is required"; exit 1; }
for b in ${benchmarks}; do
    case "$b" in coarse|fine) ;; *) log "unknown benchmark '$b' (coarse|fine)"; exit 1 ;; esac
done
for m in ${methods}; do
    case "$m" in naive|analytic|analytic_fsa|pace|joint) ;;
        *) log "unknown method '$m' (naive|analytic|analytic_fsa|pace|joint)"; exit 1 ;; esac
done
for entry in ${ckpts}; do
    case "${entry}" in *:*) ;; *) log "checkpoint entry '${entry}' is not name:path"; exit 1 ;; esac
    [ -e "${entry#*:}" ] || { log "checkpoint ${entry#*:} (${entry%%:*}) does not exist"; exit 1; }
done

extra=()
[ -n "${num_sessions}" ] && extra+=(--num_sessions "${num_sessions}")
[ -n "${pace_config}" ] && extra+=(--config "${pace_config}")

log "PACE evaluation -> ${exp_dir}"
for entry in ${ckpts}; do
    name=${entry%%:*}; ckpt=${entry#*:}
    for bench in ${benchmarks}; do
        for method in ${methods}; do
            for seed in ${seeds}; do
                res="${exp_dir}/${name}/${bench}/${method}/seed${seed}.json"
                if [ -f "${res}" ]; then log "skip ${res} (exists)"; continue; fi
                mkdir -p "$(dirname "${res}")"
                log "${name} ${bench} ${method} seed ${seed}"
                # shellcheck disable=SC2086
                if ! ${decode_cmd} "${res%.json}.log" python -m espnet2_sonar.bin.pace_eval \
                    --ckpt "${ckpt}" --ckpt_name "${name}" --benchmark "${bench}" --method "${method}" \
                    --seed "${seed}" --data_dir "${data_dir}" --device "${device}" \
                    --cache_dir "${exp_dir}/cache" --out "${res}" "${extra[@]}" ${pace_args} >/dev/null; then
                    log "pace_eval failed (${name} ${bench} ${method} seed ${seed}); see ${res%.json}.log:"
                    tail -n 20 "${res%.json}.log" >&2
                    exit 1
                fi
            done
        done
    done
done

log "PACE report -> ${exp_dir}/report"
python -m espnet2_sonar.pace.report --results_dir "${exp_dir}" --out_dir "${exp_dir}/report" >/dev/null
log "report: ${exp_dir}/report/pace_table.md ${exp_dir}/report/pace_table.csv ${exp_dir}/report/pace_sessions.png"

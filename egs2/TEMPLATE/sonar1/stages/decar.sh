#!/usr/bin/env bash
# DECAR (clustering-based self-supervised pre-training) for `sonar.sh --methods decar`.
#
#   stages/decar.sh --exp_dir DIR --data_dir DIR --domains "music bio env" [--init_ckpt CKPT]
#                   [--config conf/tiny/decar_efficientnet.yaml] [--replay_rho 0.5] [--ngpu N]
#                   [--num_nodes M] [--cpu_ranks R]  (utils/launch.sh: DDP, never DataParallel)
#                   [--train_args "..."]
#
# Run from a recipe dir (egs2/<corpus>/sonar1: path.sh, cmd.sh, utils/, conf/).
#   base:      DECAR pre-training on ${data_dir}/pools/prior (from --init_ckpt if given: an
#              official BEATs file for the beats encoder, a decar_efficientnet file otherwise)
#   <domain>:  continual DECAR on ${data_dir}/pools/<domain>, in --domains order, each stage
#              starting from the previous stage's full model (encoder + MLP head; the
#              classifier is re-initialised every epoch anyway). With --replay_rho R > 0 the
#              stage's training list also holds round(R x |new|) clips of the prior pool, drawn
#              uniformly at random (seeded) and interleaved with the new ones: plain experience
#              replay, the same budget as SONAR's (rho 0.5) without its stratification. The
#              paper's DECAR has no replay (R = 0).
#   random:    only for an encoder other than BEATs (the EfficientNet), and only without
#              --init_ckpt: the same seeded network before any training (--max_epoch 0), its
#              BatchNorm statistics computed on the prior pool as for every export. It is the
#              random-init floor of DECAR's own architecture (the recipe's `random` is a BEATs).
# Outputs per stage S: ${exp_dir}/decar/S/{lists,train}/ and ${exp_dir}/decar/S/encoder.pt,
# the encoder for the frozen probes (official BEATs format, or {'kind': 'decar_efficientnet',
# 'cfg', 'model'}). Idempotent: a stage with encoder.pt is skipped; an interrupted one resumes
# (lists are kept, ESPnet training runs with --resume true).
set -euo pipefail
log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*" >&2; }

exp_dir=exp                                 # experiments root
data_dir=data                               # corpus root (pools/{prior,<domain>})
domains="music bio env"                     # continual stages, in order
init_ckpt=""                                # optional starting encoder for the base stage
config=conf/tiny/decar_efficientnet.yaml    # DecarTask config (every stage)
ngpu=0                                      # GPUs per node for training (0: CPU; > 1: DDP)
num_nodes=1                                 # nodes for training (> 1: DDP, Slurm backend)
cpu_ranks=1                                 # with --ngpu 0: DDP over this many CPU processes
train_args=""                               # extra args for espnet2_sonar.bin.decar_train
valid_share=0.05                            # share of each pool held out for validation
replay_rho=0                                # continual stages: prior-pool replay : new (0: none)

help_message="Usage: $0 --exp_dir DIR --data_dir DIR --domains \"music bio env\" [--init_ckpt CKPT] [--config YAML] [--ngpu N] [--num_nodes M] [--cpu_ranks R] [--train_args \"...\"] [--valid_share 0.05] [--replay_rho R]"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
[ $# -eq 0 ] || { log "unexpected arguments: $*"; echo "${help_message}" >&2; exit 1; }
[ -f "${config}" ] || { log "config ${config} not found"; exit 1; }
[[ "${replay_rho}" =~ ^[0-9]+([.][0-9]+)?$ ]] || { log "--replay_rho must be a number >= 0, got '${replay_rho}'"; exit 1; }
[ -z "${init_ckpt}" ] || [ -f "${init_ckpt}" ] || { log "--init_ckpt ${init_ckpt} not found"; exit 1; }

# run_stage NAME POOL_DIR RHO [extra training args...]   (RHO: prior-pool replay ratio, 0: none)
run_stage() {
    local name=$1 pool=$2 rho=$3; shift 3
    local out="${exp_dir}/decar/${name}"
    if [ -f "${out}/encoder.pt" ]; then log "skip DECAR ${name} (${out}/encoder.pt exists)"; return; fi
    [ -f "${pool}/wav.scp" ] || { log "${pool}/wav.scp not found (run data preparation first)"; exit 1; }
    mkdir -p "${out}"
    # lists are kept across reruns, so they record the replay ratio they were made with
    # (lists without the record predate replay: ratio 0)
    if [ -f "${out}/lists/valid/speech_shape" ]; then
        local made; made=$(cat "${out}/lists/replay_rho" 2>/dev/null || echo 0)
        if [ "${made}" != "${rho}" ]; then
            log "${out}/lists was made with --replay_rho ${made}, not ${rho}: remove ${out} to redo the stage"
            exit 1
        fi
    else
        local replay_args=()
        if awk -v r="${rho}" 'BEGIN { exit !(r > 0) }'; then  # 0, 0.0, ...: no replay
            replay_args=(--replay_scp "${data_dir}/pools/prior/wav.scp" --rho "${rho}")
            log "DECAR ${name}: replaying prior-pool clips at ${rho} : 1"
        fi
        mkdir -p "${out}/lists"
        echo "${rho}" > "${out}/lists/replay_rho"  # first: lists are complete only with valid/speech_shape
        python -m espnet2_sonar.bin.make_train_lists --pool_dir "${pool}" --out_dir "${out}/lists" \
            --valid_share "${valid_share}" "${replay_args[@]}"
    fi
    if [ "${name}" = random ]; then
        log "DECAR random: the untrained network, BatchNorm statistics from ${pool} (log: ${out}/train/train.log)"
    else
        log "DECAR ${name}: training on ${pool} (log: ${out}/train/train.log)"
    fi
    mkdir -p "${out}/train"
    # shellcheck disable=SC2086
    utils/launch.sh --cmd "${cuda_cmd}" --ngpu "${ngpu}" --num_nodes "${num_nodes}" --cpu_ranks "${cpu_ranks}" \
        "${out}/train/train.log" espnet2_sonar.bin.decar_train \
            --config "${config}" --output_dir "${out}/train" --resume true \
            --train_data_path_and_name_and_type "${out}/lists/train/wav.scp,speech,sonar_sound_resample_mix" \
            --valid_data_path_and_name_and_type "${out}/lists/valid/wav.scp,speech,sonar_sound_resample_mix" \
            --train_shape_file "${out}/lists/train/speech_shape" \
            --valid_shape_file "${out}/lists/valid/speech_shape" \
            ${train_args} "$@" >/dev/null  # the stage's own arguments last: they win
    [ -f "${out}/train/encoder.pt" ] || { log "training ${out}/train did not write encoder.pt"; exit 1; }
    cp "${out}/train/encoder.pt" "${out}/.encoder.pt.tmp"
    mv "${out}/.encoder.pt.tmp" "${out}/encoder.pt"
    log "DECAR ${name}: ${out}/encoder.pt"
}

base_args=()
[ -z "${init_ckpt}" ] || base_args=(--encoder_conf "init=${init_ckpt}")
run_stage base "${data_dir}/pools/prior" 0 "${base_args[@]}"
if [ -z "${init_ckpt}" ] && [ "$(utils/config_value.sh "${config}" encoder)" != beats ]; then
    run_stage random "${data_dir}/pools/prior" 0 --max_epoch 0  # the floor: no training step
fi

prev="${exp_dir}/decar/base"
for domain in ${domains}; do
    # continue from the previous stage's last epoch: every parameter but the classifier
    run_stage "${domain}" "${data_dir}/pools/${domain}" "${replay_rho}" --init_param "${prev}/train/latest.pth:::classifier,step"
    prev="${exp_dir}/decar/${domain}"
done
log "DECAR encoders: ${exp_dir}/decar/base/encoder.pt$(for d in ${domains}; do printf ' %s' "${exp_dir}/decar/${d}/encoder.pt"; done)"

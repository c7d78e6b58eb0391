#!/usr/bin/env bash
# S-SONDO: distil a teacher's clip embeddings into small students, probe them, report.
#
#   stages/ssondo.sh --exp_dir exp/ssondo --data_dir data --teacher exp/base/encoder.pt --seeds "0 1 2"
#
#   1. training lists from the unlabelled pools (${pools}) -> ${exp_dir}/lists/{train,valid}
#   2. teacher embeddings, extracted once and cached (resumable) -> ${exp_dir}/teacher/{train,valid};
#      BDS clusters (faiss k-means, k=${bds_k}) on the train embeddings -> teacher/train/utt2cluster
#   3. students (${students}) trained with BDS and with random sampling (${samplings}), for each
#      of ${train_seeds} -> ${exp_dir}/students/<student>_<sampling>_s<seed>/ (+ student.pt)
#   4. frozen probes of the teacher and every student on ${tasks}, probe seeds ${seeds}
#      -> ${exp_dir}/eval/<model>/<task>/seed<N>.json
#   5. report -> ${exp_dir}/report/report.{md,json}
# Any teacher checkpoint the probe reads works (official BEATs .pt, ESPnet .pth or exp dir).
# Every step is skipped when its output exists: a rerun resumes (training with --resume true).
# Run from a recipe dir (egs2/<corpus>/sonar1), like sonar.sh.
set -euo pipefail
log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*" >&2; }

# ---------------------------------------------------------------- options
stage=1
stop_stage=5
exp_dir=exp/ssondo
data_dir=data
teacher=""                                  # teacher checkpoint (required)
seeds="0 1 2"                               # probe seeds
train_seeds="0"                             # student training seeds
students="mobilenetv3 eres2net transformer"
samplings="bds random"                      # bds and/or random (the ablation)
pools="prior speech music bio env"          # unlabelled pools the students learn from
tasks="voice_gender prior_sfx instrument animal foley"  # probe tasks
config_dir=conf/tiny                        # ${config_dir}/ssondo_<student>.yaml
crop_seconds=4.0                            # audio crop, shared by extraction and training
crop_seed=0
teacher_layer=-1                            # teacher hidden state pooled into the target
bds_k=50                                    # k-means clusters for BDS
bds_seed=0
valid_share=0.05
nj=2
ngpu=0                                      # GPUs per node (0: CPU; > 1: DDP for the student trainings)
num_nodes=1                                 # nodes for the student trainings (> 1: DDP, Slurm backend)
cpu_ranks=1                                 # with --ngpu 0: DDP over this many CPU processes
extract_args=""                             # extra args for espnet2_sonar.bin.ssondo_extract
train_args=""                               # extra args for every student training
probe_max_per_class=200                     # probe on at most this many clips per class and split (0: all)
probe_args=""                               # extra args for espnet2_sonar.bin.probe_matrix

help_message=$(cat <<EOF
Usage: $0 --exp_dir DIR --data_dir DIR --teacher CKPT [options]
  --seeds "0 1 2"            probe seeds          --train_seeds "0"      student training seeds
  --students "..."           mobilenetv3 eres2net transformer
  --samplings "bds random"   --bds_k 50 --bds_seed 0
  --pools "..." --tasks "..." --config_dir conf/tiny --crop_seconds 4.0 --teacher_layer -1
  --stage N --stop_stage M   1 lists, 2 teacher cache + BDS, 3 train, 4 probe, 5 report
  --probe_max_per_class 200  as the recipe's stage 6
  --extract_args/--train_args/--probe_args "..."   --nj N --ngpu N --num_nodes M --cpu_ranks R
  (trainings start through utils/launch.sh: DDP for more than one GPU, node or CPU rank)
EOF
)
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
[ $# -eq 0 ] || { log "unexpected arguments: $*"; exit 1; }
[ -n "${teacher}" ] || { log "--teacher CKPT is required"; exit 1; }
[ -e "${teacher}" ] || { log "teacher checkpoint ${teacher} does not exist"; exit 1; }
for s in ${samplings}; do
    case "$s" in bds|random) ;; *) log "unknown sampling '$s' (bds|random)"; exit 1 ;; esac
done
for s in ${students}; do
    [ -f "${config_dir}/ssondo_${s}.yaml" ] || { log "no config ${config_dir}/ssondo_${s}.yaml for student '$s'"; exit 1; }
done

lists=${exp_dir}/lists
cache=${exp_dir}/teacher

# ---------------------------------------------------------------- 1. lists
if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    if [ ! -f "${lists}/train/wav.scp" ]; then
        log "Stage 1: training lists from pools (${pools}) -> ${lists}"
        mkdir -p "${lists}/pool"
        : > "${lists}/pool/wav.scp.tmp"; : > "${lists}/pool/utt2dur.tmp"
        for p in ${pools}; do
            d=${data_dir}/pools/${p}
            [ -f "${d}/wav.scp" ] || { log "pool ${d} has no wav.scp (run data preparation first)"; exit 1; }
            cat "${d}/wav.scp" >> "${lists}/pool/wav.scp.tmp"
            cat "${d}/utt2dur" >> "${lists}/pool/utt2dur.tmp"
        done
        sort -k1,1 "${lists}/pool/wav.scp.tmp" > "${lists}/pool/wav.scp"
        sort -k1,1 "${lists}/pool/utt2dur.tmp" > "${lists}/pool/utt2dur"
        rm "${lists}/pool/wav.scp.tmp" "${lists}/pool/utt2dur.tmp"
        dup=$(cut -d' ' -f1 "${lists}/pool/wav.scp" | uniq -d | head -3)
        [ -z "${dup}" ] || { log "utterance ids repeat across pools: ${dup}"; exit 1; }
        python -m espnet2_sonar.bin.make_train_lists --pool_dir "${lists}/pool" --out_dir "${lists}" \
            --valid_share "${valid_share}"
    fi
fi

# ---------------------------------------------------------------- 2. teacher cache + BDS clusters
if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    for split in train valid; do
        out=${cache}/${split}
        bds_args=()
        [ "${split}" = train ] && bds_args=(--bds_k "${bds_k}" --bds_seed "${bds_seed}")
        if [ -f "${out}/teacher.json" ] && { [ "${split}" = valid ] || [ -f "${out}/utt2cluster" ]; }; then
            log "skip teacher embeddings ${out} (done)"; continue
        fi
        log "Stage 2: teacher embeddings of ${lists}/${split} -> ${out}"
        # shellcheck disable=SC2086
        ${cuda_cmd} --gpu "${ngpu}" "${out}.log" python -m espnet2_sonar.bin.ssondo_extract \
            --teacher "${teacher}" --wav_scp "${lists}/${split}/wav.scp" --out_dir "${out}" \
            --crop_seconds "${crop_seconds}" --crop_seed "${crop_seed}" --layer "${teacher_layer}" \
            --num_workers "${nj}" --device "$([ "${ngpu}" -gt 0 ] && echo cuda || echo cpu)" \
            "${bds_args[@]}" ${extract_args} >/dev/null
    done
fi

# ---------------------------------------------------------------- 3. students
models=()
for student in ${students}; do
    for sampling in ${samplings}; do
        for ts in ${train_seeds}; do models+=("${student}_${sampling}_s${ts}"); done
    done
done

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    for name in "${models[@]}"; do
        student=${name%%_*}; rest=${name#*_}; sampling=${rest%%_*}; ts=${rest##*_s}
        out=${exp_dir}/students/${name}
        if [ ! -f "${out}/.done" ]; then
            mkdir -p "${out}"
            bds_args=()
            [ "${sampling}" = bds ] && bds_args=(--bds_clusters "${cache}/train/utt2cluster")
            log "Stage 3: training ${name} (log: ${out}/train.log)"
            # shellcheck disable=SC2086
            utils/launch.sh --cmd "${cuda_cmd}" --ngpu "${ngpu}" --num_nodes "${num_nodes}" --cpu_ranks "${cpu_ranks}" \
                "${out}/train.log" espnet2_sonar.bin.ssondo_train \
                    --config "${config_dir}/ssondo_${student}.yaml" --output_dir "${out}" \
                    --resume true --seed "${ts}" --crop_seconds "${crop_seconds}" --crop_seed "${crop_seed}" \
                    --train_data_path_and_name_and_type "${lists}/train/wav.scp,speech,sonar_sound_resample_mix" \
                    --train_data_path_and_name_and_type "${cache}/train,teacher_emb,ssondo_embeddings" \
                    --valid_data_path_and_name_and_type "${lists}/valid/wav.scp,speech,sonar_sound_resample_mix" \
                    --valid_data_path_and_name_and_type "${cache}/valid,teacher_emb,ssondo_embeddings" \
                    --train_shape_file "${lists}/train/speech_shape" --valid_shape_file "${lists}/valid/speech_shape" \
                    "${bds_args[@]}" ${train_args} >/dev/null
            touch "${out}/.done"
        fi
        [ -f "${out}/student.pt" ] || python -m espnet2_sonar.bin.ssondo_export --exp_dir "${out}" --out "${out}/student.pt"
    done
fi

# ---------------------------------------------------------------- 4. probes
if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "Stage 4: frozen probes -> ${exp_dir}/eval"
    ckpts="teacher=${teacher}"
    for name in "${models[@]}"; do ckpts+=" ${name}=${exp_dir}/students/${name}/student.pt"; done
    # one process for every probe (embeddings cached per checkpoint); existing results are kept
    # shellcheck disable=SC2086
    ${decode_cmd} "${exp_dir}/eval/probe.log" python -m espnet2_sonar.bin.probe_matrix \
        --ckpts "${ckpts}" --task_dir "${data_dir}/tasks" --tasks "${tasks}" --seeds "${seeds}" \
        --out_dir "${exp_dir}/eval" --max_per_class "${probe_max_per_class}" ${probe_args}
fi

# ---------------------------------------------------------------- 5. report
if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: report -> ${exp_dir}/report"
    python -m espnet2_sonar.bin.ssondo_report --eval_dir "${exp_dir}/eval" --tasks "${tasks}" \
        --out_dir "${exp_dir}/report" >/dev/null
    log "report: ${exp_dir}/report/report.md"
fi
log "Successfully finished. [elapsed=${SECONDS}s]"

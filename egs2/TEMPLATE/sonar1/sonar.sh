#!/usr/bin/env bash
# SONAR recipe stages (shared by every egs2/<corpus>/sonar1 recipe; run.sh only sets options).
#
#   1. data prep (local/data.sh; and/or your own Kaldi dirs, --prior_dir/--domain_dirs/--task_dirs,
#      formatted by espnet2_sonar.bin.format_data)  -> ${data_dir}/pools, ${data_dir}/tasks
#   2. base model: --base_ckpt; or --base_teacher NAME (the encoder regresses a frozen pretrained
#      teacher's frame features on the prior pool); or BEATs iterations on the prior pool
#      (random-projection tokens -> MAM -> tokenizer distillation -> MAM) -> ${exp_dir}/base
#   3. task-relevant stratified replay sampling for each domain (sonar only), from the prior
#      pool's training list (the held-out clips of drift and evaluation are never replayed)
#   4. continual pre-training on each domain (staged: each continues from the previous)
#   5. export: official BEATs encoder/tokenizer checkpoints + packed ESPnet model
#   6. evaluation: frozen probes on every task for every stage checkpoint (probe_seeds)
#   7. report: tables, plots and noise-tested verdict in ${exp_dir}/report; ${exp_dir}/RESULTS.md
# Stages 3-5 run once per training seed (--train_seeds: masks, replay draw, head init, data
# order) under ${exp_dir}/tseed<T>/<method>/<domain>; the base model is shared.
#   8. (optional) PACE: class-incremental learning on the base and last-stage encoders (stages/pace.sh)
#   9. (optional) S-SONDO: distil the last SONAR encoder into small students (stages/ssondo.sh)
#  10. (optional, never by default) upload one exported model to the Hugging Face Hub: --hf_repo owner/name
#      (espnet2_sonar.bin.hf_upload: packed.zip, encoder.pt, tokenizer.pt, config and a model card)
# The default run stops after stage 7; --stop_stage 9 adds the sibling systems.
# Stages 3-5 run per training seed and domain, in order. Every step is skipped when its output exists, so a
# rerun after an interruption resumes (ESPnet training itself resumes with --resume true). Every training dir
# records what made it (stage_inputs.json: config content, args, init checkpoints' and data lists' sha256);
# a rerun whose inputs differ from a trained dir's stops with an error naming the dir and what changed
# (espnet2_sonar/utils/stage_guard.py): remove the dir, or give the run another --tag.
# ./run.sh --help lists every option with its value (run.sh's settings included); it needs no venv.
set -euo pipefail
log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*" >&2; }

# ---------------------------------------------------------------- options
stage=1                 # first stage to run
stop_stage=7            # last stage to run
domains="music bio env" # new domains, adapted to in this order
methods="sonar dcp"     # continual methods: sonar, dcp, decar
train_seeds="0 1 2"     # one run of every continual method per training seed (error bars over runs)
base_ckpt=""            # BEATs checkpoint (official pre-trained/fine-tuned, ESPnet/OpenBEATs, or hf://OWNER/REPO/PATH): skips base pre-training
base_tokenizer=""       # BEATs tokenizer checkpoint, any format or hf:// spec (else distilled from the base model)
base_teacher=""         # frozen frame teacher for base pre-training (ge2e: the GE2E voice encoder of the
                        #   Resemblyzer wheel); empty: BEATs iterations. Also probed as a reference row.
nj=2                    # parallel jobs for data prep / embedding
ngpu=0                  # GPUs per node for training (0: CPU); more than 1: DDP, one process per GPU
num_nodes=1             # nodes for training (more than 1: DDP across nodes; needs cmd_backend=slurm)
cpu_ranks=1             # with --ngpu 0: DDP over this many CPU processes (gloo) on this machine
                        #   (trainings start through utils/launch.sh, ESPnet's launcher)
data_dir=data           # corpus output
exp_dir=exp             # experiments
tag=""                  # experiment tag: the run goes to ${exp_dir}_${tag} (ESPnet style: a separate
                        #   experiment, base model included; --base_ckpt/--base_tokenizer reuse a base)
subset=full             # corpus subset: full | tiny
local_data_opts=""      # extra args for local/data.sh (stage 1; shell words), e.g. "--audio_root DIR"
prior_dir=""            # your own prior pool: a Kaldi-style dir (wav.scp of files or 'command |',
                        #   optional segments, utt2spk), formatted into ${data_dir}/pools/prior (see
                        #   egs2/debian_sounds/sonar1/README.md, "Bring your own corpus")
domain_dirs=""          # your own new-domain pools, "name=DIR ..." -> ${data_dir}/pools/<name>; every
                        #   name must be in --domains
task_dirs=""            # your own probe tasks, "task=DIR ..." (DIR/{train,test}, valid optional, each with
                        #   utt2label) -> ${data_dir}/tasks/<task>/<split>. Given all three, stage 1 only
                        #   formats them (no local/data.sh); otherwise local/data.sh builds the rest
corpus_task_domain=""   # "task=domain,..." of the corpus's own tasks, for the report (its run.sh sets it)
task_domain=""          # "task=domain,..." added to --corpus_task_domain (yours win): a task of a
                        #   --domains domain is that stage's new task; any other (e.g. =prior) an old task
format_args=""          # extra args for espnet2_sonar.bin.format_data, e.g. "--skip_bad --min_seconds 0.5"
size=tiny               # config set: conf/tiny (CPU), conf/small (CPU, ~10M: the S-SONDO teacher) or conf/base (GPUs, official BEATs size)
pretrain_teacher_config="" # base from --base_teacher              (default conf/${size}/pretrain_teacher.yaml)
pretrain_iter1_config=""   # MAM with random-projection tokens   (default conf/${size}/pretrain_iter1.yaml)
tokenizer_config=""        # tokenizer distillation              (default conf/${size}/tokenizer.yaml)
pretrain_iter2_config=""   # MAM with the distilled tokenizer    (default conf/${size}/pretrain_iter2.yaml)
sonar_config=""            # continual stage, method sonar       (default conf/${size}/train_sonar.yaml)
dcp_config=""              # continual stage, method dcp         (default conf/${size}/train_dcp.yaml)
decar_config=""            # DECAR stages, method decar          (default conf/${size}/decar_efficientnet.yaml, the
                           #   paper's CNN, where the size has one (tiny), else conf/${size}/decar_beats.yaml)
decar_replay_rho=0.5       # DECAR's continual stages replay uniformly drawn prior-pool clips at this
                           #   ratio to the new ones (SONAR's budget, unstratified; 0: the paper's DECAR)
sample_args="--max_seconds 4 --num_strata 32"  # args for espnet2_sonar.bin.sonar_sample
train_args=""           # extra args for every training run
probe_tasks=""          # probe tasks, old tasks (prior pool) first; empty: the --task_dirs tasks if given,
                        #   else the debian tasks "voice_gender prior_sfx instrument animal foley"
probe_seeds="0 1 2"     # probe seeds per checkpoint and task (probe init and batch order)
eval_split=test         # split the probes score (test: published runs; valid: choosing defaults, the
                        #   test split is then not read)
probe_args=""           # extra args for espnet2_sonar.bin.probe_matrix
probe_max_per_class=200 # probe on at most this many clips per class and split (0: all)
precision=fp32          # frozen forwards: TRSS embeddings (stage 3), SONAR's teacher M0 and tokenizer codes
                        #   (stage 4), probe embeddings and drift (stage 6): fp32|bf16|fp16 (bf16 ~2x on
                        #   CPUs with AVX-512 BF16/AMX; see README). Training AMP is the config's use_amp
valid_share=0.05        # share of each pool held out for validation losses
report_notes=local/findings.md  # markdown appended to the stage-7 report when it exists
pace_args=""            # extra args for stages/pace.sh (stage 8), e.g. --methods "naive analytic"
ssondo_teacher=""       # stage 9 teacher (default: the last domain's SONAR encoder, else base)
ssondo_args=""          # extra args for stages/ssondo.sh (stage 9), e.g. --students mobilenetv3
hf_repo=""              # stage 10: Hugging Face model repo (owner/name) to upload to
hf_dir=""               # stage 10: the exported dir to upload (default: the first training seed's last
                        #   domain, method sonar if run, else the first of --methods)
hf_args=""              # extra args for espnet2_sonar.bin.hf_upload, e.g. "--private" or "--dry_run"

help_message=$(cat <<EOF
Usage: $(dirname "$0")/run.sh [options]   (run.sh sets a corpus' options, then calls sonar.sh [options])
  Run from the recipe dir (egs2/<corpus>/sonar1). --name value or --name=value; stages:
  1 data (local/data.sh, or your own dirs: --prior_dir, --domain_dirs, --task_dirs), 2 base,
  3 replay sampling, 4 continual training, 5 export, 6 evaluation, 7 report;
  optional: 8 PACE (stages/pace.sh --help), 9 S-SONDO (stages/ssondo.sh --help),
  10 upload to the Hugging Face Hub (--hf_repo owner/name; run with --stage 10 --stop_stage 10).
  A training dir made from other inputs (config content, args, init checkpoints, data lists)
  is an error on a rerun: remove it, or use --tag NAME for a separate experiment dir.
EOF
)
# --help: the header, then every option of the block above with its value (generated from the
# variables, so it cannot drift from them; run.sh's settings show where they override ours)
usage() {
    echo "${help_message}"
    echo "Options (value now: the default, run.sh's setting or an option given before --help):"
    print_options "${BASH_SOURCE[0]}"
}
cmdline="$0$(printf ' %q' "$@")"  # for RESULTS.md and stage_times.tsv (shell-quoted)
# options first (ESPnet order): --help then works from any dir and without the venv
. "$(dirname "${BASH_SOURCE[0]}")/utils/parse_options.sh"
[ $# -eq 0 ] || { log "unexpected arguments: $*"; exit 1; }
if [ ! -f ./path.sh ] || [ ! -d ./utils ] || [ ! -d ./conf ]; then
    log "run from a recipe dir (egs2/<corpus>/sonar1, with path.sh, utils/ and conf/): cd $(dirname "$0")"; exit 1
fi
. ./path.sh
. ./cmd.sh
if [ -n "${tag}" ]; then exp_dir=${exp_dir}_${tag}; fi
: "${pretrain_teacher_config:=conf/${size}/pretrain_teacher.yaml}"
: "${pretrain_iter1_config:=conf/${size}/pretrain_iter1.yaml}"
: "${tokenizer_config:=conf/${size}/tokenizer.yaml}"
: "${pretrain_iter2_config:=conf/${size}/pretrain_iter2.yaml}"
: "${sonar_config:=conf/${size}/train_sonar.yaml}"
: "${dcp_config:=conf/${size}/train_dcp.yaml}"
if [ -z "${decar_config}" ]; then
    decar_config=conf/${size}/decar_efficientnet.yaml
    [ -f "${decar_config}" ] || decar_config=conf/${size}/decar_beats.yaml
fi
with_decar=false  # is decar among --methods (its stages, floor and checkpoints differ)
if [[ " ${methods} " == *" decar "* ]]; then with_decar=true; fi
needed=("${tokenizer_config}" "${sonar_config}" "${dcp_config}")
if [ -n "${base_teacher}" ]; then needed+=("${pretrain_teacher_config}"); else needed+=("${pretrain_iter1_config}" "${pretrain_iter2_config}"); fi
if ${with_decar}; then needed+=("${decar_config}"); fi
for c in "${needed[@]}"; do
    [ -f "$c" ] || { log "config not found: $c"; exit 1; }
done
for m in ${methods}; do
    case "$m" in sonar|dcp|decar) ;; *) log "unknown method '$m' (sonar|dcp|decar)"; exit 1 ;; esac
done
[ -n "${train_seeds// }" ] || { log "--train_seeds is empty"; exit 1; }
case "${eval_split}" in test|valid) ;; *) log "--eval_split must be test or valid, got '${eval_split}'"; exit 1 ;; esac
case "${precision}" in fp32|bf16|fp16) ;; *) log "--precision must be fp32, bf16 or fp16, got '${precision}'"; exit 1 ;; esac
frozen_precision_args=()  # fp32 passes nothing, so training dirs made before the option stay current
[ "${precision}" = fp32 ] || frozen_precision_args=(--model_conf frozen_precision="${precision}")
precision_suffix=""  # TRSS embedding caches per precision (fp32 keeps the old path)
[ "${precision}" = fp32 ] || precision_suffix="_${precision}"
for t in ${train_seeds}; do
    [[ "$t" =~ ^[0-9]+$ ]] || { log "--train_seeds: '$t' is not a non-negative integer"; exit 1; }
done
first_seed=${train_seeds%% *}; first_seed=${first_seed## }

# Your own data (stage 1 formats it): names checked here, so a mismatch stops the run before any
# work. The dir lists are shell words ("name=DIR 'other=/a dir'"), as format_data reads them.
eval "own_domains=(${domain_dirs})"; eval "own_tasks=(${task_dirs})"
for item in "${own_domains[@]}" "${own_tasks[@]}"; do
    [[ "${item}" =~ ^[^=]+=.+$ ]] || { log "--domain_dirs/--task_dirs: '${item}' is not name=DIR (quote a DIR with spaces: \"name='/a dir'\")"; exit 1; }
done
own_domain_names=""; for item in "${own_domains[@]}"; do own_domain_names+=" ${item%%=*}"; done
own_task_names=""; for item in "${own_tasks[@]}"; do own_task_names+=" ${item%%=*}"; done
own_all=false  # every part is given: local/data.sh is not run
if [ -n "${prior_dir}" ] && [ -n "${own_domain_names}" ] && [ -n "${own_task_names}" ]; then own_all=true; fi
if [ -z "${probe_tasks// }" ]; then
    probe_tasks=${own_task_names:-voice_gender prior_sfx instrument animal foley}; probe_tasks=${probe_tasks# }
fi
for d in ${own_domain_names}; do
    [[ " ${domains} " == *" ${d} "* ]] || { log "--domain_dirs gives '${d}', which --domains (${domains}) does not list: add it (in adaptation order)"; exit 1; }
done
if ${own_all}; then
    for d in ${domains}; do
        [[ " ${own_domain_names} " == *" ${d} "* ]] || { log "--domains lists '${d}' but --domain_dirs gives no ${d}=DIR (with --prior_dir, --domain_dirs and --task_dirs all given, local/data.sh is not run)"; exit 1; }
    done
    for t in ${probe_tasks}; do
        [[ " ${own_task_names} " == *" ${t} "* ]] || { log "--probe_tasks lists '${t}' but --task_dirs gives no ${t}=DIR (with --prior_dir, --domain_dirs and --task_dirs all given, local/data.sh is not run)"; exit 1; }
    done
fi
for t in ${own_task_names}; do
    [[ " ${probe_tasks} " == *" ${t} "* ]] || continue
    [[ ",${task_domain// /}," == *",${t}="* ]] || { log "--task_domain gives no domain for task '${t}': add ${t}=<domain> (a --domains domain: that stage's new task; prior: an old task)"; exit 1; }
done

pool_dir=${data_dir}/pools
task_dir=${data_dir}/tasks
base_dir=${exp_dir}/base

# Train one ESPnet model unless it finished before (marker file), resuming otherwise.
#   train_model MODULE OUT_DIR CONFIG TRAIN_DIR VALID_DIR [extra training args...]
#   MODULE: sonar_train (MAM / SONAR / DCP), tokenizer_train (tokenizer distillation) or
#           teacher_distill (base encoder from a frozen frame teacher)
# Provenance guard (espnet2_sonar/utils/stage_guard.py): what makes the dir (the config's
# content, the module and training args, the init checkpoints those args name and the data
# lists, all by sha256) is recorded in ${out}/stage_inputs.json before training. A done or
# partly trained dir recorded from other inputs is an error naming the dir and what changed,
# never silently skipped or resumed. --ngpu is left out: resuming on other hardware is allowed.
# utils/launch.sh starts it (DDP for more than one GPU, node or CPU rank; never DataParallel).
train_model() {
    local module=$1 out=$2 config=$3 train=$4 valid=$5; shift 5
    local targs=("${module}" "$@")
    # shellcheck disable=SC2206
    targs+=(${train_args})  # word-split, as on the training command below
    local inputs="train_list=${train}/wav.scp valid_list=${valid}/wav.scp"
    if [ -f "${train}/is_replay" ]; then inputs+=" train_replay_flags=${train}/is_replay"; fi
    local guard=(--dir "${out}" --config "${config}" --args "$(printf '%q ' "${targs[@]}")" --inputs "${inputs}")
    python -m espnet2_sonar.utils.stage_guard check "${guard[@]}" || exit 1
    if [ -f "${out}/.done" ]; then
        # same inputs (a dir trained before the guard is adopted: its record says so)
        python -m espnet2_sonar.utils.stage_guard record "${guard[@]}" || exit 1
        log "skip training ${out} (done)"; return
    fi
    python -m espnet2_sonar.utils.stage_guard record "${guard[@]}" || exit 1
    local replay_args=()
    if [ -f "${train}/is_replay" ]; then
        replay_args=(--train_data_path_and_name_and_type "${train}/is_replay,is_replay,text_int"
                     --valid_data_path_and_name_and_type "${valid}/is_replay,is_replay,text_int")
    fi
    log "training ${out} (log: ${out}/train.log)"
    # shellcheck disable=SC2086
    utils/launch.sh --cmd "${cuda_cmd}" --ngpu "${ngpu}" --num_nodes "${num_nodes}" --cpu_ranks "${cpu_ranks}" \
        "${out}/train.log" "espnet2_sonar.bin.${module}" \
            --config "${config}" --output_dir "${out}" --resume true \
            --train_data_path_and_name_and_type "${train}/wav.scp,speech,sonar_sound_resample_mix" \
            --valid_data_path_and_name_and_type "${valid}/wav.scp,speech,sonar_sound_resample_mix" \
            --train_shape_file "${train}/speech_shape" --valid_shape_file "${valid}/speech_shape" \
            "${replay_args[@]}" "$@" ${train_args} >/dev/null
    touch "${out}/.done"
}

# Export a trained SonarTask dir to official-format encoder.pt / tokenizer.pt and a packed zip.
export_model() {
    local out=$1
    if [ -f "${out}/encoder.pt" ] && [ -f "${out}/tokenizer.pt" ]; then return; fi
    python -m espnet2_sonar.bin.sonar_export --exp_dir "${out}" --out_dir "${out}"
}

# Copy SRC to DST unless DST already holds the same bytes: a rerun leaves DST (and its mtime)
# alone, and a changed SRC (say, a retrained stage) replaces it, which the guards downstream see.
#   install_copy SRC DST
install_copy() {
    cmp -s "$1" "$2" || cp "$1" "$2"
}

# Train/valid lists for one pool (+ optional replay list, mixed in with SEED): ${out}/{train,valid}/{wav.scp,speech_shape[,is_replay]}
#   make_lists OUT POOL [REPLAY_SCP] [SEED]
make_lists() {
    local out=$1 pool=$2 replay=${3:-} seed=${4:-0}
    if [ -f "${out}/train/wav.scp" ]; then return; fi
    python -m espnet2_sonar.bin.make_train_lists --pool_dir "${pool}" --out_dir "${out}" \
        --valid_share "${valid_share}" --seed "${seed}" ${replay:+--replay_scp "${replay}"}
}

# Wall time of each stage, appended to ${exp_dir}/stage_times.tsv (stage, seconds, finished,
# command); RESULTS.md tabulates the latest time of every stage.
stage_clock=${SECONDS}
stage_time() {
    mkdir -p "${exp_dir}"
    printf '%s\t%s\t%s\t%s\n' "$1" "$((SECONDS - stage_clock))" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${cmdline}" \
        >> "${exp_dir}/stage_times.tsv"
    stage_clock=${SECONDS}
}
log "command: ${cmdline}"

# ---------------------------------------------------------------- 1. data
if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    if ${own_all}; then
        log "Stage 1: data: your own dirs only (local/data.sh is not run) -> ${data_dir}"
    else
        log "Stage 1: data preparation (${subset}) -> ${data_dir}"
        eval "local_data_extra=(${local_data_opts})"  # shell words: a quoted path stays whole
        local/data.sh --out "${data_dir}" --subset "${subset}" --nj "${nj}" "${local_data_extra[@]}"
    fi
    if [ -n "${prior_dir}${own_domain_names}${own_task_names}" ]; then
        # wav.scp pipes and segments resolved, 16 kHz mono FLAC, utt2dur, validated; a dir of the
        # same name from local/data.sh is replaced. Converted files are reused on a rerun.
        log "Stage 1: formatting your data dirs -> ${data_dir}/pools, ${data_dir}/tasks"
        eval "format_extra=(${format_args})"
        python -m espnet2_sonar.bin.format_data --data_dir "${data_dir}" --prior_dir "${prior_dir}" \
            --domain_dirs "${domain_dirs}" --task_dirs "${task_dirs}" --nj "${nj}" "${format_extra[@]}"
    fi
    stage_time 1
fi

# ---------------------------------------------------------------- 2. base model
if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: base model -> ${base_dir}"
    mkdir -p "${base_dir}"
    make_lists "${base_dir}/lists" "${pool_dir}/prior"
    # Every training below goes through train_model even when base/encoder.pt exists, so a
    # changed config (or teacher, or base encoder under the tokenizer) stops the run instead of
    # leaving a stale base in place; the copies keep their mtime when their content is the same.
    if [ -n "${base_ckpt}" ]; then
        # any format / Hugging Face spec -> the canonical official format (fbank stats in cfg)
        python -m espnet2_sonar.bin.install_checkpoint --src "${base_ckpt}" --out "${base_dir}/encoder.pt"
    elif [ -n "${base_teacher}" ]; then
        # the encoder regresses the teacher's frame features; its tokenizer is distilled from it below
        train_model teacher_distill "${base_dir}/teacher" "${pretrain_teacher_config}" "${base_dir}/lists/train" "${base_dir}/lists/valid" \
            --teacher "${base_teacher}"
        export_model "${base_dir}/teacher"
        install_copy "${base_dir}/teacher/encoder.pt" "${base_dir}/encoder.pt"
    else
        train_model sonar_train "${base_dir}/iter1" "${pretrain_iter1_config}" "${base_dir}/lists/train" "${base_dir}/lists/valid"
        export_model "${base_dir}/iter1"
        train_model tokenizer_train "${base_dir}/tokenizer" "${tokenizer_config}" "${base_dir}/lists/train" "${base_dir}/lists/valid" \
            --tokenizer_conf teacher="${base_dir}/iter1/encoder.pt"
        export_model "${base_dir}/tokenizer"
        train_model sonar_train "${base_dir}/iter2" "${pretrain_iter2_config}" "${base_dir}/lists/train" "${base_dir}/lists/valid" \
            --encoder_conf init="${base_dir}/iter1/encoder.pt" --tokenizer_conf init="${base_dir}/tokenizer/tokenizer.pt"
        export_model "${base_dir}/iter2"
        install_copy "${base_dir}/iter2/encoder.pt" "${base_dir}/encoder.pt"
        install_copy "${base_dir}/iter2/model.pth" "${base_dir}/model.pth"  # predictor + heads seed stage 4
        install_copy "${base_dir}/tokenizer/tokenizer.pt" "${base_dir}/tokenizer.pt"
    fi
    if [ -n "${base_ckpt}" ] || [ -n "${base_teacher}" ]; then  # (the iterations distilled theirs above)
        if [ -n "${base_tokenizer}" ]; then
            python -m espnet2_sonar.bin.install_checkpoint --kind tokenizer --src "${base_tokenizer}" \
                --out "${base_dir}/tokenizer.pt"
        else
            train_model tokenizer_train "${base_dir}/tokenizer" "${tokenizer_config}" "${base_dir}/lists/train" "${base_dir}/lists/valid" \
                --tokenizer_conf teacher="${base_dir}/encoder.pt"
            export_model "${base_dir}/tokenizer"
            install_copy "${base_dir}/tokenizer/tokenizer.pt" "${base_dir}/tokenizer.pt"
        fi
    fi
    log "base encoder: ${base_dir}/encoder.pt, tokenizer: ${base_dir}/tokenizer.pt (official BEATs format)"
    stage_time 2
fi

# ---------------------------------------------------------------- 3-5. staged continual pre-training
if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 3 ]; then
  for tseed in ${train_seeds}; do
    run_dir=${exp_dir}/tseed${tseed}
    for method in ${methods}; do
        if [ "${method}" = decar ]; then
            # DECAR: its own stage script (pre-training on the prior pool, then each domain
            # in order); stages 3-5 in one go. A BEATs DECAR starts from the base encoder;
            # another architecture (the paper's EfficientNet) from its own random init, and
            # the stage script also exports that init as the architecture's floor (decar/random).
            log "Stages 3-5 (decar, training seed ${tseed}): ${run_dir}/decar/{base,${domains// /,}}"
            decar_init=()
            if [ "$(utils/config_value.sh "${decar_config}" encoder)" = beats ]; then
                decar_init=(--init_ckpt "${base_dir}/encoder.pt")
            fi
            stages/decar.sh --exp_dir "${run_dir}" --data_dir "${data_dir}" --domains "${domains}" \
                "${decar_init[@]}" --config "${decar_config}" --replay_rho "${decar_replay_rho}" --ngpu "${ngpu}" \
                --num_nodes "${num_nodes}" --cpu_ranks "${cpu_ranks}" \
                --valid_share "${valid_share}" --train_args "--seed ${tseed} ${train_args}"
            continue
        fi
        prev="${base_dir}"
        config_var="${method}_config"; config="${!config_var}"
        for domain in ${domains}; do
            out="${run_dir}/${method}/${domain}"
            mkdir -p "${out}"
            if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
                log "Stage 3 (${method}, ${domain}, training seed ${tseed}): training lists"
                if [ "${method}" = sonar ]; then
                    if [ ! -f "${out}/replay/wav.scp" ]; then
                        # candidates: the prior pool's training list (its held-out valid clips, the
                        # drift audio, are never replayed); embeddings cached per embedding model
                        # shellcheck disable=SC2086
                        ${train_cmd} "${out}/sample.log" python -m espnet2_sonar.bin.sonar_sample \
                            --prior_dir "${base_dir}/lists/train" --new_dir "${pool_dir}/${domain}" \
                            --ckpt "${prev}/encoder.pt" --out_dir "${out}/replay" --nj "${nj}" --seed "${tseed}" \
                            --cache_dir "${prev}/emb_cache/${domain}${precision_suffix}" --precision "${precision}" \
                            ${sample_args} >/dev/null
                    fi
                    make_lists "${out}/lists" "${pool_dir}/${domain}" "${out}/replay/wav.scp" "${tseed}"
                else
                    make_lists "${out}/lists" "${pool_dir}/${domain}" "" "${tseed}"
                fi
            fi
            if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
                log "Stage 4 (${method}, ${domain}, training seed ${tseed}): continual pre-training from ${prev}"
                init_args=(--encoder_conf init="${prev}/encoder.pt" --tokenizer_conf init="${prev}/tokenizer.pt")
                if [ -f "${prev}/model.pth" ]; then  # predictor and heads continue too
                    init_args+=(--init_param "${prev}/model.pth:predictor:predictor" "${prev}/model.pth:head_new:head_new")
                    # SONAR's head_old reads T0 = the previous stage's tokenizer, whose codes head_new learnt
                    [ "${method}" = sonar ] && init_args+=("${prev}/model.pth:head_new:head_old")
                fi
                # the training seed: ESPnet's --seed (head init, data order) and the mask generator's
                train_model sonar_train "${out}" "${config}" "${out}/lists/train" "${out}/lists/valid" "${init_args[@]}" \
                    --seed "${tseed}" --model_conf seed="${tseed}" "${frozen_precision_args[@]}"
                export_model "${out}"
            fi
            if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
                export_model "${out}"
                log "Stage 5 (${method}, ${domain}, training seed ${tseed}): ${out}/encoder.pt ${out}/tokenizer.pt ${out}/packed.zip"
            fi
            prev="${out}"
        done
    done
  done
  stage_time 3-5
fi

# ---------------------------------------------------------------- 6. evaluation
if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "Stage 6: frozen probes -> ${exp_dir}/eval"
    # floor: a randomly initialised encoder of the base architecture, one init per training
    # seed (the floor's own spread; tseed<T>/random), the first also for drift
    for tseed in ${train_seeds}; do
        if [ ! -f "${exp_dir}/random/tseed${tseed}/encoder.pt" ]; then
            python -m espnet2_sonar.bin.random_encoder --like "${base_dir}/encoder.pt" --seed "${tseed}" \
                --out "${exp_dir}/random/tseed${tseed}/encoder.pt" >/dev/null
        fi
    done
    random_first=${exp_dir}/random/tseed${first_seed}/encoder.pt
    # floor: mean + std of the log-mel bands (what the input alone gives a probe)
    if [ ! -f "${exp_dir}/floors/logmel.pt" ]; then
        python -m espnet2_sonar.bin.reference_encoder --kind logmel_stats --out "${exp_dir}/floors/logmel.pt" >/dev/null
    fi
    ckpts="base=${base_dir}/encoder.pt logmel=${exp_dir}/floors/logmel.pt"
    for tseed in ${train_seeds}; do ckpts+=" tseed${tseed}/random=${exp_dir}/random/tseed${tseed}/encoder.pt"; done
    if [ -n "${base_teacher}" ]; then  # reference: the most the base could learn from its teacher
        if [ ! -f "${exp_dir}/floors/teacher_${base_teacher}.pt" ]; then
            python -m espnet2_sonar.bin.reference_encoder --kind teacher --teacher "${base_teacher}" \
                --out "${exp_dir}/floors/teacher_${base_teacher}.pt" >/dev/null
        fi
        ckpts+=" teacher/${base_teacher}=${exp_dir}/floors/teacher_${base_teacher}.pt"
    fi
    if ${with_decar}; then
        # DECAR's own floor when its architecture is not the base one (stages/decar.sh; the same
        # seeded network in every run, probed from the first)
        if [ -f "${exp_dir}/tseed${first_seed}/decar/random/encoder.pt" ]; then
            ckpts+=" decar/random=${exp_dir}/tseed${first_seed}/decar/random/encoder.pt"
        fi
    fi
    for tseed in ${train_seeds}; do
        for method in ${methods}; do
            # DECAR's stage 0 is its own pre-training on the prior pool
            [ "${method}" = decar ] && ckpts+=" tseed${tseed}/decar/prior=${exp_dir}/tseed${tseed}/decar/base/encoder.pt"
            for domain in ${domains}; do
                ckpts+=" tseed${tseed}/${method}/${domain}=${exp_dir}/tseed${tseed}/${method}/${domain}/encoder.pt"
            done
        done
    done
    probe_task_dir=${task_dir}
    if [ "${eval_split}" = valid ]; then  # each task's valid split stands in for its test split
        probe_task_dir=${exp_dir}/valid_tasks
        for t in ${probe_tasks}; do
            mkdir -p "${probe_task_dir}/${t}"
            ln -sfn "$(cd "${task_dir}/${t}" && pwd)/train" "${probe_task_dir}/${t}/train"
            ln -sfn "$(cd "${task_dir}/${t}" && pwd)/valid" "${probe_task_dir}/${t}/test"
        done
    fi
    # shellcheck disable=SC2086
    ${decode_cmd} "${exp_dir}/eval/probe.log" python -m espnet2_sonar.bin.probe_matrix \
        --ckpts "${ckpts}" --task_dir "${probe_task_dir}" --tasks "${probe_tasks}" --seeds "${probe_seeds}" \
        --out_dir "${exp_dir}/eval" --max_per_class "${probe_max_per_class}" --precision "${precision}" ${probe_args}
    # label-free view of forgetting: how far each SONAR/DCP stage moved from the base model's
    # features on held-out prior-pool audio (the old domain)
    # features on the prior pool's held-out clips (base/lists/valid: in no training or replay list)
    drift_ckpts="random=${random_first}"; drift_files=("${random_first}")
    for tseed in ${train_seeds}; do
        for method in ${methods}; do
            [ "${method}" = decar ] && continue  # DECAR may change the architecture (EfficientNet)
            for domain in ${domains}; do
                drift_ckpts+=" tseed${tseed}/${method}/${domain}=${exp_dir}/tseed${tseed}/${method}/${domain}/encoder.pt"
                drift_files+=("${exp_dir}/tseed${tseed}/${method}/${domain}/encoder.pt")
            done
        done
    done
    stale=true  # (re)compute unless drift.json is newer than every checkpoint it covers
    if [ -f "${exp_dir}/eval/drift.json" ]; then
        stale=false
        for f in "${drift_files[@]}"; do if [ "$f" -nt "${exp_dir}/eval/drift.json" ]; then stale=true; fi; done
        # ... and made at this --precision (a drift.json that records none was fp32)
        recorded=$(python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("precision", {}).get("precision", "fp32"))' \
            "${exp_dir}/eval/drift.json")
        [ "${recorded}" = "${precision}" ] || stale=true
    fi
    if ${stale}; then
        ${decode_cmd} "${exp_dir}/eval/drift.log" python -m espnet2_sonar.bin.drift --base "${base_dir}/encoder.pt" \
            --ckpts "${drift_ckpts}" --audio "prior=${base_dir}/lists/valid/wav.scp" --out "${exp_dir}/eval/drift.json" \
            --precision "${precision}"
    fi
    stage_time 6
fi

# ---------------------------------------------------------------- 7. report
if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    log "Stage 7: report -> ${exp_dir}/report"
    notes_args=()
    [ -n "${report_notes}" ] && [ -f "${report_notes}" ] && notes_args=(--notes "${report_notes}")
    references="random logmel decar/random"
    [ -n "${base_teacher}" ] && references+=" teacher/${base_teacher}"
    python -m espnet2_sonar.bin.report --eval_dir "${exp_dir}/eval" --exp_dir "${exp_dir}" \
        --methods "${methods}" --domains "${domains}" --tasks "${probe_tasks}" --out_dir "${exp_dir}/report" \
        --references "${references}" --train_seeds "${train_seeds}" --seeds "${probe_seeds}" \
        --task_domain "${corpus_task_domain},${task_domain}" "${notes_args[@]}"
    stage_time 7
    python -m espnet2_sonar.bin.results_md --report_dir "${exp_dir}/report" --out "${exp_dir}/RESULTS.md" \
        --command "${cmdline}" --elapsed_s "${SECONDS}" --stage_times "${exp_dir}/stage_times.tsv"
    log "report: ${exp_dir}/report/report.md; results: ${exp_dir}/RESULTS.md"
fi

last_domain=${domains##* }

# ---------------------------------------------------------------- 8. PACE (optional)
if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    log "Stage 8: PACE (class-incremental) -> ${exp_dir}/pace"
    pace_ckpts="base:${base_dir}/encoder.pt"
    for method in ${methods}; do  # the first training run's last-stage encoders
        [ "${method}" = decar ] && continue
        pace_ckpts+=" ${method}:${exp_dir}/tseed${first_seed}/${method}/${last_domain}/encoder.pt"
    done
    eval "pace_extra=(${pace_args})"  # shell words: quoted values such as --methods "naive pace" stay whole
    stages/pace.sh --exp_dir "${exp_dir}/pace" --data_dir "${data_dir}" --ckpts "${pace_ckpts}" \
        --seeds "${probe_seeds}" "${pace_extra[@]}"
    stage_time 8
fi

# ---------------------------------------------------------------- 9. S-SONDO (optional)
if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    if [ -z "${ssondo_teacher}" ]; then
        ssondo_teacher=${base_dir}/encoder.pt
        [[ " ${methods} " == *" sonar "* ]] && ssondo_teacher=${exp_dir}/tseed${first_seed}/sonar/${last_domain}/encoder.pt
    fi
    log "Stage 9: S-SONDO (teacher ${ssondo_teacher}) -> ${exp_dir}/ssondo"
    eval "ssondo_extra=(${ssondo_args})"  # shell words, as for --pace_args
    stages/ssondo.sh --exp_dir "${exp_dir}/ssondo" --data_dir "${data_dir}" --teacher "${ssondo_teacher}" \
        --seeds "${probe_seeds}" --tasks "${probe_tasks}" --config_dir "conf/${size}" --nj "${nj}" --ngpu "${ngpu}" \
        --num_nodes "${num_nodes}" --cpu_ranks "${cpu_ranks}" \
        "${ssondo_extra[@]}"
    stage_time 9
fi

# ---------------------------------------------------------------- 10. Hugging Face upload (optional)
if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    [ -n "${hf_repo}" ] || { log "Stage 10 needs --hf_repo owner/name"; exit 1; }
    if [ -z "${hf_dir}" ]; then
        hf_method=""
        for m in ${methods}; do  # sonar if run, else the first non-DECAR method
            [ "$m" = decar ] && continue
            if [ -z "${hf_method}" ] || [ "$m" = sonar ]; then hf_method=$m; fi
        done
        [ -n "${hf_method}" ] || { log "Stage 10: no SONAR/DCP run among --methods; give --hf_dir"; exit 1; }
        hf_dir=${exp_dir}/tseed${first_seed}/${hf_method}/${last_domain}
    fi
    log "Stage 10: ${hf_dir} -> https://huggingface.co/${hf_repo}"
    hf_results=()
    [ -f "${exp_dir}/RESULTS.md" ] && hf_results=(--results "${exp_dir}/RESULTS.md")
    eval "hf_extra=(${hf_args})"
    python -m espnet2_sonar.bin.hf_upload --exp_dir "${hf_dir}" --repo "${hf_repo}" "${hf_results[@]}" "${hf_extra[@]}"
    stage_time 10
fi

log "checkpoints (official BEATs format): ${base_dir}/encoder.pt and, per training seed T, ${exp_dir}/tseed<T>/<method>/<domain>/encoder.pt, e.g.$(for m in ${methods}; do [ "$m" = decar ] || for d in ${domains}; do printf ' %s' "${exp_dir}/tseed${first_seed}/${m}/${d}/encoder.pt"; done; done)"
if ${with_decar}; then
    log "DECAR encoders (official BEATs format for a BEATs config, else {'kind': 'decar_efficientnet'}): ${exp_dir}/tseed<T>/decar/{base,${domains// /,}}/encoder.pt"
fi
log "Successfully finished. [elapsed=${SECONDS}s]"

#!/usr/bin/env bash
# folder_audio/sonar1: SONAR vs DCP on any folder of audio files (see README.md).
# Settings only, plus the folder's layout read into --domains / --probe_tasks / --task_domain;
# the stages live in ../../TEMPLATE/sonar1/sonar.sh, and stage 1 (local/data.sh) converts the
# folder into the data contract. Any option can be overridden on the command line, e.g.
#   ./run.sh --audio_root /data/my_audio --domains "city birds" --task_domain "calls=birds"
# ./run.sh --help lists every option with its value here; a run starts from this dir.
set -euo pipefail

audio_root=""             # the folder: prior/**, <domain>/**, tasks/<task>/<label>/** (README.md); empty: the
                          #   example folder, made from a few Debian packages' sounds in data/example_folder
methods="sonar dcp"       # continual methods compared
size=tiny                 # configs: conf/tiny (CPU) or conf/base (GPUs)
base_teacher=ge2e         # base model: regresses the GE2E voice encoder's frames on the prior pool; "" for
                          #   BEATs iterations

# --audio_root is this script's option (sonar.sh does not know it); the rest goes to sonar.sh
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --audio_root) [ $# -ge 2 ] || { echo "$0: --audio_root needs a value" >&2; exit 1; }
                      audio_root=$2; shift 2 ;;
        --audio_root=*) audio_root=${1#*=}; shift ;;
        --help|-h) echo "folder_audio run.sh: --audio_root \"${audio_root}\"  the folder of audio (empty: the" \
                        "example folder); it sets the defaults of --domains, --probe_tasks and --task_domain"
                   args+=("$1"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done

if [ -n "${audio_root}" ]; then
    [ -d "${audio_root}" ] || { echo "$0: --audio_root ${audio_root}: no such folder" >&2; exit 1; }
    audio_root=$(cd "${audio_root}" && pwd)
    # the folder's domains: its top folders but prior/ and tasks/, sorted (--domains gives another
    # order); its tasks: the folders under tasks/, old tasks (=prior) unless --task_domain says otherwise
    shopt -s nullglob
    domains=""
    for d in "${audio_root}"/*/; do
        d=$(basename "$d"); case "$d" in prior|tasks) ;; *) domains+=" $d" ;; esac
    done
    probe_tasks=""; task_domain=""
    for t in "${audio_root}"/tasks/*/; do
        t=$(basename "$t"); probe_tasks+=" $t"; task_domain+="${task_domain:+,}$t=prior"
    done
    shopt -u nullglob
    local_data_opts="--audio_root $(printf '%q' "${audio_root}")"
else
    # the example folder (espnet2_sonar/data/folder_corpus.py, build_example_folder)
    domains="speech env"; probe_tasks="cries minetest_foley"; task_domain="cries=prior,minetest_foley=env"
    local_data_opts=""
fi
domains=${domains# }; probe_tasks=${probe_tasks# }

# sonar.sh beside this file (not ./sonar.sh): `path/to/run.sh --help` works from any dir
"$(dirname "$0")/sonar.sh" \
    --domains "${domains}" \
    --methods "${methods}" \
    --size "${size}" \
    --base_teacher "${base_teacher}" \
    --probe_tasks "${probe_tasks}" \
    --task_domain "${task_domain}" \
    --local_data_opts "${local_data_opts}" \
    --ssondo_args "--pools '$(echo prior ${domains})'" \
    "${args[@]}"

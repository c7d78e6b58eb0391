#!/usr/bin/env bash
# debian_sounds/sonar1: SONAR vs DCP on real audio from Debian packages (built offline).
# Variables only; the stages live in ../../TEMPLATE/sonar1/sonar.sh. Any option can be
# overridden on the command line, e.g. ./run.sh --stage 3 --methods sonar --size base.
# ./run.sh --help lists every option with its value here (these settings included), from any
# dir and without the venv; a run itself starts from this dir (cd egs2/debian_sounds/sonar1).
set -euo pipefail

domains="music bio env"   # new domains, in order
methods="sonar dcp"       # continual methods compared
subset=full               # corpus: full (the recipe) or tiny (tests)
size=tiny                 # configs: conf/tiny (CPU) or conf/base (GPUs)
base_teacher=ge2e         # base model: regresses the GE2E voice encoder's frames on the prior pool
                          #   (weights from the Resemblyzer wheel); "" for BEATs iterations
# domain of each of the corpus's probe tasks (the report's old vs new tasks); --task_domain adds yours
corpus_task_domain="voice_gender=prior,prior_sfx=prior,instrument=music,animal=bio,foley=env,langid=speech"

# sonar.sh beside this file (not ./sonar.sh): `path/to/run.sh --help` works from any dir
"$(dirname "$0")/sonar.sh" \
    --domains "${domains}" \
    --methods "${methods}" \
    --subset "${subset}" \
    --size "${size}" \
    --base_teacher "${base_teacher}" \
    --corpus_task_domain "${corpus_task_domain}" \
    "$@"

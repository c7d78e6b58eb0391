#!/usr/bin/env bash
# Stage 1: build the offline real-audio corpus (see ../README.md). All arguments are passed
# to the Python builder, e.g. local/data.sh --out data --subset full --nj 2
set -euo pipefail
exec python -m espnet2_sonar.bin.data_prep "$@"

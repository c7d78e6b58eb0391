#!/usr/bin/env bash
# Stage 1: a plain folder of audio -> the recipe's data contract (see ../README.md). All
# arguments go to the builder, e.g. local/data.sh --out data --nj 2 --audio_root /my/audio;
# without --audio_root it makes the example folder (data/example_folder) first.
set -euo pipefail
exec python -m espnet2_sonar.bin.folder_corpus "$@"

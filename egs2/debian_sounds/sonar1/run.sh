#!/usr/bin/env bash
# debian_sounds/sonar1: SONAR vs DCP on real audio from Debian packages (built offline).
# Variables only; the stages live in ../../TEMPLATE/sonar1/sonar.sh. Any option can be
# overridden on the command line, e.g. ./run.sh --stage 3 --methods sonar.
set -euo pipefail

domains="music bio env"
methods="sonar dcp"
subset=full

./sonar.sh \
    --domains "${domains}" \
    --methods "${methods}" \
    --subset "${subset}" \
    --pretrain_iter1_config conf/pretrain_iter1_tiny.yaml \
    --tokenizer_config conf/tokenizer_tiny.yaml \
    --pretrain_iter2_config conf/pretrain_iter2_tiny.yaml \
    --sonar_config conf/train_sonar_tiny.yaml \
    --dcp_config conf/train_dcp_tiny.yaml \
    "$@"

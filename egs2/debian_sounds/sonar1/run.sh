#!/usr/bin/env bash
# debian_sounds/sonar1: SONAR vs DCP on real audio from Debian packages (built offline).
# Variables only; the stages live in ../../TEMPLATE/sonar1/sonar.sh. Any option can be
# overridden on the command line, e.g. ./run.sh --stage 3 --methods sonar.
set -euo pipefail

domains="music bio env"
methods="sonar dcp"
subset=full
size=tiny               # config set under conf/: tiny (CPU) or base (GPUs, official BEATs size)

./sonar.sh \
    --domains "${domains}" \
    --methods "${methods}" \
    --subset "${subset}" \
    --pretrain_iter1_config conf/${size}/pretrain_iter1.yaml \
    --tokenizer_config conf/${size}/tokenizer.yaml \
    --pretrain_iter2_config conf/${size}/pretrain_iter2.yaml \
    --sonar_config conf/${size}/train_sonar.yaml \
    --dcp_config conf/${size}/train_dcp.yaml \
    "$@"

"""espnet2_sonar: continual self-supervised pre-training of BEATs audio encoders for ESPnet.

Sub-packages (one concept per file):
    beats/           BEATs encoder, typed config, official-checkpoint interop
    tokenizer/       BEATs tokenizer, random-projection tokenizer, online clustered codebook
    distill/         frozen teachers and distillation losses
    sampling/        embedding extraction, faiss k-means, stratified replay sampling, BDS
    sonar/           SonarModel (loss composition)
    tasks/           ESPnet AbsTask subclasses
    bin/             ``python -m espnet2_sonar.bin.*`` entry points
    s3prl_upstream/  s3prl upstream registration
    eval/            frozen probes, metrics, reports
    data/            offline real-audio corpus builder and audio I/O
"""

__version__ = "0.1.0"

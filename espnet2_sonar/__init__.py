"""espnet2_sonar: continual self-supervised pre-training of BEATs audio encoders for ESPnet.

Sub-packages (one concept per file) by layer, lowest first; a package imports only from
lower layers (``tests/test_layers.py`` enforces it and lists the known violations):

0   utils/           strict configs, CLI helpers, Hub paths, precision, stage guards, AMP
                     trainer, the checkpoint-kind registry
1   data/            offline real-audio corpus builder, Kaldi dirs and audio I/O
    nn/              model-agnostic tensor helpers: masks, pooling, state-dict checks
2   beats/           BEATs encoder, predictor, typed config, official-checkpoint interop
    efficientnet/    DECAR's log-mel EfficientNet: config, log-mel, encoder, checkpoint file
3   tokenizer/       BEATs tokenizer, random-projection tokenizer, online clustered codebook
    teachers/        frozen external teachers with frame-level features (GE2E)
    students/        S-SONDO students: backbones, fbank encoder, mapping head, checkpoint file
4   distill/         distillation losses and criteria, frame-regression base pre-training
    sampling/        embedding extraction, faiss k-means, stratified replay sampling (TRSS)
5   sonar/           SonarModel (loss composition) and its target makers
    pace/            PACE: class-incremental learning on a frozen or LoRA-tuned encoder
    ssondo/          S-SONDO: distilling cached teacher embeddings into a student (BDS sampling)
    decar/           DECAR: DeepCluster-style pre-training of an EfficientNet or BEATs encoder
6   eval/            checkpoint loading, frozen probes, metrics, reports
7   tasks/           ESPnet AbsTask subclasses
    s3prl_upstream/  s3prl upstream registration
8   bin/             ``python -m espnet2_sonar.bin.*`` entry points
    adapt/           one-command adaptation of an encoder to a folder of audio (composes the
                     bin tools; ``bin.adapt`` is its CLI)
"""

__version__ = "0.1.0"

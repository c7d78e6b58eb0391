"""One-command adaptation of a BEATs encoder to a folder of audio (``espnet2_sonar.bin.adapt``).

``scan``: audio folders -> 16 kHz mono FLAC + Kaldi dirs; ``pipeline``: base checkpoint,
tokenizer, TRSS replay, SONAR/DCP training, export; ``report``: drift, codebook and probe
report of the adapted encoder.
"""

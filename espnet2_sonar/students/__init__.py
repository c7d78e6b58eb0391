"""S-SONDO's student model family: backbones, registry, log-mel encoder, mapping head, checkpoint file."""

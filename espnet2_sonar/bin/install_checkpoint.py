#!/usr/bin/env python3
"""Install a BEATs checkpoint of any format as one file in the canonical official format.

    python -m espnet2_sonar.bin.install_checkpoint --src BEATs_iter3_plus_AS2M_finetuned.pt --out base/encoder.pt
    python -m espnet2_sonar.bin.install_checkpoint --src hf://OWNER/REPO/beats.pt --out base/encoder.pt
    python -m espnet2_sonar.bin.install_checkpoint --kind tokenizer --src Tokenizer_iter3.pt --out base/tokenizer.pt
    python -m espnet2_sonar.bin.install_checkpoint --src exp/.../encoder.pt --out espnet/beats.pt --format espnet

``--src`` is a file or a Hugging Face spec (``hf://OWNER/REPO[@REV]/PATH``, or a
``https://huggingface.co/.../resolve/...`` URL) holding an official pre-trained or fine-tuned
BEATs file, an ESPnet/OpenBEATs one, or ours (see ``espnet2_sonar.beats.formats``; for
``--kind tokenizer``, ``espnet2_sonar.tokenizer.formats``). The output states its fbank
statistics in cfg; a fine-tuned classifier is dropped. ``--format espnet`` writes ESPnet's format and ``OUT.yaml`` with the ``encoder_conf`` ESPnet needs. An
output that already holds the same content is left untouched (the recipe's stage 2).
"""

import argparse
import logging
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="checkpoint file or Hugging Face spec")
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--kind", choices=("encoder", "tokenizer"), default="encoder")
    p.add_argument("--format", choices=("official", "espnet"), default="official", dest="fmt")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from espnet2_sonar.beats.formats import install_encoder
    from espnet2_sonar.beats.interop import CheckpointMismatchError
    from espnet2_sonar.tokenizer.formats import install_tokenizer

    install = {"encoder": install_encoder, "tokenizer": install_tokenizer}[args.kind]
    try:
        out = install(args.src, args.out, fmt=args.fmt)
    except (CheckpointMismatchError, FileNotFoundError, ValueError) as e:
        print(f"install_checkpoint: --src {args.src}: {e}", file=sys.stderr)
        return 1
    logging.info("installed %s -> %s", args.src, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Frozen-encoder linear probe (SUPERB-style weighted layer sum, mean pooling, linear head).

    python -m espnet2_sonar.bin.probe --ckpt CKPT --train_dir DIR --test_dir DIR \\
        [--valid_dir DIR] [--seed N] --out result.json

Each DIR is Kaldi-style with ``wav.scp`` and ``utt2label``. CKPT is an official BEATs
``.pt``, an ESPnet ``.pth`` (with config.yaml beside it) or an ESPnet exp dir. Pooled
per-layer embeddings are cached (``--cache_dir``), so further seeds skip the encoder.
result.json holds accuracy, macro_f1, n_train/n_valid/n_test, softmaxed layer_weights,
seed, ckpt, epochs, best_epoch, best_valid_accuracy, per-class counts and scores, the
confusion matrix and the probe config.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_sonar.utils.atomic_write import atomic_write


def get_parser() -> argparse.ArgumentParser:
    from espnet2_sonar.eval.probe import ProbeConfig
    from espnet2_sonar.utils.precision import add_precision_argument

    d = ProbeConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="official .pt, ESPnet .pth or ESPnet exp dir")
    p.add_argument("--model_config", default=None, help="config.yaml of an ESPnet .pth stored elsewhere")
    p.add_argument("--train_dir", required=True)
    p.add_argument("--valid_dir", default=None, help="default: a seeded stratified split of train")
    p.add_argument("--test_dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="result JSON path")
    p.add_argument("--cache_dir", default=None, help="embedding cache (default $ESPNET2_SONAR_CACHE/embeddings)")
    p.add_argument("--no_cache", action="store_true", help="always run the encoder, write no cache")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_size", type=int, default=8, help="encoder batch (chunks)")
    p.add_argument("--chunk_seconds", type=float, default=10.0, help="longest piece encoded at once; <= 0: no cutting")
    add_precision_argument(p, "encoder's forward (embedding extraction)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight_decay", type=float, default=d.weight_decay)
    p.add_argument("--probe_batch_size", type=int, default=d.batch_size)
    p.add_argument("--max_epochs", type=int, default=d.max_epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--valid_fraction", type=float, default=d.valid_fraction)
    p.add_argument("--standardize", type=lambda s: s.lower() in ("1", "true", "yes"), default=d.standardize)
    return p


def main(argv: Optional[List[str]] = None) -> dict:
    from espnet2_sonar.eval.embeddings import default_cache_dir
    from espnet2_sonar.eval.probe import ProbeConfig, run_probe

    args = get_parser().parse_args(argv)
    config = ProbeConfig(
        lr=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.probe_batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        valid_fraction=args.valid_fraction,
        standardize=args.standardize,
    )
    cache_dir = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    result = run_probe(
        ckpt=args.ckpt,
        train_dir=args.train_dir,
        test_dir=args.test_dir,
        valid_dir=args.valid_dir,
        seed=args.seed,
        config=config,
        cache_dir=cache_dir,
        device=args.device,
        batch_size=args.batch_size,
        chunk_seconds=args.chunk_seconds if args.chunk_seconds > 0 else None,
        model_config=args.model_config,
        precision=args.precision,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2) + "\n")
    print(
        f"accuracy {result['accuracy']:.4f}  macro_f1 {result['macro_f1']:.4f}  "
        f"(n_train {result['n_train']}, n_test {result['n_test']}) -> {out}",
        file=sys.stderr,
    )
    return result


if __name__ == "__main__":
    main()

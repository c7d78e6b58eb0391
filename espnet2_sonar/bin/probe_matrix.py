#!/usr/bin/env python3
"""Recipe stage 6: frozen probes for every checkpoint x task x seed, in one process.

    python -m espnet2_sonar.bin.probe_matrix --task_dir data/tasks --out_dir exp/eval \
        --ckpts "base=exp/base/encoder.pt tseed0/sonar/music=exp/tseed0/sonar/music/encoder.pt" \
        --tasks "voice_gender prior_sfx instrument animal foley" --seeds "0 1 2"

Writes ``out_dir/<name>/<task>/seed<N>.json`` (the same JSON as ``bin/probe.py``), skipping
results that exist, so an interrupted stage resumes. A result is reused only when it was
probed on the same checkpoint content: each records ``ckpt_sha256`` (see
:func:`checkpoint_sha256`), and one whose hash differs from the checkpoint's now (retrained,
re-exported) or that has none (written before the hash was recorded) is probed again, as is
one probed with another ``--max_per_class`` or ``--precision``. The hashes are cached by file size and mtime in
``<cache_dir>/sha256_cache.json``, so a rerun does not read every checkpoint again. Pooled
embeddings are cached per checkpoint content and data dir under ``--cache_dir`` (default
``out_dir/cache``; ``eval/embeddings.py`` keys them on the checkpoint files' content); the
three seeds of one checkpoint and task reuse one extraction. One process instead of one per
probe saves the toolkit's start-up time on every probe.

``--max_per_class N`` probes on at most N utterances per class and split, chosen by a hash
of the utterance id (the same subset for every checkpoint, seed and rerun); the subsets are
written as Kaldi dirs under ``out_dir/subsets`` and recorded in each result. Large tasks
(e.g. spoken language ID with thousands of clips) then cost what small ones do.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_sonar.utils.atomic_write import atomic_write


def capped_dir(src: Path, dst: Path, max_per_class: int) -> Path:
    """``src`` (wav.scp + utt2label) with at most ``max_per_class`` utterances per label.

    Utterances are ranked by sha256 of their id within each label, so the subset depends
    on nothing but the ids. Returns ``src`` itself when no class exceeds the cap.
    """
    import hashlib

    from espnet2_sonar.sampling.mixing import read_kaldi_map, write_kaldi_map

    wavs, labels = read_kaldi_map(src / "wav.scp"), read_kaldi_map(src / "utt2label")
    by_label: dict = {}
    for utt in wavs:
        by_label.setdefault(labels.get(utt), []).append(utt)
    if all(len(v) <= max_per_class for v in by_label.values()):
        return src
    keep = set()
    for utts in by_label.values():
        utts.sort(key=lambda u: hashlib.sha256(u.encode()).hexdigest())
        keep.update(utts[:max_per_class])
    kept = [u for u in wavs if u in keep]
    if not (dst / "utt2label").exists():
        write_kaldi_map(dst / "wav.scp", [(u, wavs[u]) for u in kept])
        write_kaldi_map(dst / "utt2label", [(u, labels[u]) for u in kept])
    return dst


def checkpoint_sha256(ckpt: str, hashes) -> str:
    """Content hash of what ``ckpt`` resolves to (``eval.checkpoints.resolve_checkpoint``):
    the model file's sha256 (what ``sha256sum`` prints) for a one-file checkpoint, else the
    sha256 of the ``"<sha256>  <file name>"`` lines of its files (an ESPnet model and its
    ``config.yaml``). ``hashes``: a ``stage_guard.HashCache``."""
    import hashlib

    from espnet2_sonar.eval.checkpoints import resolve_checkpoint

    files = resolve_checkpoint(ckpt).files
    if len(files) == 1:
        return hashes.sha256(files[0])
    lines = "".join(f"{hashes.sha256(f)}  {Path(f).name}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _is_current(result_file: Path, max_per_class: int, ckpt_sha256: str, precision: str = "fp32") -> bool:
    """Was the existing ``result_file`` probed on these clips (same per-class cap) with this
    checkpoint content and encoder precision (results without one were fp32)? False when
    absent, unreadable or without a recorded ``ckpt_sha256``."""
    try:
        stored = json.loads(result_file.read_text())
        stored_precision = (stored.get("precision") or {}).get("precision", "fp32")
        return (int(stored.get("max_per_class", 0)) == max_per_class and stored.get("ckpt_sha256") == ckpt_sha256
                and stored_precision == precision)
    except (ValueError, TypeError, OSError, AttributeError):
        return False


def main(argv: Optional[List[str]] = None) -> int:
    from tqdm import tqdm

    from espnet2_sonar.eval.probe import ProbeConfig, run_probe
    from espnet2_sonar.utils.cli import name_path_pairs
    from espnet2_sonar.utils.precision import add_precision_argument, check_precision
    from espnet2_sonar.utils.stage_guard import HashCache

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpts", required=True, help='"NAME=PATH ..." (NAME may contain "/")')
    p.add_argument("--task_dir", required=True, help="dir with <task>/{train,valid,test}/")
    p.add_argument("--tasks", default="voice_gender prior_sfx instrument animal foley")
    p.add_argument("--seeds", default="0 1 2")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max_per_class", type=int, default=0, help="cap per class and split (0: no cap)")
    add_precision_argument(p, "encoders' forwards (embedding extraction)")
    args = p.parse_args(argv)
    check_precision(args.precision, args.device)

    out_dir = Path(args.out_dir)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    hashes = HashCache(cache_dir / "sha256_cache.json")
    jobs = []
    for name, ckpt in name_path_pairs(args.ckpts, "--ckpts").items():
        digest = checkpoint_sha256(ckpt, hashes)
        for task in args.tasks.split():
            for seed in (int(s) for s in args.seeds.split()):
                res = out_dir / name / task / f"seed{seed}.json"
                # absent, probed on other clips, or on another checkpoint content (stale)
                if not _is_current(res, args.max_per_class, digest, args.precision):
                    jobs.append((name, ckpt, digest, task, seed, res))
    hashes.save()
    for name, ckpt, digest, task, seed, res in tqdm(jobs, desc="probes", unit="probe"):
        dirs = {}
        for split in ("train", "valid", "test"):
            src = Path(args.task_dir) / task / split
            if not (src / "wav.scp").exists():
                continue
            dirs[split] = capped_dir(src, out_dir / "subsets" / f"max{args.max_per_class}" / task / split,
                                     args.max_per_class) \
                if args.max_per_class > 0 else src
        result = run_probe(
            ckpt=ckpt,
            train_dir=str(dirs["train"]),
            test_dir=str(dirs["test"]),
            valid_dir=str(dirs["valid"]) if "valid" in dirs else None,
            seed=seed,
            config=ProbeConfig(),
            cache_dir=str(cache_dir),
            device=args.device,
            precision=args.precision,
        )
        result["max_per_class"] = args.max_per_class
        result["ckpt_sha256"] = digest
        res.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(res, json.dumps(result, indent=2) + "\n")
        tqdm.write(f"{name:>14s} {task:>10s} seed{seed}: accuracy {result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

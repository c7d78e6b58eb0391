"""Stage 3: task-relevant stratified replay sampling (TRSS) from the prior pool.

    python -m espnet2_sonar.bin.sonar_sample --prior_dir data/prior --new_dir data/bio_train \
        --ckpt exp/base/beats.pt --out_dir data/replay_bio [--layer -1] [--num_strata 64] \
        [--rho 0.5] [--alpha 0.5] [--tau 0.1] [--min_per_stratum 1] [--seed 0] [--nj 4]

Embeds both Kaldi dirs with the prior encoder M0 (mean-pooled ``--layer``; cached and
resumable under ``--cache_dir``), clusters the prior pool, allocates the replay budget
rho * |D_new| over the strata and writes to ``--out_dir``:

* ``wav.scp``: the replay list (sorted by id), plus ``utt2dur`` / ``utt2spk`` of the
  sampled ids when the prior dir has them, and ``utt2stratum``;
* ``report.json``: config, seed, allocation per stratum, relevance, sampled ids.

With ``--mix_dir`` it also writes the training list mixing the new dir and the replay
list at ratio rho (``wav.scp`` + ``utt2source``; see ``espnet2_sonar.sampling.mixing``).
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_sonar.sampling.mixing import read_kaldi_map, write_kaldi_map, write_mixed_dir
from espnet2_sonar.sampling.stratified import StratifiedSamplerConfig, stratified_sample, write_report
from espnet2_sonar.utils.cli import add_config_arguments, config_from_args, str2bool
from espnet2_sonar.utils.precision import add_precision_argument

COPIED_FILES = ("utt2dur", "utt2spk")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior_dir", required=True, type=Path, help="Kaldi dir of the prior pool P_old (wav.scp)")
    p.add_argument("--new_dir", required=True, type=Path, help="Kaldi dir of the new domain D_new (wav.scp)")
    p.add_argument("--ckpt", required=True, help="BEATs checkpoint of M0 (any format) or hf://OWNER/REPO/PATH")
    p.add_argument("--out_dir", required=True, type=Path, help="output dir for the replay list and report")
    p.add_argument("--layer", type=int, default=-1, help="hidden state to mean-pool (index into extract_layers)")
    add_config_arguments(p, StratifiedSamplerConfig)  # --num_strata ... --seed: the TRSS constants
    p.add_argument("--nj", type=int, default=1, help="CPU threads for the encoder and for audio reading")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch_size", type=int, default=16)
    add_precision_argument(p, "M0 forward computing the TRSS embeddings")
    p.add_argument("--max_seconds", type=float, default=None, help="cut clips to their first N seconds")
    p.add_argument("--cache_dir", type=Path, default=None, help="embedding caches (default: OUT_DIR/emb_cache)")
    p.add_argument("--mix_dir", type=Path, default=None, help="also write the new+replay training list here")
    p.add_argument("--mix_repeat", type=str2bool, default=False, help="repeat replay items if too few for rho")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return p


def _ckpt_tag(ckpt: Path) -> str:
    st = ckpt.stat()
    return f"{ckpt.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def run(args: argparse.Namespace) -> dict:
    import torch

    from espnet2_sonar.beats.formats import load_beats_encoder
    from espnet2_sonar.utils.hub import resolve_checkpoint_path
    from espnet2_sonar.sampling.embed import extract_embeddings
    from espnet2_sonar.utils.precision import check_precision, precision_record

    for d in (args.prior_dir, args.new_dir):
        if not (d / "wav.scp").is_file():
            raise FileNotFoundError(f"{d}/wav.scp: no such file")
    ckpt = resolve_checkpoint_path(args.ckpt)  # a Hugging Face spec: the cached download
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint")
    config = config_from_args(StratifiedSamplerConfig, args)
    torch.set_num_threads(max(1, args.nj))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    check_precision(args.precision, device)
    encoder = load_beats_encoder(ckpt).to(device).eval()
    cache_dir = args.cache_dir or (args.out_dir / "emb_cache")
    common = dict(
        layer=args.layer,
        batch_size=args.batch_size,
        max_seconds=args.max_seconds,
        num_workers=args.nj if args.nj > 1 else 0,
        tag=_ckpt_tag(ckpt),
        progress=not args.no_progress,
        precision=args.precision,
    )
    prior = extract_embeddings(encoder, args.prior_dir / "wav.scp", cache_dir / "prior", **common)
    new = extract_embeddings(encoder, args.new_dir / "wav.scp", cache_dir / "new", **common)

    result = stratified_sample(prior.ids, prior.embeddings, new.embeddings, config)
    prior_scp = read_kaldi_map(args.prior_dir / "wav.scp")
    chosen = sorted(result.sampled_ids)
    out = args.out_dir
    write_kaldi_map(out / "wav.scp", [(k, prior_scp[k]) for k in chosen])
    stratum_of = dict(zip(result.sampled_ids, result.sampled_strata))
    write_kaldi_map(out / "utt2stratum", [(k, str(stratum_of[k])) for k in chosen])
    for name in COPIED_FILES:
        src = args.prior_dir / name
        if src.is_file():
            table = read_kaldi_map(src)
            missing = [k for k in chosen if k not in table]
            if missing:
                raise ValueError(f"{src}: lacks {len(missing)} sampled ids, e.g. {missing[:3]}")
            write_kaldi_map(out / name, [(k, table[k]) for k in chosen])
    result.extra.update(
        {
            "prior_dir": str(args.prior_dir),
            "new_dir": str(args.new_dir),
            "ckpt": str(args.ckpt),
            "layer": args.layer,
            "embedding_dim": int(prior.embeddings.shape[1]),
            "precision": precision_record(args.precision, device),
        }
    )
    report = result.report()
    if args.mix_dir is not None:
        mixed = write_mixed_dir(args.new_dir, out, args.mix_dir, config.rho, seed=config.seed, repeat=args.mix_repeat)
        report["mix"] = {"dir": str(args.mix_dir), "num_new": mixed.num_new, "num_replay": mixed.num_replay}
    write_report(report, out / "report.json")
    a = result.allocation
    logging.info(
        f"replay: {a.total} of {result.num_prior} prior items (budget {a.budget}) over {len(a.sizes)} strata -> {out}"
    )
    return report


def main(cmd: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(cmd)
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Build the recipe's data contract from a plain folder of audio (egs2/folder_audio stage 1).

    python -m espnet2_sonar.bin.folder_corpus --out data --audio_root /my/audio [--nj 2]
    python -m espnet2_sonar.bin.folder_corpus --out data            # the example folder (below)

The folder: prior/** (the prior pool), <domain>/** (one unlabelled pool per new domain:
every other top folder), optionally tasks/<task>/<label>/** (labelled probe tasks, split
into train/valid/test by a stable hash of each file). Any nesting, names with spaces, any
format soundfile reads, any rate and channel count. Writes OUT/pools/{prior,<domain>},
OUT/tasks/<task>/{train,valid,test} (16 kHz mono FLAC under OUT/audio_formatted/), the
intermediate Kaldi dirs under OUT/raw/ and OUT/folder_corpus.json. Reruns reuse every
converted file. See espnet2_sonar/data/folder_corpus.py and egs2/folder_audio/sonar1/README.md.

Without --audio_root an example folder is made first (--example_dir, default
OUT/example_folder) from the sounds of four small Debian packages (wesnoth-1.16-data,
tuxpaint-data, asterisk-core-sounds-en-gsm, minetest-data; the debian_sounds corpus
builder's cache, downloaded with apt-get download when missing): domains "speech env",
tasks cries (prior) and minetest_foley (env).
"""

from __future__ import annotations

import argparse
import sys


from espnet2_sonar.data.folder_corpus import build_example_folder, build_folder_corpus
from espnet2_sonar.data.format_dir import FormatError
from espnet2_sonar.utils.cli import log_through_tqdm


def _shares(text: str):
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split: expected three numbers like 0.6,0.2,0.2, got {text!r}") from None
    if len(vals) != 3 or min(vals) < 0 or sum(vals) <= 0:
        raise argparse.ArgumentTypeError(f"--split: expected three non-negative shares, got {text!r}")
    return vals


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m espnet2_sonar.bin.folder_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the recipe's data dir")
    p.add_argument("--audio_root", default="", help="the folder (empty: the example folder)")
    p.add_argument("--example_dir", default="", help="where the example folder is made (default OUT/example_folder)")
    p.add_argument("--subset", default="full", choices=("full", "tiny"),
                   help="example folder size: full (<= 120 files per folder/label) or tiny (<= 8); "
                        "ignored with --audio_root")
    p.add_argument("--cache", default=None, help="package cache (default: $SONAR_CACHE or ~/.cache/espnet2_sonar)")
    p.add_argument("--nj", type=int, default=2, help="parallel processes")
    p.add_argument("--segment_seconds", type=float, default=10.0,
                   help="longer files are cut into pieces of this length")
    p.add_argument("--max_recording_seconds", type=float, default=600.0, help="only this much of a file is used")
    p.add_argument("--min_seconds", type=float, default=0.25, help="shorter clips are dropped (warned)")
    p.add_argument("--split", type=_shares, default=(0.6, 0.2, 0.2), help="train,valid,test shares of task files")
    p.add_argument("--skip_bad", action="store_true", help="leave unreadable files out with a warning (default: error)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    log_through_tqdm()
    root = args.audio_root
    try:
        if not root:
            root = build_example_folder(args.example_dir or f"{args.out}/example_folder", args.cache, args.nj,
                                        per_folder=120 if args.subset == "full" else 8, progress=not args.quiet)
        corpus = build_folder_corpus(root, args.out, nj=args.nj, segment_s=args.segment_seconds,
                                     max_recording_s=args.max_recording_seconds, min_s=args.min_seconds,
                                     shares=args.split, skip_bad=args.skip_bad, progress=not args.quiet)
    except FormatError as e:
        print(f"folder_corpus: error: {e}", file=sys.stderr)
        return 1
    print("| set | clips | minutes | classes |")
    print("|---|---:|---:|---:|")
    for r in corpus.reports:
        s = r.summary()
        print(f"| {r.dst.relative_to(corpus.out)} | {s['clips']} | {s['minutes']:.1f} | {s['classes'] or '-'} |")
    print(f"domains: {' '.join(corpus.domains)}; tasks: {' '.join(corpus.tasks) or '(none)'}; "
          f"summary: {corpus.out / 'folder_corpus.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

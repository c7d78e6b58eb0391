"""Build the offline real-audio corpus from Debian packages (and two PyPI wheels).

    python -m espnet2_sonar.bin.data_prep --out data [--subset tiny|full] [--cache DIR] [--nj N] [--seed N]

Writes ``DIR/pools/<pool>/`` and ``DIR/tasks/<task>/{train,valid,test}/`` (Kaldi-style:
wav.scp, utt2spk, spk2utt, utt2dur, utt2label), 16 kHz mono FLAC under ``DIR/audio/``, and
``DIR/summary.{md,json}``. Rerunning reuses the download cache and converted audio.
"""

from __future__ import annotations

import argparse
import sys


from espnet2_sonar.data.build import build_corpus
from espnet2_sonar.data.corpus import SUBSETS, get_subset
from espnet2_sonar.data.package_cache import default_cache_dir
from espnet2_sonar.utils.cli import log_through_tqdm


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m espnet2_sonar.bin.data_prep",
        description="Build the offline real-audio corpus (see egs2/debian_sounds/sonar1/README.md).",
    )
    p.add_argument("--out", required=True, help="output data dir (pools/, tasks/, audio/, summary.md)")
    p.add_argument("--subset", default="full", choices=sorted(SUBSETS),
                   help="tiny: <250 MB download, seconds to build (tests, CI); full: the recipe corpus")
    p.add_argument("--cache", default=None,
                   help="download/extraction cache (default: $SONAR_CACHE or ~/.cache/espnet2_sonar)")
    p.add_argument("--nj", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and pool selection")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    if args.nj < 1:
        raise SystemExit("--nj must be >= 1")
    log_through_tqdm()
    report = build_corpus(args.out, get_subset(args.subset), args.cache or default_cache_dir(),
                          nj=args.nj, seed=args.seed, progress=not args.quiet)
    print(report.summary.to_markdown())
    print(f"summary written to {report.out / 'summary.md'} and summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

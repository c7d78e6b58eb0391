#!/usr/bin/env python3
"""Format your own Kaldi-style data dirs into the recipe's data contract (recipe stage 1).

    python -m espnet2_sonar.bin.format_data --data_dir data --prior_dir /corpora/mine/prior \\
        --domain_dirs "birds=/corpora/mine/birds 'city=/my corpora/city'" \\
        --task_dirs "calls=/corpora/mine/calls" [--nj 2] [--min_seconds 0.25] [--skip_bad]
    python -m espnet2_sonar.bin.format_data --src my/dir --dst data/pools/x [--labelled]   # one dir

Writes DATA_DIR/pools/prior, DATA_DIR/pools/<name> and DATA_DIR/tasks/<task>/{train,valid,test}
(wav.scp of 16 kHz mono FLAC under DATA_DIR/audio_formatted/, utt2spk, spk2utt, utt2dur,
utt2label for tasks) and DATA_DIR/format_summary.json. Input dirs: wav.scp (files or commands
ending in '|'), optional segments, optional utt2spk, utt2label for task splits; a task DIR
holds train/ and test/ (valid/ optional). See espnet2_sonar/data/format_dir.py for the
semantics (ESPnet's format_wav_scp) and egs2/debian_sounds/sonar1/README.md, "Bring your own
corpus", for the contract. Reruns reuse every converted file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from espnet2_sonar.data.format_dir import FormatError, format_corpus, format_dir, parse_name_dirs
from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.cli import log_through_tqdm


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m espnet2_sonar.bin.format_data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", help="the recipe's data dir (pools/, tasks/ are written under it)")
    p.add_argument("--prior_dir", default="", help="Kaldi dir of the prior pool -> DATA_DIR/pools/prior")
    p.add_argument("--domain_dirs", default="", help='"name=DIR ..." (shell words) -> DATA_DIR/pools/<name>')
    p.add_argument("--task_dirs", default="",
                   help='"task=DIR ..." (shell words), DIR/{train,valid,test} -> DATA_DIR/tasks/<task>/<split>')
    p.add_argument("--src", help="one input dir (with --dst; instead of the options above)")
    p.add_argument("--dst", help="its output dir")
    p.add_argument("--audio_dir", help="where --src's FLAC files go (default DST/../audio_formatted/<name of DST>); "
                                       "a dir of its own: files in it that it did not write are left alone")
    p.add_argument("--labelled", action="store_true", help="--src has utt2label (a task split)")
    p.add_argument("--nj", type=int, default=2, help="parallel processes")
    p.add_argument("--min_seconds", type=float, default=0.25, help="shorter utterances are dropped (warned)")
    p.add_argument("--skip_bad", action="store_true",
                   help="drop utterances with bad input (unreadable audio, failing command, bad segment) "
                        "with a warning, instead of stopping with an error")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    log_through_tqdm()
    common = dict(nj=args.nj, min_s=args.min_seconds, skip_bad=args.skip_bad, progress=not args.quiet)
    try:
        if args.src or args.dst:
            if not (args.src and args.dst):
                raise FormatError("--src and --dst go together")
            dst = Path(args.dst)
            audio = Path(args.audio_dir) if args.audio_dir else dst.parent / "audio_formatted" / dst.name
            reps = [format_dir(args.src, dst, audio, args.labelled, **common)]
        else:
            if not args.data_dir:
                raise FormatError("give --data_dir (with --prior_dir/--domain_dirs/--task_dirs), or --src and --dst")
            domains = parse_name_dirs(args.domain_dirs, "--domain_dirs")
            tasks = parse_name_dirs(args.task_dirs, "--task_dirs")
            if not (args.prior_dir or domains or tasks):
                raise FormatError("nothing to format: give --prior_dir, --domain_dirs or --task_dirs")
            reps = format_corpus(args.data_dir, args.prior_dir or None, domains, tasks, **common)
            out = Path(args.data_dir) / "format_summary.json"
            atomic_write(out, json.dumps([r.summary() for r in reps], indent=1) + "\n")
    except FormatError as e:
        print(f"format_data: error: {e}", file=sys.stderr)
        return 1
    print("| set | clips | minutes | classes | reused | dropped (short) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in reps:
        s = r.summary()
        print(f"| {r.dst} | {s['clips']} | {s['minutes']:.1f} | {s['classes'] or '-'} | {s['reused']} "
              f"| {s['dropped_too_short']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Adapt any BEATs model to a folder of audio with SONAR, in one command.

    python -m espnet2_sonar.bin.adapt --base_ckpt BEATs_iter3.pt --new_audio my_recordings/ \\
        --prior_audio audioset_like_clips/ --out_dir exp/adapt_birds \\
        [--method sonar|dcp] [--config YAML] [--base_tokenizer Tokenizer_iter3.pt] \\
        [--probe_tasks data/tasks] [--nj 4] [--ngpu 1] [--train_args "--max_epoch 5"]

The recipe (``egs2/*/sonar1/run.sh``) studies continual pre-training on a prepared corpus;
this is the same pipeline for a user's own audio and an existing BEATs checkpoint:

1. scan ``--new_audio`` (and ``--prior_audio``) recursively for audio in any format libsndfile
   reads (wav, flac, ogg, mp3, ...; any rate, stereo), convert it to 16 kHz mono FLAC (long
   recordings cut into 10 s segments) and write Kaldi dirs (``espnet2_sonar.adapt.scan``);
2. hold out a share of the prior pool (whole recordings, by a hash of their id) for drift:
   those clips never enter a replay or training list;
3. pick the config by the checkpoint's size (``conf/{tiny,small,base}/train_<method>.yaml``,
   or ``--config``); take the tokenizer from ``--base_tokenizer``, else ``tokenizer.pt`` next
   to the checkpoint, else distil one from the base encoder (``bin.tokenizer_train``);
4. SONAR: task-relevant stratified replay sampling from the prior pool's training part
   (``bin.sonar_sample``), training lists (``bin.make_train_lists``), continual pre-training
   with ESPnet (``bin.sonar_train``, in a subprocess, ``--resume true``); DCP: no replay;
5. export ``OUT_DIR/encoder.pt`` and ``OUT_DIR/tokenizer.pt`` in official BEATs format;
6. write ``OUT_DIR/report.md`` / ``report.json``: label-free drift from the base on held-out
   prior clips (and new clips) beside a random-init encoder, codebook size/usage/growth per
   epoch, base-vs-adapted frozen probes when ``--probe_tasks DIR`` holds ``<task>/{train,test}``,
   the data used and skipped, the command and the timings.

Without ``--prior_audio`` SONAR runs without replay (rho 0): its distillation losses (base
encoder features, base tokenizer codes) are then computed on the new audio only, so forgetting
of the old domain is not guarded by replay; drift is measured on held-out new clips only. The
log and the report say so. (Refusing would leave users of a released checkpoint, whose
pre-training audio they do not have, without the tool; the distillation still regularises.)

Every step is resumable: outputs are written under temporary names and renamed, finished
steps are skipped, ESPnet resumes from its last epoch; rerunning the same command after an
interruption continues, and after success it trains nothing. Unreadable audio stops the run
with an error naming the file(s) unless ``--skip_bad_audio``. Exit code 2 on bad inputs,
130 on interruption.
"""

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import List, Optional


def get_parser() -> argparse.ArgumentParser:
    from espnet2_sonar.adapt.pipeline import AdaptOptions

    d = AdaptOptions(base_ckpt=Path(), new_audio=Path(), out_dir=Path())
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("inputs")
    g.add_argument("--base_ckpt", required=True,
                   help="BEATs encoder checkpoint to adapt (official, fine-tuned, ESPnet/OpenBEATs) or hf:// spec")
    g.add_argument("--new_audio", required=True, type=Path, help="folder of audio to adapt to (searched recursively)")
    g.add_argument("--prior_audio", type=Path, default=None,
                   help="folder of old-domain audio: replay pool and drift audio (see the note on running without)")
    g.add_argument("--out_dir", required=True, type=Path, help="output folder (no whitespace or commas)")
    g.add_argument("--base_tokenizer", default=None,
                   help="BEATs tokenizer (any format, or hf:// spec) (default: tokenizer.pt next to --base_ckpt, else distilled)")
    g.add_argument("--probe_tasks", type=Path, default=None,
                   help="folder of labelled Kaldi task dirs <task>/{train,test}[/valid] (wav.scp + utt2label)")
    g = p.add_argument_group("training")
    g.add_argument("--method", choices=("sonar", "dcp"), default=d.method)
    g.add_argument("--config", type=Path, default=None,
                   help="training config (default conf/<tiny|small|base>/train_<method>.yaml by checkpoint size)")
    g.add_argument("--tokenizer_config", type=Path, default=None,
                   help="tokenizer distillation config (default conf/<size>/tokenizer.yaml)")
    g.add_argument("--train_args", default=d.train_args,
                   help='extra ESPnet options for every training, e.g. "--max_epoch 5 --batch_size 16"')
    g.add_argument("--sample_args", default=d.sample_args, help="extra options of espnet2_sonar.bin.sonar_sample")
    g.add_argument("--seed", type=int, default=d.seed, help="training seed (ESPnet, masks, replay draw)")
    g.add_argument("--nj", type=int, default=d.nj, help="parallel jobs for conversion and embedding")
    g.add_argument("--ngpu", type=int, default=d.ngpu, help="GPUs for training (0: CPU)")
    g = p.add_argument_group("data")
    g.add_argument("--skip_bad_audio", action="store_true", help="skip unreadable/empty files with a warning")
    g.add_argument("--heldout_share", type=float, default=d.heldout_share,
                   help="share of prior recordings held out for drift (never replayed or trained on)")
    g.add_argument("--valid_share", type=float, default=d.valid_share, help="share of new clips for validation losses")
    g.add_argument("--segment_seconds", type=float, default=d.segment_seconds,
                   help="long recordings are cut into pieces of this length")
    g.add_argument("--max_recording_seconds", type=float, default=d.max_recording_seconds,
                   help="use at most this much of each recording")
    g.add_argument("--min_seconds", type=float, default=d.min_seconds, help="shorter clips are skipped")
    g = p.add_argument_group("report")
    g.add_argument("--drift_max_clips", type=int, default=d.drift_max_clips)
    g.add_argument("--probe_seeds", default=d.probe_seeds)
    g.add_argument("--probe_max_per_class", type=int, default=d.probe_max_per_class)
    g.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return p


class _Stderr(logging.StreamHandler):
    """A console handler that writes to the current ``sys.stderr`` (pytest swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(out_dir: Path) -> List[logging.Handler]:
    """Log INFO and above to stderr and to OUT_DIR/adapt.log (appended); returns the handlers."""
    fmt = logging.Formatter("%(asctime)s (%(name)s) %(levelname)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: List[logging.Handler] = [_Stderr()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(out_dir / "adapt.log"))
    except OSError:
        pass
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build it tried
    return handlers


def main(argv: Optional[List[str]] = None) -> int:
    from espnet2_sonar.adapt.pipeline import AdaptError, AdaptOptions, adapt
    from espnet2_sonar.beats.interop import CheckpointMismatchError
    from espnet2_sonar.data.audio import AudioFileError
    from espnet2_sonar.data.kaldi_dir import KaldiDirError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_parser().parse_args(argv)
    command = shlex.join([f"{Path(sys.executable).name}", "-m", "espnet2_sonar.bin.adapt", *argv])
    opts = AdaptOptions(
        base_ckpt=args.base_ckpt, new_audio=args.new_audio, out_dir=args.out_dir, prior_audio=args.prior_audio,
        method=args.method, config=args.config, tokenizer_config=args.tokenizer_config,
        base_tokenizer=args.base_tokenizer, probe_tasks=args.probe_tasks, nj=args.nj, ngpu=args.ngpu,
        train_args=args.train_args, sample_args=args.sample_args, seed=args.seed, heldout_share=args.heldout_share,
        valid_share=args.valid_share, skip_bad_audio=args.skip_bad_audio, segment_seconds=args.segment_seconds,
        max_recording_seconds=args.max_recording_seconds, min_seconds=args.min_seconds,
        drift_max_clips=args.drift_max_clips, probe_seeds=args.probe_seeds,
        probe_max_per_class=args.probe_max_per_class, progress=not args.no_progress, command=command)
    log = logging.getLogger("espnet2_sonar.adapt")
    handlers = _setup_logging(args.out_dir)
    try:
        adapt(opts)
    except (AdaptError, AudioFileError, KaldiDirError, CheckpointMismatchError) as e:
        log.error("%s", e)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; rerun the same command to resume")
        return 130
    finally:
        for h in handlers:
            logging.getLogger().removeHandler(h)
            h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

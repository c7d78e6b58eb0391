"""The steps of ``espnet2_sonar.bin.adapt``: base model -> data -> replay -> training -> export -> report.

Each step reuses the toolkit's own code (the recipe's stages as functions) and is resumable:
its outputs are written under a temporary name and renamed, and a step whose outputs exist
is skipped, so rerunning the same command after an interruption continues where it stopped
and a rerun after success trains nothing. ESPnet trainings run in a subprocess (as in
``egs2/TEMPLATE/sonar1/sonar.sh``'s ``train_model``) with ``--resume true``, logging to
``train.log`` beside their checkpoints; ``.done`` marks a finished training.

Layout under OUT_DIR::

    encoder.pt tokenizer.pt        the adapted model (official BEATs format)
    report.md report.json          drift, codebook, probes, data, timings (``adapt.report``)
    adapt.log run.json timings.json
    data/audio/{new,prior}/        16 kHz mono FLAC (``adapt.scan``)
    data/{new,prior}/              Kaldi dirs of every usable clip
    data/prior_train/              replay candidates (and tokenizer-distillation audio)
    data/prior_heldout/            held-out prior clips: drift audio, in no training or replay list
    base/encoder.pt tokenizer.pt   the base model (a fine-tuned classifier head stripped)
    replay/                        TRSS replay list and report (sonar with prior audio)
    lists/train/{train,valid}/     training lists (new + replay, is_replay flags)
    exp/<method>/                  the ESPnet experiment (train.log, checkpoints, .done)
    exp/tokenizer/                 tokenizer distillation, when no tokenizer was given
    eval/                          drift.json, random-init reference, probe results

``run.json`` records what the adaptation was run on (base checkpoint, audio, method,
config, training arguments); a later run on the same OUT_DIR with other inputs stops
with an error instead of reusing a model trained on something else.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

log = logging.getLogger("espnet2_sonar.adapt")

from espnet2_sonar.adapt.common import (  # noqa: F401 (re-exported: the pipeline's public names)
    REPO, CONF_DIR, METHODS, _ARCH_KEYS, NO_PRIOR_NOTE, NO_PRIOR_NOTE_DCP,
    AdaptError, AdaptOptions, Layout, _now, _sha256, write_json,
    _copy_atomic, _fresh_tmp_dir, _replace_dir, _quiet_stdout, _lock, _Step,
    StepTimer, BaseModel, options_dict,
)

def detect_size(cfg: dict) -> tuple[str, bool]:
    """Config set (tiny/small/base) of a BEATs cfg: the named architecture it matches, else
    the closest by width (``exact`` False)."""
    from espnet2_sonar.beats.config import ARCHITECTURES, BeatsConfig

    default = BeatsConfig()
    have = {k: cfg.get(k, getattr(default, k)) for k in _ARCH_KEYS}
    for name, arch in ARCHITECTURES.items():
        if all(have[k] == arch[k] for k in _ARCH_KEYS):
            return name, True
    dim = int(have["encoder_embed_dim"])
    return ("base" if dim >= 768 else "small" if dim >= 384 else "tiny"), False


def _load_checkpoint(path: Path, what: str) -> dict:
    import torch

    if not path.exists():
        raise AdaptError(f"{what} {path}: no such file")
    if path.is_dir():
        raise AdaptError(f"{what} {path}: is a folder; give the checkpoint file (e.g. {path}/encoder.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means "not a checkpoint we can read"
        raise AdaptError(f"{what} {path}: not a readable PyTorch checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or "cfg" not in ckpt or "model" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise AdaptError(f"{what} {path}: not an official BEATs checkpoint (expected a dict with 'cfg' and "
                         f"'model' as microsoft/unilm BEATs writes; found {keys})")
    return ckpt


def prepare_base(opts: AdaptOptions, lay: Layout) -> BaseModel:
    """Check the base checkpoint (any format ``beats.formats`` reads, a file or Hugging Face
    spec) and write it to OUT_DIR/base/encoder.pt in the canonical official format (a
    fine-tuned classifier head, ``predictor.*``, is dropped: the encoder is what gets adapted)."""
    from espnet2_sonar.beats.formats import canonical_encoder_checkpoint, detect_format, write_checkpoint
    from espnet2_sonar.beats.interop import CheckpointMismatchError, encoder_from_official, official_checkpoint
    from espnet2_sonar.utils.hub import resolve_checkpoint_path

    try:
        src = resolve_checkpoint_path(opts.base_ckpt)
    except (FileNotFoundError, ValueError) as e:
        raise AdaptError(f"--base_ckpt {e}") from None
    ckpt = _load_checkpoint(src, "--base_ckpt")
    state = ckpt["model"]
    if isinstance(state, dict) and any(k.startswith("quantize.") for k in state):
        raise AdaptError(f"--base_ckpt {src}: this is a BEATs tokenizer checkpoint, not an encoder "
                         "(give it as --base_tokenizer and the encoder as --base_ckpt)")
    try:
        stripped = detect_format(ckpt, str(src)) == "official_finetuned"
        encoder = encoder_from_official(canonical_encoder_checkpoint(ckpt, str(src)), source=str(src))
    except (CheckpointMismatchError, ValueError) as e:
        raise AdaptError(f"--base_ckpt {src}: not a BEATs encoder this toolkit can load: {e}") from None
    cfg = encoder.config.to_dict()
    size, exact = detect_size(cfg)
    if not lay.base_encoder.is_file():
        lay.base.mkdir(parents=True, exist_ok=True)
        if stripped:
            log.info("%s is fine-tuned: its classifier head (predictor.*) is dropped; the encoder is adapted", src)
        write_checkpoint(official_checkpoint(encoder), lay.base_encoder)
    return BaseModel(str(src), lay.base_encoder, lay.base_tokenizer, size, exact, cfg,
                     _sha256(src), stripped_head=stripped)


def tokenizer_choice(opts: AdaptOptions) -> tuple[str, Optional[Path]]:
    """(kind, path): ``given`` (--base_tokenizer), ``beside`` (tokenizer.pt next to the base
    checkpoint) or ``distilled`` (none: one is distilled from the base encoder)."""
    if opts.base_tokenizer:
        from espnet2_sonar.utils.hub import resolve_checkpoint_path

        return "given", resolve_checkpoint_path(opts.base_tokenizer)
    beside = Path(opts.base_ckpt).parent / "tokenizer.pt"
    if beside.is_file() and beside.resolve() != Path(opts.base_ckpt).resolve():
        return "beside", beside
    return "distilled", None


def _check_tokenizer(path: Path, what: str):
    """The tokenizer at ``path`` (any format ``tokenizer.formats`` reads), or ``AdaptError``."""
    from espnet2_sonar.tokenizer.formats import load_beats_tokenizer

    _load_checkpoint(path, what)
    try:
        return load_beats_tokenizer(path)
    except Exception as e:  # noqa: BLE001 -- mismatch errors of every kind name the file
        raise AdaptError(f"{what} {path}: not a BEATs tokenizer checkpoint this toolkit can load: {e}") from None


# ---------------------------------------------------------------- configs

def choose_config(opts: AdaptOptions, base: BaseModel) -> Path:
    if opts.config:
        config = Path(opts.config)
        if not config.is_file():
            raise AdaptError(f"--config {config}: no such file")
        return config
    config = CONF_DIR / base.size / f"train_{opts.method}.yaml"
    if not config.is_file():
        raise AdaptError(f"{config}: default config not found (is this a source checkout?); give --config YAML")
    how = "matches" if base.size_exact else "is closest by width to"
    log.info("config: %s (the base checkpoint %s the BEATs-%s architecture)", config, how, base.size)
    if base.size == "base" and opts.ngpu == 0:
        log.warning("%s is sized for GPUs (BEATs-base, batch 64); on the CPU (--ngpu 0) training is very slow", config)
    return config


def _tokenizer_config(opts: AdaptOptions, base: BaseModel) -> Path:
    config = Path(opts.tokenizer_config) if opts.tokenizer_config else CONF_DIR / base.size / "tokenizer.yaml"
    if not config.is_file():
        raise AdaptError(f"{config}: tokenizer config not found; give --tokenizer_config YAML")
    return config


# ---------------------------------------------------------------- run signature

def check_signature(lay: Layout, signature: dict) -> None:
    """Stop when OUT_DIR was adapted with other inputs; record them on the first run."""
    if lay.run_json.is_file():
        try:
            old = json.loads(lay.run_json.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old is not None:
            changed = sorted(k for k in set(old) | set(signature) if old.get(k) != signature.get(k))
            if changed:
                raise AdaptError(
                    f"{lay.out} holds an adaptation run with other inputs ({', '.join(changed)} differ from "
                    f"{lay.run_json}); use another --out_dir, or delete everything in {lay.out} except data/ "
                    "(converted audio is reused) to start over")
            return
    write_json(lay.run_json, signature)


# ---------------------------------------------------------------- lists, replay, training, export

def make_lists(pool_dir: Path, out: Path, valid_share: float, seed: int, replay_scp: Optional[Path] = None) -> bool:
    """``make_train_lists`` into ``out`` (atomically); False when the lists exist."""
    from espnet2_sonar.bin import make_train_lists

    if (out / "train" / "wav.scp").is_file() and (out / "valid" / "wav.scp").is_file():
        return False
    tmp = _fresh_tmp_dir(out)
    argv = ["--pool_dir", str(pool_dir), "--out_dir", str(tmp), "--valid_share", str(valid_share), "--seed", str(seed)]
    if replay_scp is not None:
        argv += ["--replay_scp", str(replay_scp)]
    with _quiet_stdout() as said:
        rc = make_train_lists.main(argv)
    if rc != 0:
        raise AdaptError(f"make_train_lists failed for {pool_dir}")
    log.info("%s", said.getvalue().strip().replace(str(tmp), str(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    _replace_dir(tmp, out)
    return True


def run_trss(opts: AdaptOptions, lay: Layout, base: BaseModel) -> bool:
    """Task-relevant stratified replay sampling: candidates are the prior pool's training
    part (``data/prior_train``), relevance from the whole new pool. False when done before."""
    from espnet2_sonar.bin import sonar_sample

    if (lay.replay / "wav.scp").is_file() and (lay.replay / "report.json").is_file():
        return False
    tmp = _fresh_tmp_dir(lay.replay)
    argv = ["--prior_dir", str(lay.prior_train), "--new_dir", str(lay.new), "--ckpt", str(base.encoder),
            "--out_dir", str(tmp), "--nj", str(opts.nj), "--seed", str(opts.seed),
            "--cache_dir", str(lay.cache / "emb"), *shlex.split(opts.sample_args)]
    if not opts.progress:
        argv.append("--no_progress")
    try:
        args = sonar_sample.get_parser().parse_args(argv)
    except SystemExit:
        raise AdaptError(f"bad --sample_args {opts.sample_args!r} "
                         "(options of espnet2_sonar.bin.sonar_sample)") from None
    sonar_sample.run(args)
    _replace_dir(tmp, lay.replay)
    return True


def _subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(REPO)
    return env


def run_espnet(module: str, out: Path, argv: List[str]) -> bool:
    """``python -m espnet2_sonar.bin.<module> ARGV --output_dir OUT --resume true`` in a
    subprocess, logging to OUT/train.log (appended: an interrupted attempt's log stays);
    ``OUT/.done`` marks success. False when it finished before."""
    done = out / ".done"
    if done.is_file():
        return False
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", f"espnet2_sonar.bin.{module}", *argv, "--output_dir", str(out), "--resume", "true"]
    logfile = out / "train.log"
    resuming = (out / "checkpoint.pth").is_file()
    log.info("%s %s (log: %s)", "resuming" if resuming else "training", out, logfile)
    with open(logfile, "a") as f:
        f.write(f"# {shlex.join(cmd)}\n# Started at {_now()}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_subprocess_env(), cwd=str(REPO))
        f.write(f"# Ended (code {proc.returncode}) at {_now()}\n")
    if proc.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
        raise AdaptError(f"training {out} failed (exit code {proc.returncode}); see {logfile}; its end:\n{tail}")
    done.touch()
    return True


def export_experiment(exp: Path, targets: Dict[str, Path]) -> None:
    """``sonar_export`` of ``exp`` into a temp dir, then each written file renamed to
    ``targets[name]`` (``encoder`` last: its presence marks a finished export)."""
    from espnet2_sonar.bin.sonar_export import export

    tmp = _fresh_tmp_dir(exp.parent / f"{exp.name}-export")
    written = export(exp, tmp)
    for name in sorted(targets, key=lambda n: n == "encoder"):
        if name not in written:
            raise AdaptError(f"{exp}: export wrote no {name}")
        targets[name].parent.mkdir(parents=True, exist_ok=True)
        os.replace(written[name], targets[name])
    shutil.rmtree(tmp, ignore_errors=True)


def _exported(lay: Layout) -> bool:
    done = lay.exp / ".done"
    return (lay.encoder.is_file() and lay.tokenizer.is_file() and done.is_file()
            and lay.encoder.stat().st_mtime >= done.stat().st_mtime)


# ---------------------------------------------------------------- the whole thing

def _check_options(opts: AdaptOptions) -> AdaptOptions:
    if opts.method not in METHODS:
        raise AdaptError(f"--method must be one of {METHODS}, got {opts.method!r}")
    out = Path(opts.out_dir).absolute()
    if any(c.isspace() or c == "," for c in str(out)):
        raise AdaptError(f"--out_dir {out}: must not contain whitespace or commas (the Kaldi-style lists ESPnet "
                         "reads are separated by them); choose another path")
    if not 0.0 < opts.heldout_share < 1.0 or not 0.0 < opts.valid_share < 1.0:
        raise AdaptError("--heldout_share and --valid_share must be in (0, 1)")
    new = Path(opts.new_audio)
    if opts.prior_audio is not None and Path(opts.prior_audio).resolve() == new.resolve():
        raise AdaptError(f"--prior_audio and --new_audio are the same folder ({new}); the prior pool is audio of "
                         "the old domain (what the base model was trained on), the new folder what to adapt to")
    for name in ("base_tokenizer", "config", "tokenizer_config", "probe_tasks"):
        value = getattr(opts, name)
        if value is not None and not Path(value).exists():
            raise AdaptError(f"--{name} {value}: no such {'folder' if name == 'probe_tasks' else 'file'}")
    try:
        shlex.split(opts.train_args)
        shlex.split(opts.sample_args)
    except ValueError as e:
        raise AdaptError(f"cannot parse --train_args / --sample_args: {e}") from None
    opts.out_dir = out
    return opts


def _scan(opts: AdaptOptions, lay: Layout, name: str, folder: Path, others: List[Optional[Path]]):
    from espnet2_sonar.adapt.scan import NoAudioError, prepare_pool

    exclude = [lay.out] + [Path(o) for o in others if o is not None]
    try:
        return prepare_pool(name, folder, lay.data, nj=opts.nj, segment_s=opts.segment_seconds,
                            max_recording_s=opts.max_recording_seconds, min_s=opts.min_seconds,
                            skip_bad=opts.skip_bad_audio, exclude=exclude, progress=opts.progress, write_dir=False)
    except (FileNotFoundError, NotADirectoryError, NoAudioError) as e:
        raise AdaptError(f"--{name}_audio: {e}") from None


def adapt(opts: AdaptOptions) -> dict:
    """Run every step (see the module doc); returns the report dict (also in report.json)."""
    from espnet2_sonar.adapt import report as report_mod
    from espnet2_sonar.adapt.scan import split_heldout, utterance_digest, write_pool
    from espnet2_sonar.beats.formats import write_checkpoint
    from espnet2_sonar.tokenizer.interop import official_tokenizer_checkpoint
    from espnet2_sonar.data.kaldi_dir import write_kaldi_dir

    started, t0 = _now(), time.time()
    opts = _check_options(opts)
    lay = Layout(opts.out_dir, opts.method)
    with _lock(lay.out):
        timer = StepTimer(lay.timings, opts.command)
        log.info("command: %s", opts.command or "(python API)")
        with timer.step("base checkpoint"):
            base = prepare_base(opts, lay)
        with timer.step("scan new audio"):
            new = _scan(opts, lay, "new", Path(opts.new_audio), [opts.prior_audio])
        prior, held = None, None
        if opts.prior_audio is not None:
            with timer.step("scan prior audio"):
                prior = _scan(opts, lay, "prior", Path(opts.prior_audio), [opts.new_audio])
                try:
                    held = split_heldout(prior, opts.heldout_share)
                except ValueError as e:
                    raise AdaptError(f"--prior_audio: {e}") from None
        else:
            log.warning(NO_PRIOR_NOTE if opts.method == "sonar" else NO_PRIOR_NOTE_DCP)
        config = choose_config(opts, base)
        tok_kind, tok_path = tokenizer_choice(opts)
        signature = {
            "base_sha256": base.sha256, "method": opts.method,
            "config_sha256": _sha256(config), "tokenizer": tok_kind,
            "tokenizer_sha256": _sha256(tok_path) if tok_path is not None and tok_path.is_file() else None,
            "new_clips": utterance_digest(new.utts),
            "prior_clips": None if prior is None else utterance_digest(prior.utts),
            "heldout_share": opts.heldout_share, "valid_share": opts.valid_share, "seed": opts.seed,
            "train_args": opts.train_args, "sample_args": opts.sample_args if opts.method == "sonar" else None,
        }
        check_signature(lay, signature)  # before anything derived from the audio is (re)written
        write_pool(new)
        split = None
        if prior is not None:
            write_pool(prior)
            write_kaldi_dir(lay.prior_train, held[0], labelled=False)
            write_kaldi_dir(lay.prior_heldout, held[1], labelled=False)
            split = (len(held[0]), len(held[1]))
            log.info("prior pool: %d clips for replay, %d held out for drift (never replayed or trained on)", *split)

        with timer.step("tokenizer") as step:
            base.tokenizer_kind = tok_kind
            distil_audio = lay.prior_train if prior is not None else lay.new
            distilled = f"{lay.tokenizer_exp} (distilled on {distil_audio})"
            if lay.base_tokenizer.is_file():
                step.skip("done before")
                base.tokenizer_source = str(tok_path) if tok_path else distilled
            elif tok_path is not None:
                tokenizer = _check_tokenizer(tok_path, "--base_tokenizer" if tok_kind == "given" else "tokenizer")
                log.info("tokenizer: %s%s", tok_path,
                         " (found next to the base checkpoint)" if tok_kind == "beside" else "")
                write_checkpoint(official_tokenizer_checkpoint(tokenizer), lay.base_tokenizer)  # canonical format
                base.tokenizer_source = str(tok_path)
            else:
                log.warning("no --base_tokenizer and no tokenizer.pt next to %s: distilling a tokenizer from the "
                            "base encoder on %s (%s)", opts.base_ckpt,
                            "the prior pool" if prior is not None else "the new audio", distil_audio)
                make_lists(distil_audio, lay.tokenizer_lists, opts.valid_share, opts.seed)
                tl = lay.tokenizer_lists
                run_espnet("tokenizer_train", lay.tokenizer_exp, [
                    "--config", str(_tokenizer_config(opts, base)), "--ngpu", str(opts.ngpu),
                    *_data_args(tl), "--tokenizer_conf", f"teacher={lay.base_encoder}",
                    *shlex.split(opts.train_args)])
                export_experiment(lay.tokenizer_exp, {"tokenizer": lay.base_tokenizer})
                base.tokenizer_source = distilled

        replay_scp = None
        if opts.method == "sonar" and prior is not None:
            with timer.step("replay sampling (TRSS)") as step:
                if not run_trss(opts, lay, base):
                    step.skip("done before")
            replay_scp = lay.replay / "wav.scp"
        with timer.step("training lists") as step:
            if not make_lists(lay.new, lay.lists, opts.valid_share, opts.seed, replay_scp):
                step.skip("done before")

        with timer.step(f"training ({opts.method})") as step:
            argv = ["--config", str(config), "--ngpu", str(opts.ngpu), *_data_args(lay.lists),
                    "--encoder_conf", f"init={lay.base_encoder}", "--tokenizer_conf", f"init={lay.base_tokenizer}",
                    "--seed", str(opts.seed), "--model_conf", f"seed={opts.seed}", *shlex.split(opts.train_args)]
            if not run_espnet("sonar_train", lay.exp, argv):
                step.skip("done before")
        with timer.step("export") as step:
            if _exported(lay):
                step.skip("done before")
            else:
                export_experiment(lay.exp, {"encoder": lay.encoder, "tokenizer": lay.tokenizer,
                                            "model": lay.exp / "model.pth", "packed": lay.exp / "packed.zip"})
                _verify_export(lay)
        ctx = report_mod.Context(opts=opts, lay=lay, base=base, new=new, prior=prior, split=split, config=config,
                                 started=started, timer=timer, t0=t0)
        with timer.step("report"):
            result = report_mod.write_report(ctx)
        log.info("adapted encoder: %s, tokenizer: %s, report: %s", lay.encoder, lay.tokenizer, lay.report_md)
        return result


def _data_args(lists: Path) -> List[str]:
    args = []
    for split in ("train", "valid"):
        d = lists / split
        args += [f"--{split}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sonar_sound_resample_mix",
                 f"--{split}_shape_file", f"{d}/speech_shape"]
        if (d / "is_replay").is_file():
            args += [f"--{split}_data_path_and_name_and_type", f"{d}/is_replay,is_replay,text_int"]
    return args


def _verify_export(lay: Layout) -> None:
    from espnet2_sonar.beats.interop import load_official
    from espnet2_sonar.tokenizer.interop import load_official_tokenizer

    load_official(lay.encoder)
    load_official_tokenizer(lay.tokenizer)

"""``report.md`` / ``report.json`` of one ``espnet2_sonar.bin.adapt`` run.

What a user needs to judge an adapted encoder without labels, and with them if they have any:

* drift: label-free, how far the adapted encoder's features moved from the base model's on
  the same clips (``eval.drift``: per layer, mean patch cosine distance; 0 = unchanged),
  on held-out prior clips (old domain: the forgetting proxy; those clips are in no training
  or replay list) and on held-out new clips (how much it adapted), beside a randomly
  initialised encoder of the same architecture (``bin.random_encoder``) for scale;
* codebook: the tokenizer's size, usage and growth per epoch, from ESPnet's
  ``checkpoint.pth`` (else ``train.log``), read with ``eval.report``'s helpers;
* frozen probes (``--probe_tasks DIR`` with labelled Kaldi dirs ``<task>/{train,test}``):
  base vs adapted accuracy through ``bin.probe_matrix``;
* the data (files used, skipped and why), the replay draw, the command and the timings.

Drift and probe results are cached under ``eval/`` and recomputed when the encoder is newer.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from espnet2_sonar.adapt.common import (NO_PRIOR_NOTE, NO_PRIOR_NOTE_DCP, AdaptOptions, BaseModel, Layout,
                                        StepTimer, _now, _quiet_stdout, options_dict, write_json)
from espnet2_sonar.utils.atomic_write import atomic_path, atomic_write

log = logging.getLogger("espnet2_sonar.adapt")
_TASK_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass
class Context:
    opts: AdaptOptions
    lay: Layout
    base: BaseModel
    new: Any  # scan.PoolScan
    prior: Any  # scan.PoolScan or None
    split: Optional[tuple]
    config: Path
    started: str
    timer: StepTimer
    t0: float


def _table(path: Path) -> Dict[str, str]:
    from espnet2_sonar.sampling.mixing import read_kaldi_map

    return read_kaldi_map(path) if path.is_file() else {}


# ---------------------------------------------------------------- evaluations

RANDOM_SEED_OFFSET = 1000  # the reference's init seed is 1000 + --seed: not the seed-0 init a toy base may be


def random_reference(lay: Layout, seed: int) -> Path:
    """A random-init encoder with the base architecture (init seed ``RANDOM_SEED_OFFSET + seed``;
    written once, atomically)."""
    from espnet2_sonar.bin import random_encoder

    out = lay.eval / "random" / "encoder.pt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp, _quiet_stdout():
            random_encoder.main(["--like", str(lay.base_encoder), "--seed", str(RANDOM_SEED_OFFSET + seed),
                                 "--out", str(tmp)])
    return out


def drift_sets(ctx: Context) -> Dict[str, Path]:
    sets = {}
    if ctx.prior is not None:
        sets["prior_heldout"] = ctx.lay.prior_heldout / "wav.scp"
    sets["new_heldout"] = ctx.lay.lists / "valid" / "wav.scp"
    return sets


def compute_drift(ctx: Context) -> dict:
    """``eval.drift.representation_drift`` of the adapted and the random encoder from the base."""
    from espnet2_sonar.eval.drift import representation_drift

    lay, opts = ctx.lay, ctx.opts
    out = lay.eval / "drift.json"
    sets = {k: str(v) for k, v in drift_sets(ctx).items()}
    random = random_reference(lay, opts.seed)
    ckpts = {"adapted": str(lay.encoder), "random": str(random)}
    if out.is_file() and out.stat().st_mtime >= lay.encoder.stat().st_mtime:
        try:
            cached = json.loads(out.read_text())
            if ({k: v["wav_scp"] for k, v in cached["audio"].items()} == sets and set(cached["drift"]) == set(ckpts)
                    and cached["max_clips"] == opts.drift_max_clips):
                return cached
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            pass
    result = representation_drift(lay.base_encoder, ckpts, sets, opts.drift_max_clips, opts.drift_max_seconds)
    write_json(out, result)
    return result


def codebook_stats(ctx: Context) -> dict:
    """Base and adapted codebook sizes and the per-epoch train means of ``CODEBOOK_KEYS``."""
    from espnet2_sonar.tokenizer.formats import load_beats_tokenizer
    from espnet2_sonar.eval.report import CODEBOOK_KEYS, _stats_from_checkpoint, _stats_from_log

    exp = ctx.lay.exp
    epochs = None
    source = None
    if (exp / "checkpoint.pth").is_file():
        epochs, source = _stats_from_checkpoint(exp / "checkpoint.pth"), exp / "checkpoint.pth"
    if not epochs and (exp / "train.log").is_file():
        epochs, source = _stats_from_log(exp / "train.log"), exp / "train.log"
    per_epoch = {}
    if epochs:
        order = sorted(epochs)
        per_epoch = {"epoch": order}
        for key in CODEBOOK_KEYS:
            if any(epochs[e].get(key) is not None for e in order):
                per_epoch[key] = [float(epochs[e][key]) if epochs[e].get(key) is not None else math.nan for e in order]
    base_codes = load_beats_tokenizer(ctx.lay.base_tokenizer).num_codes
    adapted_codes = load_beats_tokenizer(ctx.lay.tokenizer).num_codes
    return {"base_codes": int(base_codes), "adapted_codes": int(adapted_codes),
            "growth": int(adapted_codes) - int(base_codes), "source": None if source is None else str(source),
            "per_epoch": per_epoch}


def probe_tasks(folder: Path) -> List[str]:
    """Task dirs under ``folder`` with labelled ``train`` and ``test`` Kaldi dirs."""
    tasks = []
    for d in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        ok = all((d / s / f).is_file() for s in ("train", "test") for f in ("wav.scp", "utt2label"))
        if not ok:
            log.warning("probe tasks: %s has no labelled train/ and test/ dirs (wav.scp + utt2label); skipped", d)
        elif not _TASK_NAME.match(d.name):
            log.warning("probe tasks: %s: task names must be [A-Za-z0-9_.+-]; skipped", d)
        else:
            tasks.append(d.name)
    return tasks


def run_probes(ctx: Context) -> Optional[dict]:
    """Frozen probes of base and adapted encoders (``bin.probe_matrix``; results reused)."""
    from espnet2_sonar.bin import probe_matrix

    opts, lay = ctx.opts, ctx.lay
    if opts.probe_tasks is None:
        return None
    tasks = probe_tasks(Path(opts.probe_tasks))
    if not tasks:
        log.warning("--probe_tasks %s: no task dirs with labelled train/ and test/; no probes", opts.probe_tasks)
        return {"tasks": {}, "seeds": [], "dir": str(opts.probe_tasks)}
    out = lay.eval / "probes"
    seeds = [int(s) for s in opts.probe_seeds.split()]
    # a result older than the adapted encoder was probed on another one: probe again
    for stale in (out / "adapted").glob("*/seed*.json") if (out / "adapted").is_dir() else []:
        if stale.stat().st_mtime < lay.encoder.stat().st_mtime:
            stale.unlink()
    probe_matrix.main(["--ckpts", f"base={lay.base_encoder} adapted={lay.encoder}", "--task_dir", str(opts.probe_tasks),
                       "--tasks", " ".join(tasks), "--seeds", " ".join(map(str, seeds)), "--out_dir", str(out),
                       "--max_per_class", str(opts.probe_max_per_class)])
    result = {}
    for task in tasks:
        row = {}
        for name in ("base", "adapted"):
            accs = [json.loads((out / name / task / f"seed{s}.json").read_text())["accuracy"] for s in seeds]
            row[name] = sum(accs) / len(accs)
            row[f"{name}_per_seed"] = accs
        row["delta"] = row["adapted"] - row["base"]
        result[task] = row
    return {"tasks": result, "seeds": seeds, "dir": str(opts.probe_tasks), "max_per_class": opts.probe_max_per_class}


def replay_summary(ctx: Context) -> Optional[dict]:
    path = ctx.lay.replay / "report.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    return {"candidates": r.get("num_prior"), "new_clips": r.get("num_new"), "strata": r.get("num_strata"),
            "budget": r.get("budget"), "sampled": r.get("total_sampled"), "rho": r.get("config", {}).get("rho"),
            "report": str(path)}


def training_summary(ctx: Context) -> dict:
    lists = ctx.lay.lists
    flags = _table(lists / "train" / "is_replay")
    return {"exp_dir": str(ctx.lay.exp), "train_log": str(ctx.lay.exp / "train.log"),
            "train_items": len(flags), "replay_items": sum(v == "1" for v in flags.values()),
            "new_items": sum(v == "0" for v in flags.values()), "valid_items": len(_table(lists / "valid" / "wav.scp")),
            "train_args": ctx.opts.train_args}


# ---------------------------------------------------------------- report

def build_report(ctx: Context) -> dict:
    opts, lay = ctx.opts, ctx.lay
    note = None
    if ctx.prior is None:
        note = NO_PRIOR_NOTE if opts.method == "sonar" else NO_PRIOR_NOTE_DCP
    prior_info = {"given": ctx.prior is not None, "note": note}
    if ctx.split is not None:
        prior_info.update({"replay_candidates": ctx.split[0], "heldout_clips": ctx.split[1],
                           "heldout_dir": str(lay.prior_heldout), "candidates_dir": str(lay.prior_train)})
    return {
        "command": opts.command,
        "started": ctx.started,
        "out_dir": str(lay.out),
        "outputs": {"encoder": str(lay.encoder), "tokenizer": str(lay.tokenizer), "report_md": str(lay.report_md),
                    "train_log": str(lay.exp / "train.log"), "model": str(lay.exp / "model.pth")},
        "method": opts.method,
        "config": str(ctx.config),
        "base": {"checkpoint": ctx.base.source, "size": ctx.base.size, "size_exact": ctx.base.size_exact,
                 "classifier_head_stripped": ctx.base.stripped_head,
                 "tokenizer": {"kind": ctx.base.tokenizer_kind, "source": ctx.base.tokenizer_source}},
        "prior": prior_info,
        "data": {"new": ctx.new.summary(), "prior": None if ctx.prior is None else ctx.prior.summary()},
        "replay": replay_summary(ctx),
        "training": training_summary(ctx),
        "drift": compute_drift(ctx),
        "codebook": codebook_stats(ctx),
        "probes": run_probes(ctx),
        "options": options_dict(opts),
    }


def _fmt(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_markdown(r: dict) -> str:
    lines = ["# BEATs adaptation report", ""]
    lines += [f"`{r['base']['checkpoint']}` adapted to `{r['data']['new']['folder']}` with **{r['method']}** "
              f"(config `{r['config']}`); finished {r['finished']}, {r['elapsed_s']:.0f} s this run.", "",
              "```", r["command"] or "(python API)", "```", ""]
    lines += ["## Outputs", "",
              f"- encoder (official BEATs format): `{r['outputs']['encoder']}`",
              f"- tokenizer (official BEATs format): `{r['outputs']['tokenizer']}`",
              f"- ESPnet experiment (train.log, checkpoints, packed model): `{r['training']['exp_dir']}`", ""]
    b = r["base"]
    tok = {"given": "given (--base_tokenizer)", "beside": "found next to the base checkpoint",
           "distilled": "distilled from the base encoder"}.get(b["tokenizer"]["kind"], b["tokenizer"]["kind"])
    lines += ["## Base model", "",
              f"- checkpoint: `{b['checkpoint']}` "
              f"({'BEATs-' + b['size'] if b['size_exact'] else 'custom architecture; config set ' + b['size']})"
              + (" ; its fine-tuned classifier head was dropped" if b["classifier_head_stripped"] else ""),
              f"- tokenizer: {tok} (`{b['tokenizer']['source']}`)", ""]

    lines += ["## Data", "", "| pool | folder | audio files | recordings used | clips | minutes | unreadable (skipped) "
              "| pieces dropped | capped recordings |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ("new", "prior"):
        d = r["data"][name]
        if d is None:
            continue
        lines.append(f"| {name} | `{d['folder']}` | {d['audio_files']} | {d['recordings_used']} | {d['utterances']} | "
                     f"{d['minutes']:.1f} | {len(d['unreadable_skipped'])} | {len(d['pieces_dropped'])} | "
                     f"{len(d['capped_recordings'])} |")
    lines.append("")
    for name in ("new", "prior"):
        d = r["data"][name]
        for item in (d or {}).get("unreadable_skipped", []):
            lines.append(f"- skipped ({name}): `{item['path']}`: {item['reason']}")
    p = r["prior"]
    if p["given"]:
        lines += ["", f"Prior pool: {p['replay_candidates']} clips are replay candidates; {p['heldout_clips']} clips "
                  f"(whole recordings, chosen by a hash of their id) are held out for drift and are in no training or "
                  f"replay list (`{p['heldout_dir']}`).", ""]
    else:
        lines += ["", f"> **No prior audio.** {p['note']}", ""]

    t = r["training"]
    lines += ["## Training", ""]
    rp = r["replay"]
    if rp:
        lines.append(f"Replay (task-relevant stratified sampling): {rp['sampled']} of {rp['candidates']} candidate "
                     f"prior clips over {rp['strata']} strata (budget {rp['budget']} = rho {rp['rho']} x "
                     f"{rp['new_clips']} new clips).")
    lines += [f"Training list: {t['new_items']} new + {t['replay_items']} replay items; {t['valid_items']} new clip(s) "
              f"held out for validation losses (and new-domain drift). Log: `{t['train_log']}`.", ""]

    lines += ["## Drift from the base model (label-free)", "",
              "Mean over clips and patches of 1 - cos(adapted features, base features) on the same clips: 0 = "
              "the base model's features, a randomly initialised encoder of the same architecture gives the scale. "
              "On held-out prior clips (old domain) it is the forgetting proxy; on held-out new clips it shows how "
              "much the model adapted.", "",
              "| audio | clips | adapted: last layer | adapted: mean over layers | random init: last layer | "
              "random init: mean | adapted / random (last) |", "|---|---:|---:|---:|---:|---:|---:|"]
    dr = r["drift"]
    for s, info in dr["audio"].items():
        a, z = dr["drift"]["adapted"][s], dr["drift"]["random"][s]
        ratio = a["last"] / z["last"] if z["last"] else math.nan
        lines.append(f"| {s} | {info['clips']} | {_fmt(a['last'])} | {_fmt(a['mean'])} | {_fmt(z['last'])} | "
                     f"{_fmt(z['mean'])} | {_fmt(ratio, 3)} |")
    lines.append("")

    cb = r["codebook"]
    lines += ["## Codebook", "", f"Tokenizer codebook: {cb['base_codes']} codes in the base tokenizer, "
              f"{cb['adapted_codes']} after adaptation (growth {cb['growth']:+d}).", ""]
    pe = cb["per_epoch"]
    keys = [k for k in pe if k != "epoch"]
    if keys:
        lines += ["Per epoch (training means; source `" + str(cb["source"]) + "`):", "",
                  "| epoch | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
        for i, e in enumerate(pe["epoch"]):
            lines.append(f"| {e} | " + " | ".join(_fmt(pe[k][i], 2) for k in keys) + " |")
    else:
        lines.append("No per-epoch codebook statistics were logged (the frozen DCP tokenizer logs none).")
    lines.append("")

    pr = r["probes"]
    if pr is not None:
        lines += ["## Frozen probes", ""]
        if pr["tasks"]:
            lines += [f"Linear probes on frozen features (layer-weighted), tasks under `{pr['dir']}`, mean over probe "
                      f"seeds {pr['seeds']} (at most {pr['max_per_class']} clips per class and split).", "",
                      "| task | base | adapted | change |", "|---|---:|---:|---:|"]
            for task, row in pr["tasks"].items():
                lines.append(f"| {task} | {row['base']:.4f} | {row['adapted']:.4f} | {row['delta']:+.4f} |")
        else:
            lines.append(f"No labelled task dirs (`<task>/train`, `<task>/test`) under `{pr['dir']}`.")
        lines.append("")

    lines += ["## Timings", "", "| step | this run (s) | status | last run that did the work (s) |",
              "|---|---:|---|---:|"]
    latest = r["timings"]["latest"]
    for step, info in r["timings"]["this_run"].items():
        last = latest.get(step, {})
        lines.append(f"| {step} | {info['seconds']:.1f} | {info['status']} | "
                     f"{_fmt(last.get('seconds'), 1)} ({last.get('finished', '-')}) |")
    lines.append("")
    return "\n".join(lines)


def write_report(ctx: Context) -> dict:
    """Build, write (atomically) and return the report."""
    report = build_report(ctx)
    report["finished"] = _now()
    report["elapsed_s"] = round(time.time() - ctx.t0, 2)
    report["timings"] = {"this_run": dict(ctx.timer.run), "latest": dict(ctx.timer.saved)}
    write_json(ctx.lay.report_json, report)
    atomic_write(ctx.lay.report_md, render_markdown(report))
    return report

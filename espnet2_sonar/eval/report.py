"""Continual-learning report: accuracy matrices, adaptation gain and forgetting.

Inputs are the probe results of recipe stage 6, one JSON per probe at
``EVAL_DIR/<name>/<task>/seed<N>.json`` (N: the probe seed) with ``name`` = ``base`` (stage 0,
shared by every method) or ``[tseed<T>/]<method>/<domain>`` (stage k = position of the domain
in ``domains``, from 1; ``tseed<T>/`` names the training run of training seed T when the
report has ``train_seeds``).

Replicates. With ``train_seeds`` every continual method was trained once per training seed
(masks, replay draw, head init, data order): a replicate is one training run, its numbers
are first computed per probe seed and then averaged over the probe seeds (nested), and means
and stds are over training runs. Without ``train_seeds`` (one training run), the probe seeds
are the replicates, as in reports before training seeds existed; the report then says that
its error bars cover probe seeds only.

For every method and replicate s (DESIGN.md, "Evaluation protocol"):

- ``A_s[i][j]`` = accuracy on task j after stage i (stages 0..K);
- adaptation gain on the task of domain k: ``A_s[k][task] - A_s[0][task]``;
- forgetting on an old task (one whose domain is not adapted to):
  ``(A_s[0][old] - A_s[K][old]) / A_s[0][old]``;
- backward forgetting of domain k's task, from the stage that learned it to the last:
  ``(A_s[k][task] - A_s[K][task]) / A_s[k][task]``, for k < K.

Per-replicate numbers come first; means and sample standard deviations (ddof=1, NaN for a
single replicate, shown as "n=1") are taken over the replicates that have the number. A
per-replicate average over several tasks is NaN when any of its tasks is missing, so
replicates stay comparable.
``build_results`` returns a JSON-ready dict (NaN written as ``null``); see its docstring.
"""

import json
import logging
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_sonar.eval.metrics import adaptation_gain, relative_forgetting
from espnet2_sonar.eval.report_spec import (  # noqa: F401 - ReportSpec: re-exported
    ProbeResults,
    ProbeScore,
    ReportSpec,
)
from espnet2_sonar.eval.verdict import (FLOOR, drift_verdict, new_task_floor, old_task_floor, task_chance, task_floors,
                                        verdict)

CODEBOOK_KEYS = ("codebook_size", "code_perplexity", "dead_codes", "codes_added", "protected_codes")

_SEED_FILE = re.compile(r"^seed(-?\d+)\.json$")


def load_probe_results(eval_dir, spec: ReportSpec) -> ProbeResults:
    """Read ``eval_dir/<name>/<task>/seed<N>.json`` for every stage of every method.

    Absent files are listed in ``missing``; a file that exists but is not a probe result
    raises a ValueError naming it.
    """
    eval_dir = Path(eval_dir)
    names = list(dict.fromkeys(["base"] + [n for m in spec.methods for n in spec.all_stage_names(m)]))
    found: Dict[Tuple[str, str, int], Path] = {}
    for name in names:
        for task in spec.tasks:
            folder = eval_dir / name / task
            for path in sorted(folder.glob("seed*.json")) if folder.is_dir() else []:
                match = _SEED_FILE.match(path.name)
                if match:
                    found[(name, task, int(match.group(1)))] = path
    seeds = sorted(spec.seeds if spec.seeds is not None else {k[2] for k in found})
    if not seeds:
        raise FileNotFoundError(
            f"no probe results under {eval_dir} (expected <name>/<task>/seed<N>.json, e.g. "
            f"{eval_dir / 'base' / spec.tasks[0] / 'seed0.json'}); run recipe stage 6 first"
        )
    scores, missing = {}, []
    for name in names:
        for task in spec.tasks:
            for seed in seeds:
                path = found.get((name, task, seed))
                if path is None:
                    missing.append(f"{name}/{task}/seed{seed}.json")
                else:
                    scores[(name, task, seed)] = _read_probe(path, seed)
    return ProbeResults(scores=scores, seeds=seeds, missing=missing)


def _read_probe(path: Path, seed: int) -> ProbeScore:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable probe result JSON ({e})") from e
    if not isinstance(data, dict) or "accuracy" not in data:
        raise ValueError(f"{path}: probe result without an 'accuracy' field")
    if "seed" in data and int(data["seed"]) != seed:
        raise ValueError(f"{path}: file name says seed {seed} but the result says seed {data['seed']}")
    chance = math.nan
    counts = [c.get("n_test") for c in (data.get("per_class") or {}).values() if isinstance(c, dict)]
    if counts and all(isinstance(n, int) for n in counts) and sum(counts) > 0:
        chance = max(counts) / sum(counts)
    precision = (data.get("precision") or {}).get("precision", "fp32")
    return ProbeScore(float(data["accuracy"]), float(data.get("macro_f1", math.nan)), chance, precision)


def reference_results(eval_dir, spec: ReportSpec, names: Sequence[str], seeds: Sequence[int]) -> dict:
    """Accuracy per task of encoders outside the stage matrix, such as the random-init floor
    (``random``) or DECAR's prior-pool stage; absent names are skipped.

    With ``spec.train_seeds``, a reference probed once per training seed (``tseed<T>/<name>``,
    e.g. a random init drawn with seed T) has its replicates over those runs, probe seeds nested
    (``"replicates": "training seeds"``); otherwise mean/std are over probe seeds.

    Returns ``{name: {task: seed_stats + per_seed + replicates}}``.
    """
    eval_dir = Path(eval_dir)

    def probe_values(name: str, task: str) -> List[float]:
        values = []
        for seed in seeds:
            path = eval_dir / name / task / f"seed{seed}.json"
            values.append(_read_probe(path, seed).accuracy if path.exists() else math.nan)
        return values

    out = {}
    for name in names:
        per_run = ([f"{spec.run_prefix(t)}{name}" for t in spec.train_seeds]
                   if spec.train_seeds is not None else [])
        nested = bool(per_run) and all((eval_dir / n).is_dir() for n in per_run)
        per_task = {}
        for task in spec.tasks:
            if nested:
                runs = nested_mean(np.array([probe_values(n, task) for n in per_run])[:, :, None])[:, 0]
                per_task[task] = _entry(runs.tolist(), [str(t) for t in spec.train_seeds], replicates="training seeds")
            else:
                per_task[task] = _entry(probe_values(name, task), seeds, replicates="probe seeds")
        if any(e["n"] for e in per_task.values()):
            out[name] = per_task
    return out


def replicates(spec: ReportSpec, probe_seeds: Sequence[int]) -> List[Tuple[str, Optional[int], List[int]]]:
    """The replicates of the report: ``(label, train_seed, probe_seeds)``; one per training run
    (label = the training seed) with ``train_seeds``, else one per probe seed."""
    if spec.train_seeds is None:
        return [(str(p), None, [p]) for p in probe_seeds]
    return [(str(t), t, list(probe_seeds)) for t in spec.train_seeds]


def score_tensor(probes: ProbeResults, spec: ReportSpec, method: str, metric: str = "accuracy") -> np.ndarray:
    """Per-replicate, per-probe-seed scores of one method: [num_replicates, num_probe_seeds_per_replicate,
    K + 1, num_tasks], NaN where missing (without training seeds the second axis has length 1)."""
    reps = replicates(spec, probes.seeds)
    width = max(len(r[2]) for r in reps)
    out = np.full((len(reps), width, len(spec.domains) + 1, len(spec.tasks)), math.nan)
    for r, (_, train_seed, probe_seeds) in enumerate(reps):
        names = spec.stage_names(method, train_seed)
        for p, seed in enumerate(probe_seeds):
            for i, name in enumerate(names):
                for j, task in enumerate(spec.tasks):
                    score = probes.scores.get((name, task, seed))
                    if score is not None:
                        out[r, p, i, j] = getattr(score, metric)
    return out


def nested_mean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 1 (probe seeds within a replicate) of the finite entries; NaN where none."""
    v = np.asarray(values, dtype=float)
    count = np.isfinite(v).sum(axis=1)
    total = np.where(np.isfinite(v), v, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), math.nan)


def seed_stats(values) -> dict:
    """Mean, sample std (ddof=1) and count over the finite entries of ``values`` [num_seeds]."""
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    return {
        "mean": float(v.mean()) if v.size else math.nan,
        "std": float(v.std(ddof=1)) if v.size >= 2 else math.nan,
        "n": int(v.size),
    }


def _forgetting(before: float, after: float) -> float:
    if not (math.isfinite(before) and math.isfinite(after)) or before <= 0:
        return math.nan
    return relative_forgetting(before, after)


def _entry(per_seed: Sequence[float], seeds: Sequence[int], **extra) -> dict:
    return {**extra, **seed_stats(per_seed), "per_seed": {str(s): float(v) for s, v in zip(seeds, per_seed)}}


def _mean_over_tasks(columns: List[List[float]], num_seeds: int) -> List[float]:
    """Per-seed mean over tasks; NaN for a seed missing any task (or when there are none)."""
    if not columns:
        return [math.nan] * num_seeds
    return [float(np.mean(v)) for v in zip(*columns)]


def method_results(probes: ProbeResults, spec: ReportSpec, method: str) -> dict:
    """Matrices, gains and forgetting of one method (see ``build_results``).

    Gain and forgetting are computed per (replicate, probe seed), then averaged over the probe
    seeds of the replicate: the per-replicate numbers the means, stds and noise tests use.
    """
    reps = replicates(spec, probes.seeds)
    labels = [r[0] for r in reps]
    acc = score_tensor(probes, spec, method, "accuracy")  # [R, P, K + 1, T]
    f1 = score_tensor(probes, spec, method, "macro_f1")
    K, col = len(spec.domains), {t: j for j, t in enumerate(spec.tasks)}

    shared_stage0 = spec.train_seeds is not None and method not in spec.stage0

    def matrix(t: np.ndarray) -> dict:
        per_rep = nested_mean(t)  # [R, K + 1, T]
        cells = [[seed_stats(per_rep[:, i, j]) for j in range(per_rep.shape[2])] for i in range(per_rep.shape[1])]
        if shared_stage0:
            # the shared base model is one model in every run: its spread over runs is zero by
            # construction, so its row is stated over probe seeds (``stage0_replicates``)
            first = next((r for r in range(t.shape[0]) if np.isfinite(t[r, :, 0, :]).any()), 0)
            cells[0] = [seed_stats(t[first, :, 0, j]) for j in range(t.shape[3])]
        out = {key: [[c[key] for c in row] for row in cells] for key in ("mean", "std", "n")}
        out["stage0_replicates"] = "probe seeds" if shared_stage0 else None
        out["per_seed"] = {lab: per_rep[r].tolist() for r, lab in enumerate(labels)}
        out["per_probe"] = {lab: {str(p): t[r, k].tolist() for k, p in enumerate(reps[r][2])}
                            for r, lab in enumerate(labels)}
        if spec.train_seeds is not None and t.shape[1] >= 2:  # probe-seed spread nested in each run
            with np.errstate(invalid="ignore"):
                within = [[float(np.nanmean([np.std(v[np.isfinite(v)], ddof=1) if np.isfinite(v).sum() >= 2
                                             else math.nan for v in t[:, :, i, j]]))
                           if np.isfinite(t[:, :, i, j]).sum() >= 2 else math.nan
                           for j in range(t.shape[3])] for i in range(t.shape[2])]
            out["probe_std"] = within
        return out

    def per_replicate(fn) -> List[float]:
        """fn(r, p) -> number; mean over the probe seeds of each replicate."""
        values = np.array([[fn(r, p) for p in range(acc.shape[1])] for r in range(acc.shape[0])])
        return nested_mean(values).tolist()

    gains, gain_cols = {}, []
    for k, domain in enumerate(spec.domains, start=1):
        for task in spec.new_tasks(domain):
            j = col[task]
            per_rep = per_replicate(lambda r, p: adaptation_gain(acc[r, p, 0, j], acc[r, p, k, j]))
            gains[task] = _entry(per_rep, labels, domain=domain, stage=k)
            gain_cols.append(per_rep)
    forgetting, forget_cols = {}, []
    for task in spec.old_tasks:
        j = col[task]
        per_rep = per_replicate(lambda r, p: _forgetting(acc[r, p, 0, j], acc[r, p, K, j]))
        forgetting[task] = _entry(per_rep, labels, domain=spec.task_domain[task], from_stage=0, to_stage=K)
        forget_cols.append(per_rep)
    backward, backward_cols = {}, []
    for k, domain in enumerate(spec.domains[:-1], start=1):
        for task in spec.new_tasks(domain):
            j = col[task]
            per_rep = per_replicate(lambda r, p: _forgetting(acc[r, p, k, j], acc[r, p, K, j]))
            backward[task] = _entry(per_rep, labels, domain=domain, from_stage=k, to_stage=K)
            backward_cols.append(per_rep)
    n = len(labels)
    return {
        "stages": [spec.stage0.get(method, "base")] + list(spec.domains),
        "accuracy": matrix(acc),
        "macro_f1": matrix(f1),
        "gain": gains,
        "forgetting_old": forgetting,
        "backward_forgetting": backward,
        "mean_gain": _entry(_mean_over_tasks(gain_cols, n), labels),
        "mean_forgetting_old": _entry(_mean_over_tasks(forget_cols, n), labels),
        "mean_backward_forgetting": _entry(_mean_over_tasks(backward_cols, n), labels),
    }


def build_results(probes: ProbeResults, spec: ReportSpec, codebook: Optional[dict] = None,
                  references: Optional[dict] = None, drift: Optional[dict] = None) -> dict:
    """Everything the report shows, JSON-ready.

    Keys: ``spec`` (methods, domains, tasks, task_domain, old_tasks, seeds); ``methods``:
    per method ``stages``, ``accuracy`` and ``macro_f1`` matrices (``mean``/``std``/``n``
    [K + 1][num_tasks] and ``per_seed``), ``gain`` and ``forgetting_old`` and
    ``backward_forgetting`` per task (mean, std, n, per_seed, stages), and the per-seed-first
    averages ``mean_gain``, ``mean_forgetting_old``, ``mean_backward_forgetting``;
    ``summary`` (per method mean gain and mean forgetting on old tasks); ``verdict``;
    ``codebook`` (per method, per domain, per key: train means per epoch); ``missing``;
    ``references`` (as given, e.g. :func:`reference_results`) and ``old_task_floor`` (base
    vs the ``random`` reference per old task, which the verdict takes into account);
    ``task_floors`` (per task: chance, every reference's accuracy, learnability);
    ``drift`` (as given, :func:`load_drift`) and ``verdict["drift"]`` (:func:`drift_verdict`).
    Accuracies and forgetting are fractions, gains are absolute accuracy differences.
    """
    methods = {m: method_results(probes, spec, m) for m in spec.methods}
    chance = task_chance(probes, spec)
    floor_check = old_task_floor(methods, spec, (references or {}).get(FLOOR), chance)
    new_floor = new_task_floor(methods, spec, (references or {}).get(FLOOR))
    decision = verdict(methods, floor_check=floor_check, new_floor_check=new_floor)
    decision["drift"] = drift_verdict(drift or {})
    return {
        "spec": {
            "methods": list(spec.methods),
            "domains": list(spec.domains),
            "tasks": list(spec.tasks),
            "task_domain": {t: spec.task_domain[t] for t in spec.tasks},
            "old_tasks": spec.old_tasks,
            "seeds": list(probes.seeds),
            "train_seeds": None if spec.train_seeds is None else list(spec.train_seeds),
            "replicates": "training runs" if spec.train_seeds is not None else "probe seeds",
            "n_replicates": len(replicates(spec, probes.seeds)),
            "precision": ",".join(sorted({s.precision for s in probes.scores.values()})),
        },
        "methods": methods,
        "summary": {
            m: {k: {x: r[k][x] for x in ("mean", "std", "n")} for k in ("mean_gain", "mean_forgetting_old")}
            for m, r in methods.items()
        },
        "verdict": decision,
        "old_task_floor": floor_check,
        "new_task_floor": new_floor,
        "task_floors": task_floors(references or {}, chance, list(spec.tasks)),
        "drift": drift or {},
        "references": references or {},
        "codebook": codebook or {},
        "missing": list(probes.missing),
    }


def to_json(results: dict) -> str:
    """JSON text with NaN/inf written as null (strict JSON)."""

    def clean(x):
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(results), indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------- codebook statistics

_LOG_EPOCH = re.compile(r"(\d+)epoch results: (.*)$")
_LOG_VALUE = re.compile(r"(\w+)=([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf))(?=,|\s*$)")


def _stats_from_checkpoint(path: Path) -> Optional[Dict[int, dict]]:
    import torch

    state, error = None, None
    for mmap in (True, False):  # mmap: the model tensors are not read, only the reporter
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception as e:  # noqa: BLE001 -- an unreadable checkpoint only loses the plot
            error = e
    if state is None:
        logging.warning("%s: cannot read the reporter state (%s); trying train.log", path, error)
        return None
    stats = (state.get("reporter") or {}).get("stats") if isinstance(state, dict) else None
    if not stats:
        return None
    return {int(e): d.get("train", {}) for e, d in stats.items()}


def _stats_from_log(path: Path) -> Optional[Dict[int, dict]]:
    out: Dict[int, dict] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG_EPOCH.search(line)
        if not m:
            continue
        train = m.group(2).split("[train]", 1)
        if len(train) == 2:
            part = train[1].split(", [", 1)[0]
            out[int(m.group(1))] = {k: float(v) for k, v in _LOG_VALUE.findall(part)}
    return out or None


def load_codebook_stats(exp_dir, spec: ReportSpec) -> dict:
    """Per-epoch train means of ``CODEBOOK_KEYS`` for every (method, domain) stage dir.

    Read from ESPnet's ``checkpoint.pth`` (key ``reporter``), else parsed from ``train.log``,
    of the first training run (``tseed<T>/`` of ``spec.train_seeds[0]``).
    Returns ``{method: {domain: {key: [value per epoch]}}}`` holding only the keys that
    were logged; methods or stages without any are left out.
    """
    out: dict = {}
    prefix = spec.run_prefix(spec.runs[0])
    for method in spec.methods:
        for domain in spec.domains:
            stage_dir = Path(exp_dir) / f"{prefix}{method}" / domain
            epochs = None
            if (stage_dir / "checkpoint.pth").is_file():
                epochs = _stats_from_checkpoint(stage_dir / "checkpoint.pth")
            if epochs is None and (stage_dir / "train.log").is_file():
                epochs = _stats_from_log(stage_dir / "train.log")
            if not epochs:
                continue
            order = sorted(epochs)
            series = {
                key: [float(epochs[e][key]) if epochs[e].get(key) is not None else math.nan for e in order]
                for key in CODEBOOK_KEYS
                if any(epochs[e].get(key) is not None for e in order)
            }
            if series:
                out.setdefault(method, {})[domain] = series
    return out

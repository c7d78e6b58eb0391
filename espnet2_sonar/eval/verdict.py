"""The SONAR-vs-DCP verdict and the checks that qualify it.

* :func:`verdict`: at most ``FORGETTING_SHARE`` of DCP's mean forgetting on old tasks, and
  at least ``GAIN_SHARE`` of DCP's mean adaptation gain (the gain criterion applies only when
  DCP's gain is positive beyond noise). Each criterion is answered yes, no or "not
  distinguishable" by a noise test over the replicates (training runs; see
  :func:`welch_interval`); the point estimates are kept beside the answers;
* :func:`old_task_floor` / :func:`task_chance`: did the base model learn each old task
  (above the random-init floor by more than seed noise and by ``MEASURABLE_MARGIN``; above
  chance)? Forgetting on a task it never learnt is noise, and the verdict says so;
* :func:`new_task_floor`: the same floor for every new task, for the base (where a gain
  starts) and for each method right after adapting to the task's domain;
* :func:`task_floors`: per task, chance, the log-mel and random-init floors, and whether any
  reference learns it at all (learnability);
* :func:`load_drift` / :func:`drift_verdict`: the label-free comparison from
  ``bin/drift`` (representation drift from the base model on held-out old-domain audio),
  noise-tested the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from espnet2_sonar.eval.report_spec import ProbeResults, ReportSpec

GAIN_SHARE = 0.9
"""The verdict asks SONAR for at least this share of DCP's mean adaptation gain (when DCP gains)."""
FORGETTING_SHARE = 0.2
"""... and to forget at most this share of what DCP forgets on the old tasks."""


def seed_noise(*stds: Optional[float]) -> float:
    """Combined seed spread of two or more means: the sum of their finite stds (None/NaN count 0)."""
    return sum(x for x in stds if x is not None and math.isfinite(x))


def clears(mean: float, std: Optional[float], floor_mean: float, floor_std: Optional[float]) -> bool:
    """``mean`` is above ``floor_mean`` by more than the seed spread of both."""
    return bool(mean - floor_mean > seed_noise(std, floor_std))

def base_accuracy(methods: Dict[str, dict]) -> dict:
    """The ``accuracy`` matrix of a method whose stage 0 is the shared ``base`` model (row 0 is
    the base model's), else of the first method."""
    return next((r for r in methods.values() if r.get("stages", ["base"])[0] == "base"),
                next(iter(methods.values())))["accuracy"]


FLOOR = "random"
"""Reference encoder (``reference_results``) that old tasks' base accuracy must clear."""
MEASURABLE_MARGIN = 0.10
"""An old task is measurable when the base model clears the random-init floor by more than
seed noise and by at least this many accuracy points (DESIGN.md: "by a wide margin")."""


def task_chance(probes: ProbeResults, spec: ReportSpec) -> Dict[str, float]:
    """Majority-class share of each task's test set, as recorded in its probe results (NaN if none)."""
    out = {}
    for task in spec.tasks:
        values = [score.chance for (_, t, _), score in probes.scores.items() if t == task and math.isfinite(score.chance)]
        out[task] = max(values) if values else math.nan
    return out


def old_task_floor(methods: Dict[str, dict], spec: ReportSpec, floor: Optional[dict],
                   chance: Optional[Dict[str, float]] = None) -> Dict[str, dict]:
    """Per old task: does the base model clear the random-init floor by more than seed noise?

    ``learnt`` is True when mean(base) - mean(floor) > std(base) + std(floor), False when
    not, None when the floor was not evaluated; ``wide_margin`` when that difference
    (``margin``) is at least ``MEASURABLE_MARGIN``. Forgetting is only informative on a task the
    base model has learnt: below the floor it measures features no better than random ones.
    ``above_chance`` compares the base accuracy with the majority-class share of the test set
    (None if unknown): a base model below chance has learnt features that do not transfer to
    the test sources, and its forgetting is then a change in a below-chance score.
    """
    out = {}
    if not methods:
        return out
    acc = base_accuracy(methods)
    for task in spec.old_tasks:
        j = spec.tasks.index(task)
        base_mean, base_std = acc["mean"][0][j], acc["std"][0][j]
        entry = {"base": base_mean, "base_std": base_std, "floor": None, "floor_std": None, "learnt": None,
                 "margin": None, "wide_margin": None, "chance": None, "above_chance": None}
        ref = (floor or {}).get(task)
        if ref and ref.get("n"):
            margin = base_mean - ref["mean"]
            entry |= {"floor": ref["mean"], "floor_std": ref["std"],
                      "learnt": clears(base_mean, base_std, ref["mean"], ref["std"]),
                      "margin": margin, "wide_margin": bool(margin >= MEASURABLE_MARGIN)}
        c = (chance or {}).get(task, math.nan)
        if math.isfinite(c):
            entry |= {"chance": c, "above_chance": bool(base_mean > c)}
        out[task] = entry
    return out


def task_floors(references: Dict[str, dict], chance: Dict[str, float], tasks: List[str]) -> Dict[str, dict]:
    """Per task: chance (majority class of the test set), the log-mel-statistics floor, the
    random-init floor, and every other reference encoder; ``learnable`` when some reference
    clears chance by more than its seed std (None when no reference or no chance is known).

    A task no reference learns from its training split cannot tell encoders apart.
    """
    out = {}
    for task in tasks:
        c = chance.get(task, math.nan)
        refs = {name: per_task[task] for name, per_task in references.items()
                if per_task.get(task, {}).get("n")}
        entry = {"chance": c if math.isfinite(c) else None,
                 "references": {n: {"mean": r["mean"], "std": r["std"], "n": r["n"]} for n, r in refs.items()},
                 "learnable": None, "learnt_by": []}
        if refs and math.isfinite(c):
            entry["learnt_by"] = sorted(n for n, r in refs.items() if clears(r["mean"], r["std"], c, 0.0))
            entry["learnable"] = bool(entry["learnt_by"])
        out[task] = entry
    return out


LEVEL = 0.90
"""Two-sided confidence level of the noise tests: a criterion is answered yes or no only when
the whole interval lies on one side (a one-sided test at 5% each way)."""
YES, NO, UNCLEAR = "yes", "no", "not distinguishable"


def _finite(values) -> List[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def replicate_values(stat: Optional[dict]) -> List[float]:
    """The per-replicate values of a ``report._entry`` stat (``per_seed``), else its mean alone."""
    if not stat:
        return []
    if stat.get("per_seed"):
        return _finite(stat["per_seed"].values())
    return _finite([stat.get("mean")])


def _t_quantile(level: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def welch_interval(a: Sequence[float], b: Sequence[float], k: float = 1.0, level: float = LEVEL) -> Optional[dict]:
    """Welch's t confidence interval of ``mean(a) - k * mean(b)`` (independent samples, unequal
    variances; Welch–Satterthwaite degrees of freedom). None with fewer than 2 values on a side.

    Returns ``{"diff", "low", "high", "df", "n": [len(a), len(b)], "level"}``. With zero spread
    on both sides the interval is the point ``diff`` (df = inf).
    """
    a, b = np.asarray(_finite(a)), np.asarray(_finite(b))
    if a.size < 2 or b.size < 2:
        return None
    diff = float(a.mean() - k * b.mean())
    va, vb = a.var(ddof=1) / a.size, k * k * b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "df": math.inf, "n": [int(a.size), int(b.size)], "level": level}
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    q = _t_quantile(level, df)
    return {"diff": diff, "low": diff - q * se, "high": diff + q * se, "df": float(df),
            "n": [int(a.size), int(b.size)], "level": level}


def mean_interval(a: Sequence[float], level: float = LEVEL) -> Optional[dict]:
    """Student's t confidence interval of ``mean(a)`` (None with fewer than 2 values)."""
    a = np.asarray(_finite(a))
    if a.size < 2:
        return None
    m, se = float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))
    q = _t_quantile(level, a.size - 1) if se > 0 else 0.0
    return {"diff": m, "low": m - q * se, "high": m + q * se, "df": float(a.size - 1), "n": [int(a.size)],
            "level": level}


def answer_below(interval: Optional[dict]) -> str:
    """``yes`` when the interval lies below 0, ``no`` when above, else (or without one) not distinguishable."""
    if interval is None:
        return UNCLEAR
    if interval["high"] < 0:
        return YES
    if interval["low"] > 0:
        return NO
    return UNCLEAR


def answer_above(interval: Optional[dict]) -> str:
    """``yes`` when the interval lies above 0, ``no`` when below, else not distinguishable."""
    flipped = None if interval is None else {"high": -interval["low"], "low": -interval["high"]}
    return answer_below(flipped)


NOISE_TEST = ("Welch's t over replicates: the {level:.0f}% confidence interval of the difference; "
              "yes / no when it lies wholly on one side of the criterion, else not distinguishable")


def verdict(methods: Dict[str, dict], share: float = GAIN_SHARE, floor_check: Optional[Dict[str, dict]] = None,
            forgetting_share: float = FORGETTING_SHARE, level: float = LEVEL,
            new_floor_check: Optional[Dict[str, dict]] = None) -> dict:
    """SONAR vs DCP, each criterion noise-tested over the replicates (``per_seed`` of the stats).

    * Forgetting: ``sonar - forgetting_share * dcp`` (per-replicate mean forgetting on old
      tasks); ``forgetting_answer`` yes when its interval is below 0, no when above.
    * Gain: applies only when DCP's mean gain is positive beyond noise (its one-sample interval
      above 0, ``dcp_gain_positive``); then ``sonar - share * dcp``, yes when above 0.
      ``gain_answer`` is ``not applicable`` otherwise.
    * SONAR wins only when the old tasks are measurable (``floor_check``, see
      :func:`old_task_floor`) and both answers are yes.

    ``forgetting_ok`` / ``gain_ok`` keep the point-estimate comparisons (means only).
    ``new_floor_check`` (:func:`new_task_floor`) adds notes on new tasks whose gain starts from
    a base below its random-init floor.
    """
    out = {"gain_share_required": share, "forgetting_share_allowed": forgetting_share,
           "noise_test": NOISE_TEST.format(level=level * 100), "level": level}
    absent = [m for m in ("sonar", "dcp") if m not in methods]
    if absent:
        return out | {"available": False, "reason": f"method(s) {absent} not in the report"}
    sf, df = methods["sonar"]["mean_forgetting_old"], methods["dcp"]["mean_forgetting_old"]
    sg, dg = methods["sonar"]["mean_gain"], methods["dcp"]["mean_gain"]
    s_f, d_f, s_g, d_g = sf["mean"], df["mean"], sg["mean"], dg["mean"]
    out |= {"sonar_forgetting": s_f, "dcp_forgetting": d_f, "sonar_gain": s_g, "dcp_gain": d_g}
    finite = all(v is not None and math.isfinite(v) for v in (s_f, d_f, s_g, d_g))
    if not finite:
        return out | {"available": False, "reason": "forgetting or gain is missing (NaN) for sonar or dcp"}
    unlearnt = sorted(t for t, e in (floor_check or {}).items() if e["learnt"] is False)
    narrow = sorted(t for t, e in (floor_check or {}).items() if e["learnt"] and e.get("wide_margin") is False)
    below_chance = sorted(t for t, e in (floor_check or {}).items() if e.get("above_chance") is False)
    sf_v, df_v, sg_v, dg_v = (replicate_values(x) for x in (sf, df, sg, dg))
    f_int = welch_interval(sf_v, df_v, forgetting_share, level)
    dcp_forgets = answer_above(mean_interval(df_v, level))
    dcp_gain_int = mean_interval(dg_v, level)
    dcp_gain_positive = answer_above(dcp_gain_int)
    g_int = welch_interval(sg_v, dg_v, share, level) if dcp_gain_positive == YES else None
    n_rep = min(len(v) for v in (sf_v, df_v, sg_v, dg_v))
    out |= {
        "available": True,
        "reason": None,
        "replicates": n_rep,
        "forgetting_lower": bool(s_f < d_f),
        "forgetting_ratio": s_f / d_f if d_f > 0 else None,
        "forgetting_ok": bool(d_f > 0 and s_f <= forgetting_share * d_f),
        "forgetting_interval": f_int,
        "forgetting_answer": answer_below(f_int),
        "dcp_forgets": dcp_forgets,
        "gain_ratio": s_g / d_g if d_g > 0 else None,
        "gain_applies": dcp_gain_positive == YES,
        "dcp_gain_positive": dcp_gain_positive,
        "dcp_gain_interval": dcp_gain_int,
        "gain_ok": bool(s_g >= share * d_g) if d_g > 0 else None,
        "gain_interval": g_int,
        "gain_answer": answer_above(g_int) if dcp_gain_positive == YES else "not applicable",
        "measurable": not unlearnt and not narrow,
        "old_tasks_not_learnt": unlearnt,
        "old_tasks_narrow_margin": narrow,
        "old_tasks_below_chance": below_chance,
        "forgetting_gap_within_noise": (answer_below(welch_interval(sf_v, df_v, 1.0, level)) == UNCLEAR
                                        if n_rep >= 2 else None),
    }
    out["sonar_wins"] = bool(out["measurable"] and out["forgetting_answer"] == YES and out["gain_answer"] == YES)
    notes = []
    if n_rep < 2:
        notes.append("one replicate per method: no noise test is possible, so every criterion is "
                     "not distinguishable (run more training seeds, --train_seeds)")
    if dcp_gain_positive != YES:
        notes.append("DCP's mean gain is not positive beyond noise, so the gain criterion does not apply and "
                     "SONAR cannot meet both criteria on this run")
    if dcp_forgets != YES and n_rep >= 2:
        notes.append("DCP's forgetting is not above zero beyond noise, so there is little forgetting to reduce")
    if unlearnt:
        notes.append(f"the base model does not clear the random-init floor on {', '.join(unlearnt)} by more "
                     "than seed noise, so forgetting there is measured on features no better than random ones")
    if narrow:
        notes.append(f"the base model clears the random-init floor on {', '.join(narrow)} by less than "
                     f"{MEASURABLE_MARGIN * 100:.0f} points, too little for forgetting there to be read")
    if below_chance:
        notes.append(f"the base model is below chance (the majority-class share of the test set) on "
                     f"{', '.join(below_chance)}: its features there do not transfer to the test sources, so "
                     "forgetting is a change in a below-chance score; read it with the representation drift")
    below_floor = sorted(t for t, e in (new_floor_check or {}).items() if e.get("base_clears") is False)
    if below_floor:
        notes.append(f"on {', '.join(below_floor)} the base model does not clear the random-init floor, so "
                     "gains there start from features no better than random ones")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def new_task_floor(methods: Dict[str, dict], spec: ReportSpec, floor: Optional[dict]) -> Dict[str, dict]:
    """Per new task: the margin of the base model (where its gain starts) and of each method right
    after adapting to the task's domain over the random-init floor; ``*_clears`` as in :func:`clears`
    (None when the floor was not evaluated)."""
    out = {}
    if not methods:
        return out
    acc0 = base_accuracy(methods)
    for k, domain in enumerate(spec.domains, start=1):
        for task in spec.new_tasks(domain):
            j = spec.tasks.index(task)
            ref = (floor or {}).get(task) or {}
            have = bool(ref.get("n"))
            entry = {"floor": ref.get("mean") if have else None, "floor_std": ref.get("std") if have else None,
                     "stage": k, "base": acc0["mean"][0][j], "base_std": acc0["std"][0][j],
                     "base_clears": (clears(acc0["mean"][0][j], acc0["std"][0][j], ref["mean"], ref["std"])
                                     if have else None), "after": {}}
            for m, r in methods.items():
                mean, std = r["accuracy"]["mean"][k][j], r["accuracy"]["std"][k][j]
                entry["after"][m] = {"mean": mean, "std": std,
                                     "clears": clears(mean, std, ref["mean"], ref["std"]) if have and mean is not None
                                     and math.isfinite(mean) else None}
            out[task] = entry
    return out


def load_drift(eval_dir, spec: ReportSpec) -> dict:
    """Representation drift from ``<eval_dir>/drift.json`` (``bin.drift``), per method and audio set:
    the last layer's drift after each stage (index 0 = stage 1) as ``{"mean", "std", "n", "per_run"}``
    over the training runs (``per_run``: run label -> list per stage); ``{}`` when the file is absent.
    A method is left out unless every run has every stage. ``random`` holds the random-init row."""
    path = Path(eval_dir) / "drift.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())["drift"]
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a drift result ({e})") from e
    out = {}
    for method in spec.methods:
        runs: Dict[str, Dict[str, List[float]]] = {}  # set -> run label -> per stage
        complete = True
        for train_seed in spec.runs:
            label = "run" if train_seed is None else str(train_seed)
            for domain in spec.domains:
                sets = raw.get(f"{spec.run_prefix(train_seed)}{method}/{domain}")
                if not sets:
                    complete = False
                for set_name, d in (sets or {}).items():
                    runs.setdefault(set_name, {}).setdefault(label, []).append(d["last"])
        if not runs or not complete:
            continue
        if all(len(v) == len(spec.domains) for per in runs.values() for v in per.values()):
            out[method] = {name: _drift_stats(per) for name, per in runs.items()}
    if "random" in raw:
        out["random"] = {k: _drift_stats({"run": [d["last"]]}) for k, d in raw["random"].items()}
    return out


def _drift_stats(per_run: Dict[str, List[float]]) -> dict:
    values = np.array(list(per_run.values()), dtype=float)  # [runs, stages]
    n = values.shape[0]
    return {"mean": values.mean(axis=0).tolist(),
            "std": (values.std(axis=0, ddof=1) if n >= 2 else np.full(values.shape[1], math.nan)).tolist(),
            "n": n, "per_run": per_run}


def drift_verdict(drift_by_method: dict, level: float = LEVEL) -> Optional[dict]:
    """SONAR vs DCP drift after the last stage on the first audio set, noise-tested over training
    runs (``answer``: SONAR drifts less, yes / no / not distinguishable; supplementary)."""
    if "sonar" not in drift_by_method or "dcp" not in drift_by_method:
        return None
    set_name = next(iter(drift_by_method["sonar"]))
    if set_name not in drift_by_method["dcp"]:
        return None
    s, d = drift_by_method["sonar"][set_name], drift_by_method["dcp"][set_name]
    interval = welch_interval([v[-1] for v in s["per_run"].values()], [v[-1] for v in d["per_run"].values()],
                              1.0, level)
    return {"audio": set_name, "sonar": s["mean"][-1], "dcp": d["mean"][-1],
            "sonar_std": s["std"][-1], "dcp_std": d["std"][-1], "n": [s["n"], d["n"]],
            "sonar_lower": bool(s["mean"][-1] < d["mean"][-1]), "interval": interval,
            "answer": answer_below(interval)}

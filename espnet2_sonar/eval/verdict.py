"""The SONAR-vs-DCP verdict and the checks that qualify it.

* :func:`verdict`: at most ``FORGETTING_SHARE`` of DCP's mean forgetting on old tasks, and
  at least ``GAIN_SHARE`` of DCP's mean adaptation gain (which must be positive);
* :func:`old_task_floor` / :func:`task_chance`: did the base model learn each old task
  (above the random-init floor by more than seed noise and by ``MEASURABLE_MARGIN``; above
  chance)? Forgetting on a task it never learnt is noise, and the verdict says so;
* :func:`task_floors`: per task, chance, the log-mel and random-init floors, and whether any
  reference learns it at all (learnability);
* :func:`load_drift` / :func:`drift_verdict`: the label-free comparison from
  ``bin/drift`` (representation drift from the base model on old-domain audio).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

if TYPE_CHECKING:  # report.py imports this module; the types are only annotations here
    from espnet2_sonar.eval.report import ProbeResults, ReportSpec

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


def verdict(methods: Dict[str, dict], share: float = GAIN_SHARE, floor_check: Optional[Dict[str, dict]] = None,
            forgetting_share: float = FORGETTING_SHARE) -> dict:
    """SONAR vs DCP: at most ``forgetting_share`` of DCP's mean forgetting on old tasks, and at
    least ``share`` of DCP's gain. The gain criterion applies only when DCP's mean gain is
    positive (``gain_ok`` is None otherwise), and SONAR wins only when both criteria hold.

    With ``floor_check`` (:func:`old_task_floor`), old tasks the base model has not learnt
    make the forgetting criterion unmeasurable (``measurable`` False, no win); a forgetting
    gap smaller than the two methods' seed std combined is flagged as noise.
    """
    out = {"gain_share_required": share, "forgetting_share_allowed": forgetting_share}
    absent = [m for m in ("sonar", "dcp") if m not in methods]
    if absent:
        return out | {"available": False, "reason": f"method(s) {absent} not in the report"}
    sf, df = methods["sonar"]["mean_forgetting_old"], methods["dcp"]["mean_forgetting_old"]
    s_f, d_f = sf["mean"], df["mean"]
    s_g, d_g = methods["sonar"]["mean_gain"]["mean"], methods["dcp"]["mean_gain"]["mean"]
    out |= {"sonar_forgetting": s_f, "dcp_forgetting": d_f, "sonar_gain": s_g, "dcp_gain": d_g}
    finite = all(math.isfinite(v) for v in (s_f, d_f, s_g, d_g))
    if not finite:
        return out | {"available": False, "reason": "forgetting or gain is missing (NaN) for sonar or dcp"}
    unlearnt = sorted(t for t, e in (floor_check or {}).items() if e["learnt"] is False)
    narrow = sorted(t for t, e in (floor_check or {}).items() if e["learnt"] and e.get("wide_margin") is False)
    below_chance = sorted(t for t, e in (floor_check or {}).items() if e.get("above_chance") is False)
    noise = seed_noise(sf.get("std"), df.get("std"))
    out |= {
        "available": True,
        "reason": None,
        "forgetting_lower": bool(s_f < d_f),
        "forgetting_ratio": s_f / d_f if d_f > 0 else None,
        "forgetting_ok": bool(d_f > 0 and s_f <= forgetting_share * d_f),
        "gain_ratio": s_g / d_g if d_g > 0 else None,
        "gain_applies": bool(d_g > 0),
        "gain_ok": bool(s_g >= share * d_g) if d_g > 0 else None,
        "measurable": not unlearnt and not narrow,
        "old_tasks_not_learnt": unlearnt,
        "old_tasks_narrow_margin": narrow,
        "old_tasks_below_chance": below_chance,
        "forgetting_gap_within_noise": bool(abs(s_f - d_f) <= noise) if noise > 0 else None,
    }
    out["sonar_wins"] = bool(out["measurable"] and out["forgetting_ok"] and out["gain_ok"] is True)
    notes = []
    if d_g <= 0:
        notes.append("DCP's mean gain is not positive, so the gain criterion does not apply and SONAR cannot "
                     "meet both criteria on this run")
    if out["forgetting_gap_within_noise"]:
        notes.append(f"the forgetting gap ({abs(s_f - d_f) * 100:.1f} pts of %) is within the seed std of the "
                     f"two methods combined ({noise * 100:.1f}), so its sign is not significant")
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
    if notes:
        out["note"] = "; ".join(notes)
    return out


def load_drift(eval_dir, spec: ReportSpec) -> dict:
    """Representation drift from ``<eval_dir>/drift.json`` (``bin.drift``), per method and audio set:
    the last layer's drift after each stage (index 0 = stage 1); ``{}`` when the file is absent."""
    path = Path(eval_dir) / "drift.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())["drift"]
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a drift result ({e})") from e
    out = {}
    for method in spec.methods:
        per_set: Dict[str, List[float]] = {}
        for domain in spec.domains:
            for set_name, d in raw.get(f"{method}/{domain}", {}).items():
                per_set.setdefault(set_name, []).append(d["last"])
        if per_set and all(len(v) == len(spec.domains) for v in per_set.values()):
            out[method] = per_set
    if "random" in raw:
        out["random"] = {k: [d["last"]] for k, d in raw["random"].items()}
    return out


def drift_verdict(drift_by_method: dict) -> Optional[dict]:
    """SONAR vs DCP drift after the last stage on the first audio set (supplementary to the verdict)."""
    if "sonar" not in drift_by_method or "dcp" not in drift_by_method:
        return None
    set_name = next(iter(drift_by_method["sonar"]))
    if set_name not in drift_by_method["dcp"]:
        return None
    s, d = drift_by_method["sonar"][set_name][-1], drift_by_method["dcp"][set_name][-1]
    return {"audio": set_name, "sonar": s, "dcp": d, "sonar_lower": bool(s < d)}

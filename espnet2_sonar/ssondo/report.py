"""S-SONDO report: size, probe accuracy and share of the teacher's accuracy kept, with/without BDS.

Input: the probe results of the recipe, ``eval_dir/<model>/<task>/seed<N>.json`` (the JSON
of ``espnet2_sonar.bin.probe``), where ``<model>`` is ``teacher`` or
``<student>_<sampling>[_s<train seed>]`` with sampling ``bds`` or ``random``. Results of
every train seed and probe seed of a (student, sampling) pair are pooled.

Definitions:

* size ratio = teacher parameters / student parameters (the student backbone with its
  frontend; the mapping head is used in training only and reported apart);
* retained (task) = 100 * student accuracy / teacher accuracy, means over seeds;
* retained (mean) = 100 * (student accuracy averaged over tasks) / (teacher's), as in
  S-SONDO's "96.4% of the teacher (73.0 vs 75.7 average)".
"""

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import torch

NAME_RE = re.compile(r"^(?P<student>.+)_(?P<sampling>bds|random)(?:_s(?P<seed>\d+))?$")
TEACHER = "teacher"


@dataclass
class ModelRow:
    """One model of the report."""

    name: str
    """``teacher`` or ``<student>_<sampling>``."""
    student: Optional[str]
    sampling: Optional[str]
    params: Optional[int]
    head_params: Optional[int]
    ckpts: List[str] = field(default_factory=list)
    accuracy: Dict[str, List[float]] = field(default_factory=dict)
    """task -> accuracies (every train seed x probe seed)."""

    def mean(self, task: str) -> Optional[float]:
        acc = self.accuracy.get(task)
        return sum(acc) / len(acc) if acc else None

    def std(self, task: str) -> Optional[float]:
        acc = self.accuracy.get(task)
        if not acc:
            return None
        m = sum(acc) / len(acc)
        return math.sqrt(sum((a - m) ** 2 for a in acc) / len(acc))

    def average(self, tasks: Sequence[str]) -> Optional[float]:
        """Mean over tasks of the per-task mean accuracy (None if a task is missing)."""
        means = [self.mean(t) for t in tasks]
        return None if any(m is None for m in means) else sum(means) / len(means)


ParamCounts = Tuple[Optional[int], Optional[int]]
"""(encoder parameters, mapping-head parameters or None); (None, None) for a missing file."""


def count_params(ckpt: str, load_encoder: Callable[[str], "torch.nn.Module"]) -> ParamCounts:
    """Parameter counts of a student checkpoint, or of a teacher loaded with ``load_encoder``
    (``eval.checkpoints.load_encoder``, which reads every checkpoint kind)."""
    from espnet2_sonar.students.encoder import count_parameters
    from espnet2_sonar.students.file import is_student_checkpoint, load_student

    if not Path(ckpt).exists():
        return None, None
    if is_student_checkpoint(ckpt):
        model = load_student(ckpt)
        return count_parameters(model.student), count_parameters(model.head)
    return count_parameters(load_encoder(ckpt)), None


def collect(eval_dir: str | Path, tasks: Sequence[str], count: Callable[[str], ParamCounts]) -> Dict[str, ModelRow]:
    """Read every ``<model>/<task>/seed*.json`` under ``eval_dir`` into ModelRows by group name;
    ``count(ckpt)`` gives a model's parameter counts (:func:`count_params` with a loader bound)."""
    eval_dir = Path(eval_dir)
    rows: Dict[str, ModelRow] = {}
    for model_dir in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        name = model_dir.name
        if name == TEACHER:
            group, student, sampling = TEACHER, None, None
        else:
            m = NAME_RE.match(name)
            if not m:
                continue  # e.g. the embedding cache
            student, sampling = m["student"], m["sampling"]
            group = f"{student}_{sampling}"
        row = rows.setdefault(group, ModelRow(group, student, sampling, None, None))
        for task in tasks:
            for res in sorted((model_dir / task).glob("seed*.json")):
                result = json.loads(res.read_text())
                row.accuracy.setdefault(task, []).append(float(result["accuracy"]))
                if result.get("ckpt") and result["ckpt"] not in row.ckpts:
                    row.ckpts.append(result["ckpt"])
    for row in rows.values():
        if row.ckpts:
            row.params, row.head_params = count(row.ckpts[0])
    return rows


def _fmt(x: Optional[float], pct: bool = False, digits: int = 1) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.{digits}f}" if pct else f"{x:.{digits}f}"


def build_report(rows: Dict[str, ModelRow], tasks: Sequence[str], target: float = 85.0, min_ratio: float = 10.0) -> dict:
    """JSON-ready summary: per model size, ratio, accuracies and retention; verdict on the target."""
    if TEACHER not in rows:
        raise ValueError("no teacher results (eval_dir/teacher/<task>/seed*.json)")
    teacher = rows[TEACHER]
    t_avg = teacher.average(tasks)
    models = []
    for name, row in sorted(rows.items(), key=lambda kv: (kv[0] != TEACHER, kv[0])):
        avg = row.average(tasks)
        ratio = teacher.params / row.params if teacher.params and row.params else None
        retained = {
            t: (100 * row.mean(t) / teacher.mean(t) if row.mean(t) is not None and teacher.mean(t) else None)
            for t in tasks
        }
        models.append(
            {
                "name": name,
                "student": row.student,
                "sampling": row.sampling,
                "params": row.params,
                "head_params": row.head_params,
                "size_ratio": ratio,
                "accuracy": {t: row.mean(t) for t in tasks},
                "accuracy_std": {t: row.std(t) for t in tasks},
                "runs": {t: len(row.accuracy.get(t, [])) for t in tasks},
                "mean_accuracy": avg,
                "retained": retained,
                "mean_retained": 100 * avg / t_avg if avg is not None and t_avg else None,
                "ckpts": row.ckpts,
            }
        )
    students = [m for m in models if m["name"] != TEACHER]
    eligible = [m for m in students if m["size_ratio"] and m["size_ratio"] >= min_ratio and m["mean_retained"] is not None]
    best = max(eligible, key=lambda m: m["mean_retained"], default=None)
    bds_effect = []
    for s in sorted({m["student"] for m in students}):
        by = {m["sampling"]: m for m in students if m["student"] == s}
        if "bds" in by and "random" in by and by["bds"]["mean_accuracy"] is not None and by["random"]["mean_accuracy"] is not None:
            bds_effect.append(
                {
                    "student": s,
                    "bds": by["bds"]["mean_accuracy"],
                    "random": by["random"]["mean_accuracy"],
                    "delta": by["bds"]["mean_accuracy"] - by["random"]["mean_accuracy"],
                }
            )
    return {
        "tasks": list(tasks),
        "target_retained": target,
        "min_size_ratio": min_ratio,
        "models": models,
        "bds_effect": bds_effect,
        "best": None if best is None else best["name"],
        "target_met": None if best is None else bool(best["mean_retained"] >= target),
    }


def to_markdown(report: dict) -> str:
    """The report as markdown tables."""
    tasks = report["tasks"]
    lines = ["# S-SONDO distillation report", ""]
    lines += ["## Size", "", "| model | params | size ratio | head params (training only) |", "|---|---:|---:|---:|"]
    for m in report["models"]:
        ratio = "1.0x" if m["name"] == TEACHER else (f"{m['size_ratio']:.1f}x" if m["size_ratio"] else "-")
        params = f"{m['params'] / 1e6:.3f}M" if m["params"] else "-"
        head = f"{m['head_params'] / 1e6:.3f}M" if m["head_params"] else "-"
        lines.append(f"| {m['name']} | {params} | {ratio} | {head} |")
    lines += ["", "## Probe accuracy (%, mean ± std over seeds)", ""]
    lines.append("| model | " + " | ".join(tasks) + " | mean |")
    lines.append("|---|" + "---:|" * (len(tasks) + 1))
    for m in report["models"]:
        cells = [
            f"{_fmt(m['accuracy'][t], True)} ± {_fmt(m['accuracy_std'][t], True)}" if m["accuracy"][t] is not None else "-"
            for t in tasks
        ]
        lines.append(f"| {m['name']} | " + " | ".join(cells) + f" | {_fmt(m['mean_accuracy'], True)} |")
    lines += ["", "## Share of the teacher's accuracy retained (%)", ""]
    lines.append("| model | " + " | ".join(tasks) + " | mean |")
    lines.append("|---|" + "---:|" * (len(tasks) + 1))
    for m in report["models"]:
        if m["name"] == TEACHER:
            continue
        cells = [_fmt(m["retained"][t]) for t in tasks]
        lines.append(f"| {m['name']} | " + " | ".join(cells) + f" | {_fmt(m['mean_retained'])} |")
    if report["bds_effect"]:
        lines += ["", "## Balanced data sampling vs random sampling (mean accuracy, %)", ""]
        lines += ["| student | BDS | random | BDS - random |", "|---|---:|---:|---:|"]
        for e in report["bds_effect"]:
            lines.append(f"| {e['student']} | {_fmt(e['bds'], True)} | {_fmt(e['random'], True)} | {_fmt(e['delta'], True)} |")
    lines += [""]
    if report["best"] is None:
        lines.append(f"No student at least {report['min_size_ratio']:.0f}x smaller than the teacher has results.")
    else:
        best = next(m for m in report["models"] if m["name"] == report["best"])
        verdict = "meets" if report["target_met"] else "misses"
        lines.append(
            f"Best student at least {report['min_size_ratio']:.0f}x smaller: **{best['name']}** "
            f"({best['size_ratio']:.1f}x smaller) keeps {best['mean_retained']:.1f}% of the teacher's mean "
            f"accuracy: it {verdict} the {report['target_retained']:.0f}% target."
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str | Path) -> Path:
    """``report.md`` and ``report.json`` under ``out_dir``; returns the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    md = out_dir / "report.md"
    md.write_text(to_markdown(report))
    return md


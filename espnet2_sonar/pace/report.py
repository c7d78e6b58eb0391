"""PACE report: a Table-1-shaped summary (markdown + CSV) and per-session accuracy curves.

    python -m espnet2_sonar.pace.report --results_dir EXP/pace --out_dir EXP/pace/report

reads every result JSON below ``results_dir`` (written by ``espnet2_sonar.bin.pace_eval``)
and writes ``pace_table.md``, ``pace_table.csv`` and ``pace_sessions.png``. Numbers are
percentages, mean ± sample standard deviation (ddof=1) over seeds:

* table rows: one per (checkpoint, method); for every benchmark the average accuracy over
  sessions (Avg), the last-session accuracy (Last) and the average forgetting (Fgt);
* plot: one panel per (checkpoint, benchmark), accuracy on all seen classes after each
  session, one line per method with a band of ± one standard deviation.

Two things the table must not overstate:

* one seed has no spread. A value averaged over n=1 seed is printed ``64.9 (n=1)``, never
  ``± 0.0`` (its std is NaN in ``SummaryRow``, blank in the CSV, and it gets no band in the
  plot). The table's seed count is the most common n over its rows; a cell whose n differs
  from it says ``(n=k)``;
* joint training (all sessions' data at once) is only *called* an upper bound when the
  numbers bear it out: for a checkpoint, joint's mean Avg must be at least every other
  method's mean Avg on every benchmark joint was run on (Avg is the column the table and
  the PACE standing lines rank on; Last and Fgt are not ranked). Otherwise the row says
  "Joint (all sessions at once)" and a note under the table names the methods above it.
"""

import argparse
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

METHOD_ORDER = ("joint", "naive", "analytic", "analytic_fsa", "pace")
METHOD_LABELS = {
    "joint": "Joint (all sessions at once)",
    "naive": "Naive fine-tuning",
    "analytic": "Analytic",
    "analytic_fsa": "Analytic + FSA",
    "pace": "PACE",
}
# joint's label where its Avg is at least every other method's (see ``joint_above``)
JOINT_BOUND_LABEL = "Joint (upper bound)"


@dataclass
class SummaryRow:
    """Seed statistics of one (checkpoint, method, benchmark); accuracies in percent."""

    ckpt: str
    method: str
    benchmark: str
    seeds: List[int]
    avg_mean: float
    avg_std: float
    last_mean: float
    last_std: float
    forget_mean: float
    forget_std: float
    session_mean: List[float]
    session_std: List[float]

    @property
    def n(self) -> int:
        """Number of results (seeds) averaged; the std fields are NaN when it is 1."""
        return len(self.seeds)


def load_results(results_dir: str | Path) -> List[dict]:
    """Every result JSON (``format`` pace_result/*) below ``results_dir``, in path order."""
    out = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable JSON result ({e})") from e
        if isinstance(data, dict) and str(data.get("format", "")).startswith("pace_result/"):
            data["_path"] = str(path)
            out.append(data)
    return out


def _stats(values: Sequence[float]) -> "tuple[float, float]":
    """Mean and sample standard deviation (ddof=1); the std of a single value is NaN, not 0:
    one seed says nothing about the spread, and a 0.0 would read as "no variance"."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def _method_key(method: str):
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def summarize(results: Sequence[dict]) -> List[SummaryRow]:
    """Group results by (ckpt name, method, benchmark) and average over seeds."""
    groups: Dict[tuple, List[dict]] = {}
    for r in results:
        key = (r.get("ckpt_name") or Path(r.get("ckpt", "?")).stem, r["method"]["name"], r["benchmark"]["name"])
        groups.setdefault(key, []).append(r)
    rows = []
    for (ckpt, method, bench), rs in groups.items():
        m = [r["metrics"] for r in rs]
        avg = _stats([100 * x["average_accuracy"] for x in m])
        last = _stats([100 * x["last_accuracy"] for x in m])
        fgt = _stats([100 * x["average_forgetting"] for x in m])
        num = min(len(x["session_accuracy"]) for x in m)
        per = [_stats([100 * x["session_accuracy"][t] for x in m]) for t in range(num)]
        rows.append(
            SummaryRow(
                ckpt, method, bench, sorted(r["seed"] for r in rs), avg[0], avg[1], last[0], last[1],
                fgt[0], fgt[1], [p[0] for p in per], [p[1] for p in per],
            )
        )
    rows.sort(key=lambda r: (r.ckpt, _method_key(r.method), r.benchmark))
    return rows


def table_seed_count(rows: Sequence[SummaryRow]) -> int:
    """The table's n: the most common number of seeds over its rows (ties: the larger).

    Cells averaged over this many seeds print plain ``mean ± std``; any other cell names its
    own n, so a row with fewer (or more) seeds than the rest cannot pass for a full one."""
    counts: Dict[int, int] = {}
    for r in rows:
        counts[r.n] = counts.get(r.n, 0) + 1
    return max(counts, key=lambda n: (counts[n], n)) if counts else 0


def _cell(mean: float, std: float, n: int, table_n: int) -> str:
    """``mean ± std``; one seed: ``mean (n=1)`` (no spread to show); ``(n=k)`` appended when
    the cell's n differs from the table's."""
    if n < 2:
        return f"{mean:.1f} (n={n})"
    cell = f"{mean:.1f} ± {std:.1f}"
    return cell if n == table_n else f"{cell} (n={n})"


def joint_above(rows: Sequence[SummaryRow]) -> Dict[str, List[tuple]]:
    """Per checkpoint with a joint row: the (method, benchmark, method Avg, joint Avg) where
    another method's mean Avg is above joint's. Empty list: joint is an upper bound there.

    Joint training sees every session's data at once, so it is *expected* to bound the
    continual methods, but on a small run it need not; the label follows the numbers. Only
    Avg (the headline column) is compared, and only on benchmarks joint was run on."""
    out: Dict[str, List[tuple]] = {}
    for j in rows:
        if j.method != "joint":
            continue
        above = out.setdefault(j.ckpt, [])
        for r in rows:
            if r.ckpt == j.ckpt and r.benchmark == j.benchmark and r.method != "joint" and r.avg_mean > j.avg_mean:
                above.append((r.method, r.benchmark, r.avg_mean, j.avg_mean))
    for ckpt in out:
        out[ckpt].sort(key=lambda a: (_method_key(a[0]), a[1]))
    return out


def method_label(method: str, ckpt: Optional[str], rows: Sequence[SummaryRow]) -> str:
    """Display name of ``method``; joint is "Joint (upper bound)" only where ``joint_above``
    finds nothing above it (for ``ckpt``, or for every checkpoint when ``ckpt`` is None)."""
    if method != "joint":
        return METHOD_LABELS.get(method, method)
    above = joint_above(rows)
    ckpts = [ckpt] if ckpt is not None else list(above)
    if ckpts and all(c in above and not above[c] for c in ckpts):
        return JOINT_BOUND_LABEL
    return METHOD_LABELS["joint"]


def _pair(a: float, b: float) -> str:
    """``a vs b`` to one decimal, or two where one decimal would print them equal."""
    digits = 1 if f"{a:.1f}" != f"{b:.1f}" else 2
    return f"{a:.{digits}f} vs {b:.{digits}f}"


def joint_notes(rows: Sequence[SummaryRow]) -> List[str]:
    """Lines for under the table: why joint is (or is not) labelled an upper bound."""
    above = joint_above(rows)
    lines = []
    for ckpt, items in sorted(above.items()):
        if not items:
            continue
        parts = [f"{METHOD_LABELS.get(m, m)} on {b} Avg ({_pair(a, j)})" for m, b, a, j in items]
        lines.append(
            f"Note ({ckpt}): joint training is below {', '.join(parts)} on this run, "
            "so it is not an upper bound here."
        )
    if any(not items for items in above.values()):
        lines.append(
            f'"{JOINT_BOUND_LABEL}": joint\'s mean Avg is at least every other method\'s on every '
            "benchmark joint was run on for that checkpoint (Avg columns only; Last and Fgt are not ranked)."
        )
    return lines


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """Rows (checkpoint, method) x column groups (benchmark: Avg, Last, Fgt), then the notes
    on joint's label (``joint_notes``), each after a blank line (so none is read as a table row
    and each stays its own paragraph)."""
    benches = sorted({r.benchmark for r in rows})
    table_n = table_seed_count(rows)
    index = {(r.ckpt, r.method, r.benchmark): r for r in rows}
    lines = [
        "| checkpoint | method | "
        + " | ".join(f"{b} Avg ↑ | {b} Last ↑ | {b} Fgt ↓" for b in benches)
        + " | seeds |",
        "|---|---|" + "---:|" * (3 * len(benches)) + "---|",
    ]
    seen = []
    for r in rows:
        if (r.ckpt, r.method) not in seen:
            seen.append((r.ckpt, r.method))
    for ckpt, method in seen:
        cells, seeds = [], set()
        for b in benches:
            r = index.get((ckpt, method, b))
            if r is None:
                cells += ["–"] * 3
                continue
            seeds |= set(r.seeds)
            cells += [
                _cell(r.avg_mean, r.avg_std, r.n, table_n),
                _cell(r.last_mean, r.last_std, r.n, table_n),
                _cell(r.forget_mean, r.forget_std, r.n, table_n),
            ]
        label = method_label(method, ckpt, rows)
        lines.append(f"| {ckpt} | {label} | " + " | ".join(cells) + f" | {','.join(map(str, sorted(seeds)))} |")
    for note in joint_notes(rows):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def pace_standing(rows: Sequence[SummaryRow]) -> List[str]:
    """One line per (checkpoint, benchmark): PACE's Avg against Analytic + FSA, naive and joint."""
    index = {(r.ckpt, r.method, r.benchmark): r for r in rows}
    lines = []
    for r in rows:
        if r.method != "pace":
            continue
        parts = []
        for other in ("analytic_fsa", "naive", "joint"):
            o = index.get((r.ckpt, other, r.benchmark))
            if o is not None:
                parts.append(f"{r.avg_mean - o.avg_mean:+.1f} vs {method_label(other, r.ckpt, rows)}")
        if parts:
            lines.append(f"- {r.ckpt}, {r.benchmark}: PACE Avg {r.avg_mean:.1f} ({', '.join(parts)})")
    return lines


def write_csv(rows: Sequence[SummaryRow], path: Path) -> None:
    """One line per (checkpoint, method, benchmark); session accuracies space-separated.

    Stds are sample stds (ddof=1); with one seed they are left blank (there is none)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ckpt", "method", "benchmark", "seeds", "avg_acc_mean", "avg_acc_std", "last_acc_mean",
                    "last_acc_std", "forgetting_mean", "forgetting_std", "session_acc_mean", "session_acc_std"])
        def std(v: float) -> str:
            return "" if math.isnan(v) else f"{v:.2f}"

        for r in rows:
            w.writerow([r.ckpt, r.method, r.benchmark, " ".join(map(str, r.seeds)),
                        f"{r.avg_mean:.2f}", std(r.avg_std), f"{r.last_mean:.2f}", std(r.last_std),
                        f"{r.forget_mean:.2f}", std(r.forget_std),
                        " ".join(f"{v:.2f}" for v in r.session_mean),
                        "" if r.n < 2 else " ".join(std(v) for v in r.session_std)])


def plot_sessions(rows: Sequence[SummaryRow], path: Path) -> None:
    """Accuracy on all seen classes after each session: panels (checkpoint x benchmark).

    The legend is shared by all panels, so joint is labelled an upper bound there only if it
    is one for every checkpoint; a one-seed line gets no band (it has no std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ckpts = sorted({r.ckpt for r in rows})
    benches = sorted({r.benchmark for r in rows})
    methods = sorted({r.method for r in rows}, key=_method_key)
    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    labels_for = {m: method_label(m, None, rows) for m in methods}
    fig, axes = plt.subplots(
        len(ckpts), len(benches), figsize=(5.0 * len(benches), 3.8 * len(ckpts)), squeeze=False, sharey=True
    )
    for i, ckpt in enumerate(ckpts):
        for j, bench in enumerate(benches):
            ax = axes[i][j]
            for r in rows:
                if r.ckpt != ckpt or r.benchmark != bench:
                    continue
                x = list(range(1, len(r.session_mean) + 1))
                lo = [m - s for m, s in zip(r.session_mean, r.session_std)]
                hi = [m + s for m, s in zip(r.session_mean, r.session_std)]
                ax.plot(
                    x, r.session_mean, marker="o", color=colors[r.method],
                    label=labels_for[r.method],
                    linestyle="--" if r.method == "joint" else "-", linewidth=2 if r.method == "pace" else 1.5,
                )
                if r.n > 1:
                    ax.fill_between(x, lo, hi, color=colors[r.method], alpha=0.15)
                ax.set_xticks(x)
            ax.set_title(f"{bench} — {ckpt}", fontsize=11)
            ax.set_xlabel("session")
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("accuracy on seen classes (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if len(ckpts) == 1 else 0.05, 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


@dataclass
class ReportFiles:
    """Files written by ``write_report``."""

    markdown: Path
    csv: Path
    plot: Optional[Path]
    rows: List[SummaryRow]


def write_report(results_dir: str | Path, out_dir: str | Path) -> ReportFiles:
    """Summarise every result below ``results_dir`` into ``out_dir`` (see module docstring)."""
    results = load_results(results_dir)
    if not results:
        raise FileNotFoundError(f"{results_dir}: no PACE result JSON files")
    rows = summarize(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "pace_table.md"
    table_n = table_seed_count(rows)
    header = (
        "# PACE: class-incremental audio benchmarks\n\n"
        f"Accuracy in %, mean ± sample standard deviation (ddof=1) over {table_n} "
        f"seed{'s' if table_n != 1 else ''}; a cell with another number of seeds k says (n=k), and "
        "a one-seed value is shown as (n=1) with no spread. Avg: average over sessions of the "
        "accuracy on all classes seen so far; Last: after the last session; Fgt: average forgetting.\n\n"
    )
    standing = pace_standing(rows)
    body = markdown_table(rows)
    if standing:
        body += "\nWhere PACE stands (difference in Avg points):\n\n" + "\n".join(standing) + "\n"
    md.write_text(header + body)
    csv_path = out_dir / "pace_table.csv"
    write_csv(rows, csv_path)
    png = out_dir / "pace_sessions.png"
    plot_sessions(rows, png)
    return ReportFiles(md, csv_path, png, rows)


def main(argv: Optional[List[str]] = None) -> ReportFiles:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results_dir", required=True, help="dir searched recursively for result JSON files")
    p.add_argument("--out_dir", required=True)
    args = p.parse_args(argv)
    files = write_report(args.results_dir, args.out_dir)
    print(f"wrote {files.markdown}, {files.csv}, {files.plot}")
    return files


if __name__ == "__main__":
    main()

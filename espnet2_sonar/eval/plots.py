"""PNG figures of the continual-learning report (input: the dict of ``report.build_results``).

Figures are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas), so nothing here
touches pyplot's global state or the backend of the calling process. Accuracies are shown
in %, gains in accuracy points, forgetting in % of the starting accuracy.
"""

import math
from pathlib import Path
from typing import Dict, List

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from espnet2_sonar.eval.report_tables import stage_labels

_COLORS = {"sonar": "#1f77b4", "dcp": "#d62728", "decar": "#2ca02c"}
_FALLBACK = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_CODEBOOK_LABELS = {
    "codebook_size": "codebook size (codes)",
    "code_perplexity": "code usage perplexity",
    "dead_codes": "dead codes",
    "protected_codes": "protected codes",
    "codes_added": "codes added per step",
}


def method_color(method: str, index: int) -> str:
    return _COLORS.get(method, _FALLBACK[index % len(_FALLBACK)])


def _arr(rows) -> np.ndarray:
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)


def _nz(v) -> float:
    return 0.0 if v is None or not math.isfinite(v) else v


def task_labels(results: dict) -> List[str]:
    spec = results["spec"]
    return [f"{t}\n({spec['task_domain'][t]})" for t in spec["tasks"]]


def plot_accuracy_matrix(results: dict, method: str, path) -> None:
    """Heatmap of A[stage][task] (mean ± std over seeds); the newly adapted cell is boxed."""
    spec, r = results["spec"], results["methods"][method]
    mean, std = _arr(r["accuracy"]["mean"]) * 100, _arr(r["accuracy"]["std"]) * 100
    count = _arr(r["accuracy"]["n"])
    n_stages, n_tasks = mean.shape
    fig = Figure(figsize=(1.9 * n_tasks + 2.6, 0.85 * n_stages + 1.6), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for i in range(n_stages):
        for j in range(n_tasks):
            if not math.isfinite(mean[i, j]):
                ax.text(j, i, "missing", ha="center", va="center", color="#555555", fontsize=9)
                continue
            text = f"{mean[i, j]:.1f}" + (f"\n± {std[i, j]:.1f}" if math.isfinite(std[i, j]) else "")
            if count[i, j] < len(spec["seeds"]):
                text += f"\n(n={int(count[i, j])})"
            ax.text(j, i, text, ha="center", va="center", fontsize=10,
                    color="black" if mean[i, j] > 60 else "white")
    for k, domain in enumerate(spec["domains"], start=1):
        for j, task in enumerate(spec["tasks"]):
            if spec["task_domain"][task] == domain:
                ax.add_patch(_box(j, k))
    ax.set_xticks(range(n_tasks), task_labels(results))
    ax.set_yticks(range(n_stages), stage_labels(results, method))
    ax.set_xlabel("probe task (domain)")
    ax.set_ylabel("after stage")
    ax.set_title(f"{method}: test accuracy (%) after each stage\nboxed: the domain adapted at that stage",
                 fontsize=11)
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    fig.savefig(path, dpi=120)


def _box(j: int, i: int):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2.5)


def plot_gain_vs_forgetting(results: dict, path) -> None:
    """One point per method: mean forgetting on old tasks vs mean adaptation gain."""
    fig = Figure(figsize=(6.2, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.axvline(0, color="#999999", linewidth=0.8)
    plotted = 0
    for idx, method in enumerate(results["spec"]["methods"]):
        s = results["summary"][method]
        x, y = s["mean_forgetting_old"]["mean"], s["mean_gain"]["mean"]
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        color = method_color(method, idx)
        ax.errorbar(x * 100, y * 100, xerr=_nz(s["mean_forgetting_old"]["std"]) * 100,
                    yerr=_nz(s["mean_gain"]["std"]) * 100, fmt="o", markersize=9, capsize=5,
                    color=color, label=f"{method} (n={min(s['mean_gain']['n'], s['mean_forgetting_old']['n'])})")
        ax.annotate(method, (x * 100, y * 100), textcoords="offset points", xytext=(8, 8),
                    fontsize=11, color=color, fontweight="bold")
        plotted += 1
    if not plotted:
        ax.text(0.5, 0.5, "no complete results", transform=ax.transAxes, ha="center", va="center")
    ax.margins(0.25)
    ax.set_xlabel("mean forgetting on old tasks (% of base accuracy)  \u2192 worse")
    ax.set_ylabel("mean adaptation gain on new domains (accuracy points)  \u2192 better")
    ax.set_title("Adaptation vs forgetting (mean \u00b1 std over seeds)\nbetter: up and to the left",
                 fontsize=11)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(loc="best", fontsize=9)
    fig.savefig(path, dpi=120)


def plot_per_stage(results: dict, path) -> None:
    """One panel per task: accuracy after each stage, one line per method (± std band)."""
    spec = results["spec"]
    tasks, n_stages = spec["tasks"], len(spec["domains"]) + 1
    cols = min(len(tasks), 2 if len(tasks) == 4 else 3)
    rows = math.ceil(len(tasks) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).reshape(-1)
    x = np.arange(n_stages)
    for j, task in enumerate(tasks):
        ax = axes[j]
        domain = spec["task_domain"][task]
        if domain in spec["domains"]:
            k = spec["domains"].index(domain) + 1
            ax.axvspan(k - 0.4, k + 0.4, color="#fff2b3", zorder=0, label=f"adapts to {domain}")
        for idx, method in enumerate(spec["methods"]):
            acc = results["methods"][method]["accuracy"]
            mean, std = _arr(acc["mean"])[:, j] * 100, _arr(acc["std"])[:, j] * 100
            color = method_color(method, idx)
            ax.plot(x, mean, "o-", color=color, label=method)
            band = np.nan_to_num(std)
            ax.fill_between(x, mean - band, mean + band, color=color, alpha=0.15, linewidth=0)
        kind = "new" if domain in spec["domains"] else "old"
        ax.set_title(f"{task} ({domain}, {kind} task)", fontsize=11)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.set_xticks(x, stage_labels(results), fontsize=9)
        ax.tick_params(axis="x", labelbottom=True)
        ax.legend(fontsize=8, loc="best")
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle("Test accuracy after each continual stage (mean \u00b1 std over seeds)", fontsize=12)
    fig.savefig(path, dpi=120)


def plot_codebook(results: dict, path) -> bool:
    """Per-epoch codebook statistics across the stages; False (nothing written) if none."""
    codebook, domains = results.get("codebook") or {}, results["spec"]["domains"]
    keys = [k for k in _CODEBOOK_LABELS if k != "codes_added"
            and any(k in st for per in codebook.values() for st in per.values())]
    if not keys:
        return False
    fig = Figure(figsize=(7.5, 2.6 * len(keys) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(keys), 1, sharex=True, squeeze=False)).reshape(-1)
    # every stage starts at the same epoch offset for all methods: the longest earlier stages
    lengths = [max((len(v) for per in codebook.values() for v in per.get(d, {}).values()), default=0)
               for d in domains]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for idx, method in enumerate(results["spec"]["methods"]):
        labelled = set()
        for k, domain in enumerate(domains):
            stage = codebook.get(method, {}).get(domain, {})
            for ax, key in zip(axes, keys):
                if key in stage:
                    epochs = starts[k] + np.arange(1, len(stage[key]) + 1)
                    ax.plot(epochs, _arr([stage[key]])[0], "o-", markersize=3, color=method_color(method, idx),
                            label=None if key in labelled else method)
                    labelled.add(key)
    for k, domain in enumerate(domains):
        if k < len(domains) - 1:
            for ax in axes:
                ax.axvline(starts[k + 1] + 0.5, color="#999999", linestyle="--", linewidth=0.8)
        axes[0].text((starts[k] + starts[k + 1]) / 2 + 0.5, 1.02, f"+{domain}",
                     transform=axes[0].get_xaxis_transform(), ha="center", va="bottom", fontsize=10)
    for ax, key in zip(axes, keys):
        ax.set_ylabel(_CODEBOOK_LABELS[key], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("training epoch (stages in order; train-set means)")
    fig.suptitle("Tokenizer codebook during continual pre-training", fontsize=12)
    fig.savefig(path, dpi=120)
    return True


def write_plots(results: dict, out_dir) -> Dict[str, str]:
    """Write every figure into ``out_dir``; returns {figure id: file name} of those written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for method in results["spec"]["methods"]:
        name = f"accuracy_matrix_{method}.png"
        plot_accuracy_matrix(results, method, out_dir / name)
        files[f"accuracy_matrix_{method}"] = name
    plot_gain_vs_forgetting(results, out_dir / "gain_vs_forgetting.png")
    files["gain_vs_forgetting"] = "gain_vs_forgetting.png"
    plot_per_stage(results, out_dir / "per_stage.png")
    files["per_stage"] = "per_stage.png"
    if plot_codebook(results, out_dir / "codebook.png"):
        files["codebook"] = "codebook.png"
    return files

"""The continual-learning report's text files: report.md, the README section, results.csv.

They put ``report_tables``' tables in order with the prose around them; all take the dict of
``report.build_results``.
"""

import csv
import io
from typing import Dict, Optional

from espnet2_sonar.eval.report_tables import (accuracy_table, codebook_table, drift_table, floor_table, is_number,
                                              new_task_floor_table, old_task_floor_table, per_task_table,
                                              reference_table, replicate_sentence, stage0_note, summary_table,
                                              task_floor_table, verdict_text)
from espnet2_sonar.eval.verdict import MEASURABLE_MARGIN

_ARROW = " \u2192 "


def report_markdown(results: dict, plots: Dict[str, str], eval_dir: Optional[str] = None) -> str:
    """The full report.md; ``plots`` maps figure ids to file names (``plots.write_plots``)."""
    spec, out = results["spec"], []
    old = set(spec["old_tasks"])
    task_list = ", ".join(
        f"{t} ({spec['task_domain'][t]}, {'old' if t in old else 'new'})" for t in spec["tasks"])
    n_missing = len(results["missing"])
    out.append("# Continual pre-training report\n")
    out.append(
        f"Methods: {', '.join(spec['methods'])}. Domains in stage order: {_ARROW.join(spec['domains'])}. "
        f"Tasks: {task_list}. Probe seeds: {', '.join(map(str, spec['seeds']))}"
        + (f". Training seeds: {', '.join(map(str, spec['train_seeds']))}" if spec.get("train_seeds") is not None else "")
        + (f". Probe results read from `{eval_dir}`" if eval_dir else "")
        + (f"; **{n_missing} missing** (see the end)." if n_missing else "; none missing.") + "\n")
    out.append(
        "Frozen-encoder probes (weighted layer sum, mean pooling, linear head), test accuracy; "
        f"{replicate_sentence(results)}. A[i][j] = accuracy on task j after stage i. "
        "Adaptation gain = A[k][task of domain k] \u2212 A[0][task], in accuracy points. "
        "Forgetting on an old task = (A[0][old] \u2212 A[K][old]) / A[0][old], in % of the base accuracy "
        "(positive = worse). Every number is computed per replicate first, then averaged." + stage0_note(results) + "\n")
    out.append("## Summary\n")
    out.append(summary_table(results))
    out.append("## Verdict (SONAR vs DCP)\n")
    out.append(verdict_text(results["verdict"], results.get("summary")))
    if "gain_vs_forgetting" in plots:
        out.append(f"![adaptation gain vs forgetting]({plots['gain_vs_forgetting']})\n")
    out.append("## Accuracy after each stage (%)\n")
    out.append("Bold: the task of the domain adapted to at that stage."
               + (" Row 0 is the shared base model, one model in every training run, so its ± is over probe "
                  "seeds." if spec.get("train_seeds") is not None else "") + "\n")
    for method in spec["methods"]:
        out.append(f"### {method}\n")
        out.append(accuracy_table(results, method))
        if f"accuracy_matrix_{method}" in plots:
            out.append(f"![accuracy matrix {method}]({plots[f'accuracy_matrix_{method}']})\n")
    if "per_stage" in plots:
        out.append(f"![accuracy per stage]({plots['per_stage']})\n")
    sections = [
        ("Adaptation gain on new domains (accuracy points)", "gain", "mean_gain", True,
         "A[k][task] \u2212 A[0][task], k = the stage that adapted to the task's domain."),
        ("Forgetting on old tasks (% of base accuracy)", "forgetting_old", "mean_forgetting_old", False,
         "(A[0][old] \u2212 A[K][old]) / A[0][old]; old tasks belong to no adapted domain."),
        ("Backward forgetting of adapted domains (% of accuracy right after adaptation)", "backward_forgetting",
         "mean_backward_forgetting", False,
         "(A[k][task] \u2212 A[K][task]) / A[k][task]: how much of a new domain's task is lost by the "
         "later stages; the last domain has no later stage and is left out."),
    ]
    for title, key, mean_key, signed, note in sections:
        out.append(f"## {title}\n")
        out.append(note + "\n")
        out.append(per_task_table(results, key, mean_key, signed) or "No task qualifies.\n")
    floors_table = task_floor_table(results)
    if floors_table:
        out.append("## Tasks: chance, floors and learnability (%)\n")
        out.append("Per task: chance (majority class of the test set), the log-mel-statistics floor "
                   "(`logmel`: mean + std over time of the 128 fbank bands, same probe), the random-init "
                   "floor (`random`) and any teacher (`teacher/*`, the most the base could learn from it). "
                   "A task is learnable when some reference clears chance by more than its seed std.\n")
        out.append(floors_table)
    table = reference_table(results)
    if table:
        out.append("## Reference encoders (%)\n")
        out.append("Encoders outside the stage matrix, probed the same way: `random` is a randomly "
                   "initialised encoder of the base architecture (the floor every method must clear); "
                   "`logmel` the log-mel-statistics floor; `teacher/<name>` a frozen pretrained teacher the "
                   "base model was distilled from (`--base_teacher`); "
                   "`decar/prior` is DECAR's pre-training stage on the prior pool; `decar/random`, when "
                   "present, is DECAR's own architecture (the EfficientNet) before any training, the "
                   "floor of DECAR's encoders.\n")
        out.append(table)
    table = floor_table(results)
    if table:
        out.append("Does each encoder clear the random-init floor of its architecture? Difference to "
                   "`random` (or the floor named in the row) in accuracy points; **no** where it is not "
                   "above the floor by more than the seed std of both.\n")
        out.append(table)
    table = old_task_floor_table(results)
    if table:
        out.append("Did the base model learn the old tasks? Forgetting is informative only where it "
                   "clears the random-init floor by more than the seed std of both, and by at least "
                   f"{MEASURABLE_MARGIN * 100:.0f} points (measurable):\n")
        out.append(table)
    table = new_task_floor_table(results)
    if table:
        out.append("Do the new tasks start from, and end above, the random-init floor? A gain measured from a "
                   "base below the floor starts from features no better than random ones (**no**: not above the "
                   "floor by more than the std of both).\n")
        out.append(table)
    table = drift_table(results)
    if table:
        out.append("## Representation drift from the base model (old-domain audio)\n")
        out.append("Mean over clips of 1 − cos(h, h_base) of the last layer's hidden states on the same "
                   "held-out prior-pool clips, which no training or replay list contains "
                   "(`espnet2_sonar.bin.drift`; mean ± std over training runs): 0 = the base model's features, a random-init "
                   "encoder sits near 1. Label-free: it shows what the distillation keeps even where "
                   "the probes cannot resolve forgetting.\n")
        out.append(table)
    out.append("## Codebook\n")
    table = codebook_table(results)
    if table is None:
        out.append("No codebook statistics found (no `checkpoint.pth` reporter state or `train.log` "
                   "with codebook keys in the stage directories).\n")
    else:
        out.append("Last-epoch train means per stage.\n")
        out.append(table)
        if "codebook" in plots:
            out.append(f"![codebook]({plots['codebook']})\n")
    out.append("## Missing\n")
    if results["missing"]:
        out.append("Probe results not found (their cells are NaN / \u2014):\n")
        out.append("\n".join(f"- `{m}`" for m in results["missing"]) + "\n")
    else:
        out.append("None.\n")
    return "\n".join(out)


def readme_section(results: dict, report_path: str) -> str:
    """Short markdown "Results" section for README.md: summary, verdict, how to reproduce;
    ``report_path``: where the reader finds the full report.md (``bin.report`` quotes its own
    output, relative to the repository root)."""
    spec = results["spec"]
    parts = [
        "## Results\n",
        f"Continual pre-training over {_ARROW.join(spec['domains'])}; frozen-probe test accuracy, "
        f"{replicate_sentence(results)}. Gain: accuracy points on each new "
        f"domain's task right after adapting to it; forgetting: % of base accuracy lost on old tasks "
        f"({', '.join(spec['old_tasks']) or 'none'}) after the last stage.{stage0_note(results)}\n",
        summary_table(results),
        verdict_text(results["verdict"], results.get("summary")),
    ]
    if results["missing"]:
        parts.append(f"{len(results['missing'])} probe result(s) were missing; see the full report.\n")
    parts.append(
        "Reproduce: `bash scripts/run_main.sh` (builds the offline corpus and runs every recipe stage), "
        f"then read `{report_path}` (tables, plots, per-seed numbers in `results.json` / `results.csv`).\n")
    return "\n".join(parts)


def results_csv(results: dict) -> str:
    """Long format: method, stage, stage_name, task, train_seed, probe_seed, accuracy, macro_f1,
    precision (found probes only; ``train_seed`` empty for a one-run report; precision of the
    encoder forwards, the run's ``spec.precision``).

    Stage 0 (``base``) is repeated under every method so each method's rows are complete.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "stage", "stage_name", "task", "train_seed", "probe_seed", "accuracy", "macro_f1",
                     "precision"])
    one_run = results["spec"].get("train_seeds") is None
    precision = results["spec"].get("precision", "fp32")
    for method, r in results["methods"].items():
        acc, f1 = r["accuracy"]["per_probe"], r["macro_f1"]["per_probe"]
        for rep, per_probe in acc.items():
            for probe_seed, matrix in per_probe.items():
                for i, stage in enumerate(r["stages"]):
                    for j, task in enumerate(results["spec"]["tasks"]):
                        a, f = matrix[i][j], f1[rep][probe_seed][i][j]
                        if is_number(a):
                            writer.writerow([method, i, stage, task, "" if one_run else rep, probe_seed,
                                             repr(float(a)), repr(float(f)) if is_number(f) else "", precision])
    return buf.getvalue()

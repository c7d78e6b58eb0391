"""Markdown tables and phrases of the continual-learning report, one function per table;
``report_files`` assembles them into report.md and the README section.

All take the dict of ``report.build_results`` (fractions; NaN or None where missing) and
show accuracy in %, gains in accuracy points, forgetting in % of the starting accuracy.
"""

import math
from typing import List, Optional

from espnet2_sonar.eval.verdict import FLOOR, MEASURABLE_MARGIN, base_accuracy, clears


def is_number(v) -> bool:
    return v is not None and math.isfinite(v)


def fmt(stat: Optional[dict], signed: bool = False, n_seeds: Optional[int] = None) -> str:
    """``{"mean", "std"[, "n"]}`` (fractions) -> ``"81.2 ± 1.0"`` in % / points; ``"—"`` if missing.

    A number over one replicate reads ``"81.2 (n=1)"``, never ``± 0.0``; with ``n_seeds``, a
    number averaged over fewer replicates than expected also says so: ``"81.2 ± 3.0 (n=2)"``.
    """
    if not stat or not is_number(stat.get("mean")):
        return "—"
    text = f"{stat['mean'] * 100:+.1f}" if signed else f"{stat['mean'] * 100:.1f}"
    n = stat.get("n")
    if n == 1:
        return text + " (n=1)"
    text += f" ± {stat['std'] * 100:.1f}" if is_number(stat.get("std")) else ""
    if n_seeds is not None and n is not None and n < n_seeds:
        text += f" (n={n})"
    return text


def n_replicates(results: dict) -> int:
    """Replicates behind the method numbers: training runs, or probe seeds for a one-run report."""
    spec = results["spec"]
    return spec.get("n_replicates") or len(spec["seeds"])


def replicate_sentence(results: dict) -> str:
    """What the ± means in this report, in words."""
    spec = results["spec"]
    probes = ", ".join(map(str, spec["seeds"]))
    if spec.get("train_seeds") is not None:
        return (f"mean ± std (sample std) over {len(spec['train_seeds'])} training runs (training seeds "
                f"{', '.join(map(str, spec['train_seeds']))}: masks, replay draw, head init, data order), each run's "
                f"numbers first averaged over probe seeds {probes}")
    return (f"mean ± std (sample std) over probe seeds {probes} of one training run (error bars cover probe "
            "seeds only, not training runs)")


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_table(results: dict) -> str:
    header = ["method", "mean adaptation gain (pts)", "mean forgetting, old tasks (%)",
              "backward forgetting, adapted tasks (%)"]
    n = n_replicates(results)
    rows = [[f"**{m}**", fmt(r["mean_gain"], True, n), fmt(r["mean_forgetting_old"], False, n),
             fmt(r["mean_backward_forgetting"], False, n)] for m, r in results["methods"].items()]
    return markdown_table(header, rows)


def _interval_text(interval: Optional[dict], scale: float = 100.0, unit: str = "") -> str:
    if not interval or not (is_number(interval.get("low")) and is_number(interval.get("high"))):
        return "no test (fewer than 2 replicates)"
    return (f"{interval['level'] * 100:.0f}% CI [{interval['low'] * scale:+.1f}, {interval['high'] * scale:+.1f}]{unit}"
            if scale != 1.0 else
            f"{interval['level'] * 100:.0f}% CI [{interval['low']:+.3f}, {interval['high']:+.3f}]")


def _pm(mean, std, scale=100.0, signed=False, digits=1) -> str:
    if not is_number(mean):
        return "—"
    text = f"{mean * scale:+.{digits}f}" if signed else f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if is_number(std) else "")


def verdict_text(v: dict, method_stats: Optional[dict] = None) -> str:
    """The SONAR-vs-DCP verdict in words: each criterion's point estimates, its noise-tested answer
    (yes / no / not distinguishable) and the test's interval. ``method_stats``: ``results["summary"]``
    (adds the stds to the point estimates)."""
    if not v.get("available"):
        return f"**Verdict: undetermined** ({v.get('reason')})."
    share, fshare = v["gain_share_required"], v.get("forgetting_share_allowed", 1.0)
    st = method_stats or {}

    def std(m, key):
        return (st.get(m) or {}).get(key, {}).get("std")

    fratio = "" if v.get("forgetting_ratio") is None else f" ({v['forgetting_ratio'] * 100:.0f}% of DCP's)"
    gratio = "" if v.get("gain_ratio") is None else f" ({v['gain_ratio'] * 100:.0f}% of DCP's)"
    f_answer, g_answer = v.get("forgetting_answer", "not distinguishable"), v.get("gain_answer", "not applicable")
    if g_answer == "not applicable":
        dgi = v.get("dcp_gain_interval")
        why = ("DCP's gain is not positive beyond noise" + (f": {_interval_text(dgi, unit=' pts')}" if dgi else
                                                             ", no test with one replicate"))
        gain_line = f"**not applicable** ({why})"
    else:
        gain_line = f"**{g_answer}** (SONAR − {share:.1f} × DCP: {_interval_text(v.get('gain_interval'), unit=' pts')})"
    lines = [
        f"- Forgetting on old tasks: SONAR {_pm(v['sonar_forgetting'], std('sonar', 'mean_forgetting_old'))}% vs DCP "
        f"{_pm(v['dcp_forgetting'], std('dcp', 'mean_forgetting_old'))}%{fratio}. At most {fshare * 100:.0f}% of DCP's: "
        f"**{f_answer}** (SONAR − {fshare:.1f} × DCP: {_interval_text(v.get('forgetting_interval'), unit=' % pts')}).",
        f"- Adaptation gain: SONAR {_pm(v['sonar_gain'], std('sonar', 'mean_gain'), signed=True)} pts vs DCP "
        f"{_pm(v['dcp_gain'], std('dcp', 'mean_gain'), signed=True)} pts{gratio}. At least {share * 100:.0f}% of "
        f"DCP's gain: {gain_line}.",
    ]
    dv = v.get("drift")
    if dv:
        interval = dv.get("interval")
        lines.append(
            f"- Supplementary, label-free: representation drift from the base on held-out `{dv['audio']}` audio "
            f"after the last stage (last layer, 1 − cos): SONAR {_pm(dv['sonar'], dv.get('sonar_std'), 1.0, digits=3)} "
            f"vs DCP {_pm(dv['dcp'], dv.get('dcp_std'), 1.0, digits=3)}. SONAR drifts less: "
            f"**{dv.get('answer', 'yes' if dv['sonar_lower'] else 'no')}** ({_interval_text(interval, 1.0)}).")
    if v.get("noise_test"):
        lines.append(f"- Noise test: {v['noise_test']}; {v.get('replicates', '?')} replicate(s) per method.")
    if v.get("note"):
        lines.append(f"- Note: {v['note']}.")
    if v["sonar_wins"] and v.get("old_tasks_below_chance"):
        head = ("**Verdict: SONAR meets both criteria beyond noise**, with a caveat: the base model is below "
                f"chance on {', '.join(v['old_tasks_below_chance'])} (see the note).")
    elif v["sonar_wins"]:
        head = ("**Verdict: SONAR meets both criteria beyond noise** (at most a fifth of DCP's forgetting while "
                "keeping most of its gain).")
    elif v.get("measurable") is False:
        weak = v["old_tasks_not_learnt"] + v.get("old_tasks_narrow_margin", [])
        head = ("**Verdict: not measurable on this run**: the base model has not learnt the old task(s) "
                f"{', '.join(weak)} (it does not clear the random-init floor by {MEASURABLE_MARGIN * 100:.0f} "
                "points or more), so neither method has enough there to forget.")
    else:
        head = (f"**Verdict: SONAR does not meet both criteria** (forgetting: {f_answer}; gain: {g_answer}).")
    return head + "\n\n" + "\n".join(lines) + "\n"


def _clears(stat: dict, floor: dict) -> str:
    if not (is_number(stat.get("mean")) and is_number(floor.get("mean"))):
        return "—"
    above = clears(stat["mean"], stat.get("std"), floor["mean"], floor.get("std"))
    return f"{(stat['mean'] - floor['mean']) * 100:+.1f}" + ("" if above else " **no**")


def own_floor(name: str, refs: dict) -> str:
    """The floor an encoder named ``name`` (a method, ``method/stage`` or a reference) must clear:
    ``<method>/random`` when the run has one (a method whose architecture differs from the base
    model's, e.g. DECAR's EfficientNet: its own network before training), else ``random``."""
    method = name.split("/")[0]
    own = f"{method}/random"
    return own if own in refs and name != own else FLOOR


def floor_table(results: dict) -> Optional[str]:
    """Per encoder (base, every method's last stage, other references) and task: the margin over
    its random-init floor (:func:`own_floor`), marked **no** where within seed noise or below."""
    spec, refs = results["spec"], results.get("references") or {}
    if not refs.get(FLOOR) or not results["methods"]:
        return None

    def row(label: str, name: str, stats: List[dict]) -> list:
        floor = own_floor(name, refs)
        label += "" if floor == FLOOR else f" vs `{floor}`"
        return [label] + [_clears(stat, refs[floor][t]) for stat, t in zip(stats, spec["tasks"])]

    first = base_accuracy(results["methods"])
    rows = [row("base", "base", [{"mean": first["mean"][0][j], "std": first["std"][0][j]}
                                 for j in range(len(spec["tasks"]))])]
    for m, r in results["methods"].items():
        acc = r["accuracy"]
        rows.append(row(f"{m} (after {spec['domains'][-1]})", m,
                        [{"mean": acc["mean"][-1][j], "std": acc["std"][-1][j]} for j in range(len(spec["tasks"]))]))
    for name, per_task in refs.items():
        if name != FLOOR:
            rows.append(row(name, name, [per_task[t] for t in spec["tasks"]]))
    return markdown_table(["encoder"] + [task_head(results, t) for t in spec["tasks"]], rows)


def task_floor_table(results: dict) -> Optional[str]:
    """Task x (domain, chance, every reference, learnable) from ``results['task_floors']``."""
    floors = results.get("task_floors") or {}
    if not floors:
        return None
    spec = results["spec"]
    names = list(dict.fromkeys(n for e in floors.values() for n in e["references"]))
    rows = []
    for task, e in floors.items():
        chance = "—" if e["chance"] is None else f"{e['chance'] * 100:.1f}"
        learnable = "—" if e["learnable"] is None else ("yes" if e["learnable"] else "**no**")
        rows.append([task, spec["task_domain"][task] + (" (old)" if task in spec["old_tasks"] else ""), chance]
                    + [fmt(e["references"].get(n)) for n in names] + [learnable])
    return markdown_table(["task", "domain", "chance"] + [f"`{n}`" for n in names] + ["learnable"], rows)


def stage_labels(results: dict, method: Optional[str] = None) -> List[str]:
    """``0 base``, ``1 +music``, ...; stage 0 is named after ``method``'s own stage 0 (e.g.
    ``0 decar/prior``), or after every method's when none is given."""
    methods = [method] if method else list(results["methods"])
    first = " / ".join(dict.fromkeys(results["methods"][m]["stages"][0] for m in methods)) or "base"
    return [f"0 {first}"] + [f"{k} +{d}" for k, d in enumerate(results["spec"]["domains"], start=1)]


def stage0_note(results: dict) -> str:
    """A sentence naming the methods whose stage 0 is not the shared base model ('' if none)."""
    own = {m: r["stages"][0] for m, r in results["methods"].items() if r["stages"][0] != "base"}
    if not own:
        return ""
    names = ", ".join(f"{m} from `{name}`" for m, name in own.items())
    return (f" Stage 0 is the shared base model except for {names}: its own pre-training on the prior "
            "pool, which its gain and forgetting are measured against.")


def task_head(results: dict, task: str) -> str:
    return f"{task} ({results['spec']['task_domain'][task]})"


def accuracy_table(results: dict, method: str) -> str:
    spec, acc = results["spec"], results["methods"][method]["accuracy"]
    stages = stage_labels(results, method)
    rows = []
    for i, stage in enumerate(stages):
        cells = []
        for j, task in enumerate(spec["tasks"]):
            cell = fmt({"mean": acc["mean"][i][j], "std": acc["std"][i][j], "n": acc["n"][i][j]},
                       n_seeds=n_replicates(results))
            cells.append(f"**{cell}**" if i > 0 and spec["task_domain"][task] == spec["domains"][i - 1] else cell)
        rows.append([stage] + cells)
    return markdown_table(["after stage"] + [task_head(results, t) for t in spec["tasks"]], rows)


def per_task_table(results: dict, key: str, mean_key: str, signed: bool) -> Optional[str]:
    tasks = list(next(iter(results["methods"].values()))[key])
    if not tasks:
        return None
    any_entry = next(iter(results["methods"].values()))[key]

    def head(t):
        e = any_entry[t]
        span = f"stage {e['stage']}" if "stage" in e else f"stages {e['from_stage']}\u2192{e['to_stage']}"
        return f"{t} ({e['domain']}, {span})"

    n = n_replicates(results)
    rows = [[f"**{m}**"] + [fmt(r[key][t], signed, n) for t in tasks] + [fmt(r[mean_key], signed, n)]
            for m, r in results["methods"].items()]
    return markdown_table(["method"] + [head(t) for t in tasks] + ["mean"], rows)


def _ref_replicates(per_task: dict) -> str:
    """How a reference's ± was taken: over random inits of each training seed, or probe seeds."""
    kinds = {e.get("replicates") for e in per_task.values() if e.get("n")}
    return "inits (training seeds)" if kinds == {"training seeds"} else "probe seeds"


def _drift_cell(mean: float, std: float, n: int) -> str:
    if n == 1:
        return f"{mean:.4f} (n=1)"
    return f"{mean:.4f} ± {std:.4f}" if is_number(std) else f"{mean:.4f}"


def new_task_floor_table(results: dict) -> Optional[str]:
    """Per new task: base and each method right after adapting, minus the random-init floor."""
    check = {t: e for t, e in (results.get("new_task_floor") or {}).items() if e.get("floor") is not None}
    if not check:
        return None
    methods = list(results["methods"])
    rows = []
    for t, e in check.items():
        floor = {"mean": e["floor"], "std": e["floor_std"]}
        rows.append([f"{t} (stage {e['stage']})", fmt(floor), _clears({"mean": e["base"], "std": e["base_std"]}, floor)]
                    + [_clears(e["after"][m], floor) for m in methods])
    return markdown_table(["new task", "random floor (%)", "base − floor (pts)"] + [f"{m} − floor (pts)" for m in methods], rows)


def codebook_table(results: dict) -> Optional[str]:
    codebook = results.get("codebook") or {}
    keys = ["codebook_size", "code_perplexity", "dead_codes", "protected_codes"]
    rows = []
    for method, per in codebook.items():
        for k, domain in enumerate(results["spec"]["domains"], start=1):
            st = per.get(domain)
            if st:
                last = [st[key][-1] if key in st and st[key] else None for key in keys]
                rows.append([method, f"{k} +{domain}", *("—" if not is_number(v) else f"{v:.1f}" for v in last)])
    if not rows:
        return None
    return markdown_table(["method", "stage", "codebook size", "usage perplexity", "dead codes", "protected codes"], rows)


def reference_table(results: dict) -> Optional[str]:
    """Encoders outside the stage matrix (``results["references"]``), one row each; None: none."""
    refs, tasks = results.get("references") or {}, results["spec"]["tasks"]
    if not refs:
        return None
    header = ["encoder", "± over"] + [task_head(results, t) for t in tasks]
    rows = [[f"**{name}**", _ref_replicates(refs[name])] + [fmt(refs[name][t]) for t in tasks] for name in refs]
    return markdown_table(header, rows)


def old_task_floor_table(results: dict) -> Optional[str]:
    """Did the base learn each old task (``results["old_task_floor"]``)? None: no task checked."""
    floor = results.get("old_task_floor") or {}
    checked = {t: e for t, e in floor.items() if e["learnt"] is not None}
    if not checked:
        return None
    rows = [[t, fmt({"mean": e["base"], "std": e["base_std"]}), fmt({"mean": e["floor"], "std": e["floor_std"]}),
             "yes" if e["learnt"] else "**no**",
             "—" if e.get("margin") is None else f"{e['margin'] * 100:+.1f}"
             + ("" if e.get("wide_margin") else " **narrow**"),
             "—" if e.get("chance") is None else f"{e['chance'] * 100:.1f}",
             "—" if e.get("above_chance") is None else ("yes" if e["above_chance"] else "**no**")]
            for t, e in checked.items()]
    return markdown_table(["old task", "base (%)", "random floor (%)", "clears the floor", "margin (pts)", "chance (%)",
                           "base above chance"], rows)


def drift_table(results: dict) -> Optional[str]:
    """Drift from the base per method, audio set and stage, random init last; None: no method's."""
    spec = results["spec"]
    drift = {m: d for m, d in (results.get("drift") or {}).items() if m != "random"}
    if not drift:
        return None
    sets = sorted({k for d in drift.values() for k in d})
    header = ["method", "audio"] + [f"{k} +{d}" for k, d in enumerate(spec["domains"], start=1)]
    rows = [[f"**{m}**", a] + [_drift_cell(mu, sd, drift[m][a]["n"])
                               for mu, sd in zip(drift[m][a]["mean"], drift[m][a]["std"])]
            for m in drift for a in sets if a in drift[m]]
    rand = (results.get("drift") or {}).get("random")
    if rand:
        rows += [["random init", a, f"{rand[a]['mean'][0]:.4f}"] + [""] * (len(spec["domains"]) - 1)
                 for a in sets if a in rand]
    return markdown_table(header, rows)

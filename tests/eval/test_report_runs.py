"""Training seeds in the report: probe seeds nested in training runs, error bars over runs,
noise-tested verdicts, per-run drift."""

import csv
import io
import json
import math

import numpy as np
import pytest

from espnet2_sonar.eval.report import ReportSpec, build_results, load_probe_results
from espnet2_sonar.eval.report_files import report_markdown, results_csv
from espnet2_sonar.eval.verdict import load_drift

TASKS = ["old", "inst"]
DOMAINS = ["music"]
TASK_DOMAIN = {"old": "prior", "inst": "music"}


def _write(root, name, task, seed, acc):
    path = root / name / task / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": acc, "macro_f1": acc, "seed": seed}))


def make_runs(root, sonar_old, dcp_old, inst=0.6, probe_jitter=0.01):
    """Base old=0.8, inst=0.5; per training run t the last-stage old-task accuracy given per method;
    probe seeds 0/1 add -/+ probe_jitter."""
    for p, j in enumerate((-probe_jitter, probe_jitter)):
        _write(root, "base", "old", p, 0.8 + j)
        _write(root, "base", "inst", p, 0.5 + j)
        for t, (s, d) in enumerate(zip(sonar_old, dcp_old)):
            _write(root, f"tseed{t}/sonar/music", "old", p, s + j)
            _write(root, f"tseed{t}/dcp/music", "old", p, d + j)
            _write(root, f"tseed{t}/sonar/music", "inst", p, inst + j)
            _write(root, f"tseed{t}/dcp/music", "inst", p, inst + j)


def spec(train_seeds):
    return ReportSpec(methods=["sonar", "dcp"], domains=DOMAINS, tasks=TASKS, task_domain=TASK_DOMAIN,
                      train_seeds=train_seeds)


@pytest.mark.timeout(60)
def test_error_bars_are_over_training_runs_with_probe_seeds_nested(tmp_path):
    make_runs(tmp_path, sonar_old=[0.79, 0.78, 0.80], dcp_old=[0.40, 0.50, 0.45])
    sp = spec([0, 1, 2])
    probes = load_probe_results(tmp_path, sp)
    assert probes.missing == [] and probes.seeds == [0, 1]
    r = build_results(probes, sp)
    s = r["methods"]["sonar"]
    # per run: the mean over the two probe seeds (the jitter cancels), then mean/std over 3 runs
    per_seed = s["accuracy"]["per_seed"]
    assert sorted(per_seed) == ["0", "1", "2"]
    for run, old in zip("012", (0.79, 0.78, 0.80)):
        assert np.allclose(per_seed[run], [[0.8, 0.5], [old, 0.6]])
    assert s["accuracy"]["n"][1][0] == 3 and s["accuracy"]["std"][1][0] == pytest.approx(0.01)
    assert s["accuracy"]["probe_std"][1][0] == pytest.approx(np.std([-0.01, 0.01], ddof=1))
    forgetting = [(0.8 + j - (x + j)) / (0.8 + j) for x in (0.79, 0.78, 0.80) for j in (-0.01, 0.01)]
    per_run = [np.mean(forgetting[i:i + 2]) for i in (0, 2, 4)]
    assert s["mean_forgetting_old"]["per_seed"] == pytest.approx(dict(zip("012", per_run)))
    assert s["mean_forgetting_old"]["std"] == pytest.approx(np.std(per_run, ddof=1))
    assert r["spec"]["train_seeds"] == [0, 1, 2] and r["spec"]["replicates"] == "training runs"
    v = r["verdict"]
    # SONAR forgets ~1%, DCP ~44%: below a fifth of DCP's beyond noise; DCP gains 10 points on
    # every run, SONAR the same: at least 90% of it beyond noise
    assert v["forgetting_answer"] == "yes" and v["dcp_gain_positive"] == "yes" and v["replicates"] == 3
    md = report_markdown(r, {})
    assert "over 3 training runs (training seeds 0, 1, 2" in md and "Training seeds: 0, 1, 2" in md
    rows = list(csv.DictReader(io.StringIO(results_csv(r))))
    assert {x["train_seed"] for x in rows} == {"0", "1", "2"} and {x["probe_seed"] for x in rows} == {"0", "1"}
    assert len(rows) == 2 * 3 * 2 * 2 * 2  # methods x runs x probe seeds x stages x tasks


@pytest.mark.timeout(60)
def test_one_training_run_shows_n_equals_1_and_no_verdict_beyond_noise(tmp_path):
    make_runs(tmp_path, sonar_old=[0.79], dcp_old=[0.40])
    sp = spec([0])
    r = build_results(load_probe_results(tmp_path, sp), sp)
    assert r["methods"]["sonar"]["mean_forgetting_old"]["n"] == 1
    assert math.isnan(r["methods"]["sonar"]["mean_forgetting_old"]["std"])
    md = report_markdown(r, {})
    assert "± 0.0" not in md and "(n=1)" in md
    v = r["verdict"]
    assert v["forgetting_ok"] and v["forgetting_answer"] == "not distinguishable" and not v["sonar_wins"]


@pytest.mark.timeout(60)
def test_a_missing_training_run_is_listed_and_counted(tmp_path):
    make_runs(tmp_path, sonar_old=[0.79, 0.78], dcp_old=[0.40, 0.50])
    sp = spec([0, 1, 2])  # run 2 was never trained
    probes = load_probe_results(tmp_path, sp)
    assert "tseed2/sonar/music/old/seed0.json" in probes.missing
    r = build_results(probes, sp)
    assert r["methods"]["sonar"]["accuracy"]["n"][1][0] == 2
    assert "(n=2)" in report_markdown(r, {})


@pytest.mark.timeout(60)
def test_drift_is_read_per_training_run_and_noise_tested(tmp_path):
    from espnet2_sonar.eval.verdict import drift_verdict

    sp = spec([0, 1, 2])
    drift = {f"tseed{t}/{m}/music": {"prior": {"last": v}}
             for t, (s, d) in enumerate([(0.05, 0.50), (0.07, 0.55), (0.06, 0.60)])
             for m, v in (("sonar", s), ("dcp", d))}
    drift["random"] = {"prior": {"last": 0.95}}
    (tmp_path / "drift.json").write_text(json.dumps({"drift": drift}))
    loaded = load_drift(tmp_path, sp)
    assert loaded["sonar"]["prior"]["mean"] == pytest.approx([0.06]) and loaded["sonar"]["prior"]["n"] == 3
    assert loaded["dcp"]["prior"]["per_run"] == {"0": [0.5], "1": [0.55], "2": [0.6]}
    dv = drift_verdict(loaded)
    assert dv["answer"] == "yes" and dv["interval"]["high"] < 0
    # a run missing from the file leaves the method out rather than averaging fewer runs silently
    del drift["tseed2/dcp/music"]
    (tmp_path / "drift.json").write_text(json.dumps({"drift": drift}))
    assert "dcp" not in load_drift(tmp_path, sp)


@pytest.mark.timeout(60)
def test_the_shared_base_row_is_stated_over_probe_seeds_and_a_per_run_floor_over_runs(tmp_path):
    from espnet2_sonar.eval.report import reference_results

    make_runs(tmp_path, sonar_old=[0.79, 0.78, 0.80], dcp_old=[0.40, 0.50, 0.45], probe_jitter=0.02)
    for t, floor in enumerate((0.30, 0.40, 0.35)):  # one random init per training seed
        for p in (0, 1):
            for task in TASKS:
                _write(tmp_path, f"tseed{t}/random", task, p, floor)
    for p in (0, 1):
        for task in TASKS:
            _write(tmp_path, "logmel", task, p, 0.5 + 0.1 * p)
    sp = spec([0, 1, 2])
    probes = load_probe_results(tmp_path, sp)
    refs = reference_results(tmp_path, sp, ["random", "logmel"], probes.seeds)
    assert refs["random"]["old"]["replicates"] == "training seeds" and refs["random"]["old"]["n"] == 3
    assert refs["random"]["old"]["std"] == pytest.approx(0.05)
    assert refs["logmel"]["old"]["replicates"] == "probe seeds"
    assert refs["logmel"]["old"]["std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    r = build_results(probes, sp, references=refs)
    acc = r["methods"]["sonar"]["accuracy"]
    # the base row: identical in every run, so over runs its std would be 0 by construction
    assert acc["stage0_replicates"] == "probe seeds" and acc["n"][0][0] == 2
    assert acc["std"][0][0] == pytest.approx(np.std([0.78, 0.82], ddof=1))
    md = report_markdown(r, {})
    assert "Row 0 is the shared base model" in md and "inits (training seeds)" in md
    assert r["old_task_floor"]["old"]["floor_std"] == pytest.approx(0.05)

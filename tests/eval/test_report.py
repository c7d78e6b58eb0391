"""Continual-learning report: formulas on a hand-computed example, verdict, missing results, outputs."""

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest

from espnet2_sonar.eval.report import (ReportSpec, build_results, load_codebook_stats, load_probe_results,
                                       to_json, verdict)
from espnet2_sonar.eval.report_files import readme_section, report_markdown, results_csv

from report_fixtures import ACC, DOMAINS, S2, TASK_DOMAIN, TASKS, spec, write_probes

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
def test_matrix_gain_forgetting_follow_the_formulas(tmp_path):
    write_probes(tmp_path)
    probes = load_probe_results(tmp_path, spec())
    assert probes.seeds == [0, 1] and probes.missing == []
    r = build_results(probes, spec())
    s = r["methods"]["sonar"]
    # A[2][langid] over seeds: 0.76, 0.54
    assert s["accuracy"]["mean"][2][0] == pytest.approx(0.65)
    assert s["accuracy"]["std"][2][0] == pytest.approx(0.22 / S2)
    assert s["accuracy"]["per_seed"]["1"][1] == pytest.approx([0.57, 0.60, 0.50])
    assert r["methods"]["dcp"]["accuracy"]["mean"][0] == s["accuracy"]["mean"][0]  # shared base
    # gains: instrument at stage 1, animal at stage 2
    assert s["gain"]["instrument"]["stage"] == 1 and s["gain"]["animal"]["stage"] == 2
    assert s["gain"]["instrument"]["per_seed"] == pytest.approx({"0": 0.20, "1": 0.20})
    assert s["gain"]["animal"]["mean"] == pytest.approx(0.25)
    assert s["gain"]["animal"]["std"] == pytest.approx(0.10 / S2)
    assert s["mean_gain"]["per_seed"] == pytest.approx({"0": 0.20, "1": 0.25})
    assert s["mean_gain"]["mean"] == pytest.approx(0.225)
    # forgetting on the old task langid (speech): (A0 - AK) / A0 per seed
    assert list(s["forgetting_old"]) == ["langid"]
    assert s["forgetting_old"]["langid"]["per_seed"] == pytest.approx({"0": 0.05, "1": 0.10})
    assert s["mean_forgetting_old"]["mean"] == pytest.approx(0.075)
    assert s["mean_forgetting_old"]["std"] == pytest.approx(0.05 / S2)
    # backward forgetting: instrument from stage 1 to 2; the last domain has none
    assert list(s["backward_forgetting"]) == ["instrument"]
    assert s["backward_forgetting"]["instrument"]["per_seed"] == pytest.approx({"0": 0.04 / 0.70, "1": 0.10 / 0.60})
    d = r["methods"]["dcp"]
    assert d["mean_forgetting_old"]["mean"] == pytest.approx(0.5)
    assert d["mean_gain"]["mean"] == pytest.approx(0.2375)
    v = r["verdict"]
    assert v["available"] and v["forgetting_lower"] and v["gain_ok"]
    assert v["gain_ratio"] == pytest.approx(0.225 / 0.2375)  # >= 90% in the means
    assert v["forgetting_ratio"] == pytest.approx(0.075 / 0.5) and v["forgetting_ok"]  # <= 20% in the means
    # ... but two replicates this close cannot tell the criteria apart: no win on point estimates
    assert v["dcp_gain_positive"] == "yes" and v["gain_answer"] == "not distinguishable"
    assert v["forgetting_answer"] == "not distinguishable" and not v["sonar_wins"]
    assert v["forgetting_interval"]["diff"] == pytest.approx(0.075 - 0.2 * 0.5)
    assert r["summary"]["sonar"]["mean_gain"]["mean"] == pytest.approx(0.225)


def report_markdown_verdict(v):
    from espnet2_sonar.eval.report_tables import verdict_text

    return verdict_text(v)


def _m(forgetting, gain, spread=0.01):
    """A method's summary with three replicates around the given means (± spread)."""
    def stat(mean):
        values = [mean - spread, mean, mean + spread]
        return {"mean": mean, "std": spread, "n": 3, "per_seed": {str(i): v for i, v in enumerate(values)}}
    return {"mean_forgetting_old": stat(forgetting), "mean_gain": stat(gain)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "sonar, dcp, forgetting, gain",
    [((0.05, 0.25), (0.50, 0.22), "yes", "yes"),
     ((0.50, 0.25), (0.05, 0.22), "no", "yes"),    # forgetting flipped
     ((0.15, 0.25), (0.50, 0.22), "no", "yes"),    # lower, but 0.15 > 0.2 * 0.50 beyond noise
     ((0.05, 0.15), (0.50, 0.22), "yes", "no"),    # 0.15 < 0.9 * 0.22 beyond noise
     ((0.09, 0.20), (0.50, 0.22), "not distinguishable", "not distinguishable"),  # at the edges
     ((0.05, 0.00), (0.50, -0.01), "yes", "not applicable")],  # DCP gains nothing: the criterion does not apply
)
def test_verdict_answers_each_criterion_with_a_noise_test(sonar, dcp, forgetting, gain):
    v = verdict({"sonar": _m(*sonar), "dcp": _m(*dcp)})
    assert v["forgetting_lower"] is (sonar[0] < dcp[0]) and v["replicates"] == 3
    assert v["forgetting_answer"] == forgetting and v["gain_answer"] == gain
    assert v["sonar_wins"] is (forgetting == "yes" and gain == "yes")
    text = report_markdown_verdict(v)
    assert f"**{forgetting}**" in text and f"**{gain}**" in text and "Welch" in text
    if gain == "not applicable":
        assert "does not apply" in v["note"]
    assert v["sonar_forgetting"] == sonar[0] and v["dcp_gain"] == dcp[1]


@pytest.mark.timeout(60)
def test_a_wide_spread_over_training_runs_is_not_distinguishable_and_one_run_cannot_be_tested():
    wide = verdict({"sonar": _m(0.05, 0.25, spread=0.3), "dcp": _m(0.50, 0.22, spread=0.3)})
    assert wide["forgetting_answer"] == "not distinguishable" and not wide["sonar_wins"]
    assert wide["forgetting_ok"] is True  # the means alone would have passed
    one = {"mean_forgetting_old": {"mean": 0.05, "std": math.nan, "n": 1, "per_seed": {"0": 0.05}},
           "mean_gain": {"mean": 0.3, "std": math.nan, "n": 1, "per_seed": {"0": 0.3}}}
    dcp = {"mean_forgetting_old": {"mean": 0.5, "std": math.nan, "n": 1, "per_seed": {"0": 0.5}},
           "mean_gain": {"mean": 0.2, "std": math.nan, "n": 1, "per_seed": {"0": 0.2}}}
    v = verdict({"sonar": one, "dcp": dcp})
    assert v["forgetting_answer"] == "not distinguishable" and v["gain_answer"] == "not applicable"
    assert "no noise test is possible" in v["note"] and not v["sonar_wins"]


@pytest.mark.timeout(60)
def test_welch_interval_matches_scipy_and_covers_the_true_difference():
    from scipy import stats

    from espnet2_sonar.eval.verdict import welch_interval

    a, b = [0.1, 0.3, 0.2, 0.25], [0.5, 0.9, 0.6]
    iv = welch_interval(a, b, 1.0, 0.90)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.90)
    assert iv["low"] == pytest.approx(ci.low) and iv["high"] == pytest.approx(ci.high)
    assert welch_interval([0.1], b) is None
    # scaled comparison: a - 0.2 b
    iv2 = welch_interval(a, b, 0.2)
    assert iv2["diff"] == pytest.approx(sum(a) / 4 - 0.2 * sum(b) / 3)


@pytest.mark.timeout(60)
def test_verdict_undetermined_without_dcp_or_numbers():
    assert not verdict({"sonar": _m(0.1, 0.2)})["available"]
    assert not verdict({"sonar": _m(math.nan, 0.2), "dcp": _m(0.1, 0.2)})["available"]


@pytest.mark.timeout(60)
def test_swapping_method_results_flips_the_verdict(tmp_path):
    swapped = {n.replace("sonar", "tmp").replace("dcp", "sonar").replace("tmp", "dcp"): v for n, v in ACC.items()}
    write_probes(tmp_path, swapped)
    v = build_results(load_probe_results(tmp_path, spec()), spec())["verdict"]
    assert v["available"] and not v["forgetting_lower"] and v["gain_ok"] and not v["sonar_wins"]


@pytest.mark.timeout(60)
def test_missing_results_give_nan_and_a_list(tmp_path):
    gone = ["sonar/bio/langid/seed1.json", "dcp/music/animal/seed0.json"]
    write_probes(tmp_path, skip=gone)
    probes = load_probe_results(tmp_path, spec())
    assert sorted(probes.missing) == sorted(gone)
    r = build_results(probes, spec())
    s = r["methods"]["sonar"]
    assert math.isnan(s["accuracy"]["per_seed"]["1"][2][0])
    assert s["accuracy"]["mean"][2][0] == pytest.approx(0.76) and s["accuracy"]["n"][2][0] == 1
    assert math.isnan(s["accuracy"]["std"][2][0])
    assert math.isnan(s["forgetting_old"]["langid"]["per_seed"]["1"])
    assert s["mean_forgetting_old"]["mean"] == pytest.approx(0.05) and s["mean_forgetting_old"]["n"] == 1
    assert r["missing"] == probes.missing
    parsed = json.loads(to_json(r))  # strict JSON: NaN -> null
    assert parsed["methods"]["sonar"]["accuracy"]["std"][2][0] is None
    md = report_markdown(r, {})
    assert "## Missing" in md and all(g in md for g in gone)
    assert "| 2 +bio | 76.0 (n=1) |" in md  # a one-seed cell has no std and says so
    rows = list(csv.DictReader(io.StringIO(results_csv(r))))
    assert len(rows) == 2 * 2 * 3 * 3 - 2  # methods x seeds x stages x tasks, less the missing
    assert not any(x["method"] == "sonar" and x["stage"] == "2" and x["task"] == "langid"
                   and x["probe_seed"] == "1" for x in rows)


@pytest.mark.timeout(60)
def test_bad_inputs_raise_naming_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no probe results"):
        load_probe_results(tmp_path, spec())
    write_probes(tmp_path)
    bad = tmp_path / "base/langid/seed0.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="seed0.json"):
        load_probe_results(tmp_path, spec())
    bad.write_text(json.dumps({"accuracy": 0.5, "seed": 3}))
    with pytest.raises(ValueError, match="seed 0 but"):
        load_probe_results(tmp_path, spec())
    with pytest.raises(ValueError, match="no domain for task"):
        ReportSpec(methods=["sonar"], domains=["music"], tasks=["langid", "weird"], task_domain=TASK_DOMAIN)


def _fake_codebook_run(exp_dir):
    """sonar stages: a reporter state in checkpoint.pth; dcp/music: a train.log only."""
    import torch
    from espnet2.train.reporter import Reporter

    for k, domain in enumerate(DOMAINS):
        rep = Reporter()
        for epoch in (1, 2):
            rep.set_epoch(epoch)
            with rep.observe("train") as sub:
                for step in range(2):
                    sub.register({"loss": 1.0, "codebook_size": 8.0 + 4 * k + 2 * (epoch - 1),
                                  "code_perplexity": 5.0 + step, "dead_codes": 1.0, "codes_added": 0.5})
                    sub.next()
        out = exp_dir / "sonar" / domain
        out.mkdir(parents=True)
        torch.save({"model": {}, "reporter": rep.state_dict(), "optimizers": []}, out / "checkpoint.pth")
    log = exp_dir / "dcp" / "music" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text("x (trainer:1) INFO: 1epoch results: [train] loss=1.000, codebook_size=8.000, time=1 hour, "
                   "2 minutes and 3 seconds, total_count=4, [valid] codebook_size=99.000\n")


@pytest.mark.timeout(120)
def test_codebook_stats_from_checkpoint_and_log(tmp_path):
    _fake_codebook_run(tmp_path)
    cb = load_codebook_stats(tmp_path, spec())
    assert cb["sonar"]["music"]["codebook_size"] == [8.0, 10.0]
    assert cb["sonar"]["bio"]["code_perplexity"] == [5.5, 5.5]
    assert "protected_codes" not in cb["sonar"]["music"]
    assert cb["dcp"] == {"music": {"codebook_size": [8.0]}}


@pytest.mark.timeout(180)
def test_cli_writes_report_plots_and_readme_section(tmp_path):
    from espnet2_sonar.bin.report import main

    eval_dir, exp_dir, out = tmp_path / "eval", tmp_path / "exp", tmp_path / "report"
    write_probes(eval_dir, skip=["dcp/bio/animal/seed1.json"])
    _fake_codebook_run(exp_dir)
    main(["--eval_dir", str(eval_dir), "--exp_dir", str(exp_dir), "--methods", "sonar dcp",
          "--domains", "music bio", "--tasks", "langid instrument animal", "--out_dir", str(out),
          "--task_domain", "langid=speech,instrument=music,animal=bio"])
    for name in ["accuracy_matrix_sonar.png", "accuracy_matrix_dcp.png", "gain_vs_forgetting.png",
                 "per_stage.png", "codebook.png"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (out / name).stat().st_size > 5000, name
    results = json.loads((out / "results.json").read_text())
    assert results["missing"] == ["dcp/bio/animal/seed1.json"]
    # DCP's gain from seed 0 alone (0.25) against SONAR's 0.225: 90%, the edge of the criterion
    assert results["verdict"]["forgetting_ok"] is True and results["verdict"]["gain_ratio"] == pytest.approx(0.9)
    md = (out / "report.md").read_text()
    for needle in ["accuracy_matrix_sonar.png", "gain_vs_forgetting.png", "codebook.png", "Verdict",
                   "dcp/bio/animal/seed1.json", "| 2 +bio |"]:
        assert needle in md, needle
    readme = (out / "README_section.md").read_text()
    assert readme.startswith("## Results") and "bash scripts/run_main.sh" in readme
    # the section renders the same from results.json, quoting the report it wrote (no repository above tmp)
    assert readme == readme_section(results, str(out / "report.md"))
    from espnet2_sonar.bin.report import quoted_path
    assert quoted_path(REPO / "egs2" / "x" / "sonar1" / "exp" / "report" / "report.md") == \
        "egs2/x/sonar1/exp/report/report.md"
    assert (out / "results.csv").read_text().startswith(
        "method,stage,stage_name,task,train_seed,probe_seed,accuracy,macro_f1,precision")
    assert "over probe seeds 0, 1 of one training run (error bars cover probe seeds only" in md


@pytest.mark.timeout(60)
def test_reference_encoders_are_reported_beside_the_matrix(tmp_path):
    from espnet2_sonar.bin.report import main

    eval_dir, out = tmp_path / "eval", tmp_path / "report"
    write_probes(eval_dir, acc={**ACC, "random": {0: [0.2, 0.1, 0.05], 1: [0.3, 0.1, 0.15]}})
    main(["--eval_dir", str(eval_dir), "--methods", "sonar dcp", "--domains", "music bio",
          "--tasks", "langid instrument animal", "--out_dir", str(out),
          "--task_domain", "langid=speech,instrument=music,animal=bio"])
    results = json.loads((out / "results.json").read_text())
    assert set(results["references"]) == {"random"}  # decar/prior is absent: skipped
    assert results["references"]["random"]["langid"]["mean"] == pytest.approx(0.25)
    assert results["references"]["random"]["animal"]["per_seed"] == {"0": 0.05, "1": 0.15}
    assert "## Reference encoders" in (out / "report.md").read_text()
    # notes (what was investigated) end both the report and the README section
    notes = tmp_path / "findings.md"
    notes.write_text("## Findings on valid data\n\nlambda_model 10 kept langid closer to base.\n")
    args = ["--eval_dir", str(eval_dir), "--methods", "sonar dcp", "--domains", "music bio",
            "--tasks", "langid instrument animal", "--out_dir", str(out),
            "--task_domain", "langid=speech,instrument=music,animal=bio"]
    main(args + ["--notes", str(notes)])
    for name in ("report.md", "README_section.md"):
        assert (out / name).read_text().endswith("lambda_model 10 kept langid closer to base.\n")
    with pytest.raises(FileNotFoundError, match="nowhere.md"):
        main(args + ["--notes", str(tmp_path / "nowhere.md")])


@pytest.mark.timeout(60)
def test_a_forgetting_gap_inside_seed_noise_is_flagged():
    assert verdict({"sonar": _m(0.20, 0.1, spread=0.10), "dcp": _m(0.25, 0.1, spread=0.10)})[
        "forgetting_gap_within_noise"] is True
    v = verdict({"sonar": _m(0.05, 0.1, spread=0.01), "dcp": _m(0.50, 0.1, spread=0.02)})
    assert v["forgetting_gap_within_noise"] is False and "note" not in v


@pytest.mark.timeout(60)
def test_drift_is_tabulated_and_compared(tmp_path):
    from espnet2_sonar.bin.report import main

    eval_dir, out = tmp_path / "eval", tmp_path / "report"
    write_probes(eval_dir)
    drift = {name: {"prior": {"per_layer": [0.0, v], "last": v, "mean": v / 2}}
             for name, v in {"sonar/music": 0.02, "sonar/bio": 0.05, "dcp/music": 0.10, "dcp/bio": 0.20,
                             "random": 0.9}.items()}
    (eval_dir / "drift.json").write_text(json.dumps({"drift": drift}))
    results = main(["--eval_dir", str(eval_dir), "--methods", "sonar dcp", "--domains", "music bio",
                    "--tasks", "langid instrument animal", "--out_dir", str(out),
                    "--task_domain", "langid=speech,instrument=music,animal=bio"])
    assert results["drift"]["sonar"]["prior"]["mean"] == [0.02, 0.05]
    assert results["drift"]["random"]["prior"]["mean"] == [0.9]
    dv = results["verdict"]["drift"]
    assert (dv["audio"], dv["sonar"], dv["dcp"], dv["sonar_lower"]) == ("prior", 0.05, 0.20, True)
    assert dv["answer"] == "not distinguishable"  # one training run: no noise test
    md = (out / "report.md").read_text()
    assert "## Representation drift" in md and "| **dcp** | prior | 0.1000 (n=1) | 0.2000 (n=1) |" in md
    assert "SONAR drifts less: **not distinguishable**" in md
    # a drift file with a stage missing for a method leaves that method out, and the comparison with it
    del drift["dcp/bio"]
    (eval_dir / "drift.json").write_text(json.dumps({"drift": drift}))
    results = main(["--eval_dir", str(eval_dir), "--methods", "sonar dcp", "--domains", "music bio",
                    "--tasks", "langid instrument animal", "--out_dir", str(out),
                    "--task_domain", "langid=speech,instrument=music,animal=bio"])
    assert "dcp" not in results["drift"] and results["verdict"]["drift"] is None


@pytest.mark.timeout(60)
def test_a_base_model_below_chance_on_an_old_task_is_a_caveat(tmp_path):
    """Chance = majority-class share of the test set, read from the probe results' per-class counts."""
    write_probes(tmp_path)
    for path in tmp_path.glob("*/langid/seed*.json"):
        data = json.loads(path.read_text())
        data["per_class"] = {"a": {"n_test": 8}, "b": {"n_test": 2}}  # chance 0.8 > base 0.70
        path.write_text(json.dumps(data))
    r = build_results(load_probe_results(tmp_path, spec()), spec())
    check = r["old_task_floor"]["langid"]
    assert check["chance"] == pytest.approx(0.8) and check["above_chance"] is False
    v = r["verdict"]
    assert v["old_tasks_below_chance"] == ["langid"] and "below chance" in v["note"]
    assert "the base model is below chance" in report_markdown(r, {})


@pytest.mark.timeout(60)
def test_floor_table_marks_encoders_that_do_not_clear_random_init(tmp_path):
    from espnet2_sonar.eval.report import reference_results
    from espnet2_sonar.eval.report_tables import floor_table

    # random: langid 0.20, instrument 0.60 (above every instrument score), animal 0.30 (seed spread 0)
    acc = dict(ACC, random={0: [0.2, 0.6, 0.3], 1: [0.2, 0.6, 0.3]})
    write_probes(tmp_path, acc)
    probes = load_probe_results(tmp_path, spec())
    r = build_results(probes, spec(), references=reference_results(tmp_path, spec(), ["random"], probes.seeds))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in floor_table(r).splitlines()[2:]}
    # base langid 0.70 ± 0.14 vs 0.20: clears; base instrument 0.45 vs 0.60: does not
    assert "+50.0 |" in rows["base"] and "-15.0 **no**" in rows["base"]
    # dcp after bio: langid 0.35 ± 0.07 -> +15.0 clears; animal 0.675 ± 0.035 -> +37.5 clears
    assert rows["dcp (after bio)"].startswith("| dcp (after bio) | +15.0 |") and "+37.5 |" in rows["dcp (after bio)"]
    assert floor_table(build_results(probes, spec())) is None  # no random reference: no table


@pytest.mark.timeout(60)
def test_a_method_with_its_own_architecture_is_held_to_its_own_random_init_floor(tmp_path):
    """DECAR's EfficientNet: its rows are compared with `decar/random` (the same network before
    training), not with the BEATs `random`; `decar/random` itself is shown against `random`."""
    from espnet2_sonar.eval.report import reference_results
    from espnet2_sonar.eval.report_tables import floor_table, own_floor

    acc = dict(ACC, **{
        "decar/music": {0: [0.50, 0.50, 0.50], 1: [0.50, 0.50, 0.50]},
        "decar/bio": {0: [0.60, 0.40, 0.40], 1: [0.60, 0.40, 0.40]},
        "decar/prior": {0: [0.55, 0.45, 0.35], 1: [0.55, 0.45, 0.35]},
        "random": {0: [0.20, 0.20, 0.20], 1: [0.20, 0.20, 0.20]},
        "decar/random": {0: [0.50, 0.30, 0.50], 1: [0.50, 0.30, 0.50]},
    })
    write_probes(tmp_path, acc)
    s = ReportSpec(methods=["sonar", "dcp", "decar"], domains=DOMAINS, tasks=TASKS, task_domain=TASK_DOMAIN)
    probes = load_probe_results(tmp_path, s)
    refs = reference_results(tmp_path, s, ["random", "decar/random", "decar/prior"], probes.seeds)
    assert own_floor("decar", refs) == own_floor("decar/prior", refs) == "decar/random"
    assert own_floor("decar/random", refs) == own_floor("sonar", refs) == own_floor("base", refs) == "random"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in floor_table(build_results(probes, s, references=refs)).splitlines()[2:]}
    # decar after bio: 0.60/0.40/0.40 vs its own floor 0.50/0.30/0.50 (not vs random's 0.20)
    assert rows["decar (after bio) vs `decar/random`"].endswith("| +10.0 | +10.0 | -10.0 **no** |")
    assert rows["decar/prior vs `decar/random`"].endswith("| +5.0 | +15.0 | -15.0 **no** |")
    assert rows["decar/random"].endswith("| +30.0 | +10.0 | +30.0 |")
    assert "sonar (after bio)" in rows and "base" in rows  # BEATs rows keep the common floor
    # without decar/random every row falls back to the common floor
    refs.pop("decar/random")
    rows = floor_table(build_results(probes, s, references=refs))
    assert "| decar (after bio) | +40.0 | +20.0 | +20.0 |" in rows and "vs `" not in rows


@pytest.mark.timeout(60)
def test_a_method_with_its_own_prior_stage_is_measured_from_it(tmp_path):
    """DECAR pre-trains on the prior pool itself: its stage 0 is `decar/prior`, not `base`."""
    from espnet2_sonar.bin.report import main

    acc = dict(ACC, **{
        "decar/prior": {0: [0.40, 0.20, 0.10], 1: [0.60, 0.30, 0.30]},
        "decar/music": {0: [0.30, 0.50, 0.10], 1: [0.45, 0.40, 0.30]},
        "decar/bio": {0: [0.20, 0.40, 0.40], 1: [0.30, 0.30, 0.50]},
    })
    write_probes(tmp_path, acc)
    s = ReportSpec(methods=["sonar", "dcp", "decar"], domains=DOMAINS, tasks=TASKS, task_domain=TASK_DOMAIN,
                   stage0={"decar": "decar/prior"})
    assert s.stage_names("decar")[0] == "decar/prior" and s.stage_names("sonar")[0] == "base"
    r = build_results(load_probe_results(tmp_path, s), s)
    d = r["methods"]["decar"]
    assert d["stages"] == ["decar/prior", "music", "bio"] and r["methods"]["sonar"]["stages"][0] == "base"
    # gain from decar/prior: instrument 0.50-0.20, 0.40-0.30; forgetting langid (0.40-0.20)/0.40, (0.60-0.30)/0.60
    assert d["gain"]["instrument"]["per_seed"] == pytest.approx({"0": 0.30, "1": 0.10})
    assert d["forgetting_old"]["langid"]["per_seed"] == pytest.approx({"0": 0.5, "1": 0.5})
    assert r["methods"]["sonar"]["mean_gain"]["mean"] == pytest.approx(0.225)  # unchanged by decar
    assert r["old_task_floor"]["langid"]["base"] == pytest.approx(0.70)  # the shared base, not decar/prior
    md = report_markdown(r, {})
    assert "| 0 decar/prior |" in md and "| 0 base |" in md and "except for decar from `decar/prior`" in md
    # the CLI: DECAR's stage 0 is decar/prior by default; a malformed pair is refused
    out = tmp_path / "report"
    args = ["--eval_dir", str(tmp_path), "--methods", "sonar dcp decar", "--domains", "music bio",
            "--tasks", "langid instrument animal", "--out_dir", str(out),
            "--task_domain", "langid=speech,instrument=music,animal=bio"]
    assert main(args)["methods"]["decar"]["stages"][0] == "decar/prior"
    assert main(args + ["--stage0", "decar=base"])["methods"]["decar"]["stages"][0] == "base"
    with pytest.raises(SystemExit):
        main(args + ["--stage0", "decar"])


@pytest.mark.timeout(30)
def test_the_report_library_names_no_recipe_path_or_corpus_task():
    """A corpus's task -> domain map and a recipe's paths live in the recipe (run.sh's
    ``corpus_task_domain``, sonar.sh stage 7's --task_domain / --out_dir), not in eval/ or bin/report."""
    run_sh = (REPO / "egs2" / "debian_sounds" / "sonar1" / "run.sh").read_text()
    line = re.search(r'^corpus_task_domain="([^"]+)"', run_sh, flags=re.M)
    assert line, "egs2/debian_sounds/sonar1/run.sh sets no corpus_task_domain"
    tasks = [pair.split("=")[0] for pair in line.group(1).split(",")]
    assert {"voice_gender", "prior_sfx", "instrument", "animal", "foley"} <= set(tasks)
    sources = sorted((REPO / "espnet2_sonar" / "eval").glob("*.py")) + [REPO / "espnet2_sonar" / "bin" / "report.py"]
    assert len(sources) > 5
    found = [f"{path.relative_to(REPO)}:{n}: {hit}" for path in sources
             for n, text in enumerate(path.read_text().splitlines(), 1)
             for hit in re.findall(r"egs2/|debian_sounds|\b(?:" + "|".join(tasks) + r")\b", text)]
    assert not found, "recipe knowledge in the library:\n" + "\n".join(found)

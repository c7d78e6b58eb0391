"""Report checks that qualify a verdict: the 10-point margin on old tasks, every task's chance
and floors (learnability), and the per-training-seed base check (``bin/base_check``)."""

import json

import pytest

from espnet2_sonar.eval.report import build_results, load_probe_results
from espnet2_sonar.eval.report_files import report_markdown

from report_fixtures import ACC, spec, write_probes


@pytest.mark.timeout(60)
@pytest.mark.parametrize("floor_langid, learnt", [(0.30, True), (0.69, False)])
def test_an_old_task_at_the_random_floor_makes_forgetting_unmeasurable(tmp_path, floor_langid, learnt):
    """Base langid is 0.70 ± 0.14 over seeds; a floor within that noise means nothing was learnt to forget."""
    from espnet2_sonar.eval.report import reference_results

    acc = dict(ACC, random={0: [floor_langid, 0.3, 0.3], 1: [floor_langid, 0.3, 0.3]})
    write_probes(tmp_path, acc)
    probes = load_probe_results(tmp_path, spec())
    refs = reference_results(tmp_path, spec(), ["random"], probes.seeds)
    r = build_results(probes, spec(), references=refs)
    check = r["old_task_floor"]["langid"]
    assert check["learnt"] is learnt and check["base"] == pytest.approx(0.70) and check["floor"] == pytest.approx(floor_langid)
    v = r["verdict"]
    assert v["measurable"] is learnt and v["forgetting_ok"]  # the means alone favour SONAR
    md = report_markdown(r, {})
    assert ("not measurable" in md) is (not learnt) and "random floor" in md
    # without a floor the check is unknown and does not block the verdict
    assert build_results(probes, spec())["verdict"]["measurable"] is True


@pytest.mark.timeout(60)
def test_an_old_task_cleared_by_less_than_ten_points_is_not_measurable(tmp_path):
    from espnet2_sonar.eval.report import reference_results

    base = {0: [0.70, 0.50, 0.40], 1: [0.70, 0.40, 0.50]}  # langid without seed spread
    for floor, measurable in ((0.65, False), (0.55, True)):
        root = tmp_path / str(floor)
        write_probes(root, dict(ACC, base=base, random={0: [floor, 0.3, 0.3], 1: [floor, 0.3, 0.3]}))
        probes = load_probe_results(root, spec())
        r = build_results(probes, spec(), references=reference_results(root, spec(), ["random"], probes.seeds))
        check = r["old_task_floor"]["langid"]
        assert check["learnt"] is True and check["margin"] == pytest.approx(0.70 - floor)
        assert check["wide_margin"] is measurable and r["verdict"]["measurable"] is measurable
        md = report_markdown(r, {})
        assert ("**narrow**" in md) is (not measurable) and ("not measurable" in md) is (not measurable)


@pytest.mark.timeout(60)
def test_every_task_gets_chance_floors_and_a_learnability_check(tmp_path):
    from espnet2_sonar.eval.report import reference_results
    from espnet2_sonar.eval.verdict import task_floors

    # chance 0.5 on every task; logmel learns instrument only, random learns nothing
    acc = dict(ACC, random={0: [0.45, 0.50, 0.40], 1: [0.55, 0.50, 0.50]},
               logmel={0: [0.50, 0.80, 0.40], 1: [0.50, 0.84, 0.50]})
    write_probes(tmp_path, acc)
    for path in tmp_path.glob("*/*/seed*.json"):
        data = json.loads(path.read_text())
        data["per_class"] = {"a": {"n_test": 5}, "b": {"n_test": 5}}
        path.write_text(json.dumps(data))
    probes = load_probe_results(tmp_path, spec())
    refs = reference_results(tmp_path, spec(), ["random", "logmel"], probes.seeds)
    r = build_results(probes, spec(), references=refs)
    floors = r["task_floors"]
    assert floors["instrument"]["learnable"] is True and floors["instrument"]["learnt_by"] == ["logmel"]
    assert floors["langid"]["learnable"] is False and floors["animal"]["learnable"] is False
    assert floors["langid"]["chance"] == pytest.approx(0.5)
    assert floors["instrument"]["references"]["logmel"]["mean"] == pytest.approx(0.82)
    md = report_markdown(r, {})
    table = md.split("## Tasks: chance, floors and learnability (%)")[1]
    assert "| instrument | music | 50.0 | 50.0 ± 0.0 | 82.0 ± 2.8 | yes |" in table
    assert "| langid | speech (old) | 50.0 |" in table and "**no**" in table
    assert task_floors({}, {"x": 0.5}, ["x"])["x"]["learnable"] is None  # nothing probed: unknown


@pytest.mark.timeout(60)
def test_base_check_passes_only_when_every_training_seed_clears_the_floor_by_the_margin(tmp_path):
    from espnet2_sonar.bin.base_check import main

    def write(name, values):
        for seed, a in enumerate(values):
            path = tmp_path / "eval" / name / "old" / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"accuracy": a, "macro_f1": a}))

    write("random", [0.50, 0.50, 0.50])
    write("seed0", [0.70, 0.72, 0.71])
    write("seed1", [0.58, 0.59, 0.60])  # +9 points: above the noise, short of the margin
    out = tmp_path / "check.json"
    argv = ["--eval_dir", str(tmp_path / "eval"), "--tasks", "old", "--references", "", "--out", str(out)]
    assert main(argv + ["--names", "seed0"]) == 0
    assert main(argv + ["--names", "seed0 seed1"]) == 1
    result = json.loads(out.read_text())
    assert result["checks"]["seed1"]["old"]["clears_noise"] and not result["checks"]["seed1"]["old"]["passes"]
    assert result["checks"]["seed0"]["old"]["margin"] == pytest.approx(0.21)
    assert "**short**" in out.with_suffix(".md").read_text()
    with pytest.raises(FileNotFoundError, match="seed9"):
        main(argv + ["--names", "seed9"])

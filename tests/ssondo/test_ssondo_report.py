"""S-SONDO report: retention per task and on average, size ratio, BDS effect, verdict."""

import json

import pytest

from espnet2_sonar.ssondo.report import build_report, collect, to_markdown, write_report

TASKS = ["langid", "foley"]
ACC = {  # model dir -> task -> accuracies over probe seeds
    "teacher": {"langid": [0.8, 0.8], "foley": [0.6, 0.6]},
    "mnv3_bds_s0": {"langid": [0.7, 0.6], "foley": [0.6, 0.6]},
    "mnv3_bds_s1": {"langid": [0.7, 0.6], "foley": [0.6, 0.6]},
    "mnv3_random_s0": {"langid": [0.4, 0.4], "foley": [0.5, 0.5]},
    "big_bds_s0": {"langid": [0.8, 0.8], "foley": [0.6, 0.6]},
}
PARAMS = {"teacher": 10_000_000, "mnv3": 900_000, "big": 5_000_000}


def _write(eval_dir):
    for model, tasks in ACC.items():
        for task, accs in tasks.items():
            for seed, acc in enumerate(accs):
                f = eval_dir / model / task / f"seed{seed}.json"
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(json.dumps({"accuracy": acc, "ckpt": f"/ckpt/{model.split('_')[0]}.pt"}))
    (eval_dir / "cache").mkdir()


def _count(ckpt):
    name = ckpt.rsplit("/", 1)[1][:-3]
    return PARAMS[name], None if name == "teacher" else 1000


def test_retention_size_ratio_bds_effect_and_verdict(tmp_path):
    _write(tmp_path)
    rows = collect(tmp_path, TASKS, count=_count)
    assert set(rows) == {"teacher", "mnv3_bds", "mnv3_random", "big_bds"}
    assert len(rows["mnv3_bds"].accuracy["langid"]) == 4  # two train seeds x two probe seeds
    report = build_report(rows, TASKS, target=85.0, min_ratio=10.0)
    m = {r["name"]: r for r in report["models"]}
    assert m["mnv3_bds"]["size_ratio"] == pytest.approx(10_000_000 / 900_000)
    assert m["mnv3_bds"]["retained"]["langid"] == pytest.approx(100 * 0.65 / 0.8)
    assert m["mnv3_bds"]["retained"]["foley"] == pytest.approx(100.0)
    assert m["mnv3_bds"]["mean_retained"] == pytest.approx(100 * 0.625 / 0.7)  # ratio of the means
    assert m["mnv3_random"]["mean_retained"] == pytest.approx(100 * 0.45 / 0.7)
    assert [e["student"] for e in report["bds_effect"]] == ["mnv3"]  # big has no random run
    effect = {e["student"]: e for e in report["bds_effect"]}
    assert effect["mnv3"]["delta"] == pytest.approx(0.625 - 0.45)
    # big_bds keeps 100% but is only 2x smaller: not eligible
    assert report["best"] == "mnv3_bds" and report["target_met"] is True
    md = to_markdown(report)
    assert "mnv3_bds" in md and "meets the 85% target" in md
    assert write_report(report, tmp_path / "out").read_text() == md
    assert json.loads((tmp_path / "out" / "report.json").read_text())["best"] == "mnv3_bds"


def test_target_missed_is_said_plainly(tmp_path):
    _write(tmp_path)
    report = build_report(collect(tmp_path, TASKS, count=_count), TASKS, target=95.0)
    assert report["target_met"] is False and "misses the 95% target" in to_markdown(report)


def test_missing_teacher_is_an_error(tmp_path):
    (tmp_path / "mnv3_bds_s0" / "langid").mkdir(parents=True)
    with pytest.raises(ValueError, match="teacher"):
        build_report(collect(tmp_path, TASKS, count=_count), TASKS)

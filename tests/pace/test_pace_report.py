"""Report: seed statistics, Table-1-shaped markdown, CSV, plot, PACE standing, and the two
things the table must not overstate (a one-seed "± 0.0", an unearned "upper bound")."""

import json
import math

import pytest

from espnet2_sonar.pace.report import method_label, summarize, write_report


def _result(ckpt, method, bench, seed, avg, last, fgt, sessions):
    return {
        "format": "pace_result/1", "ckpt_name": ckpt, "seed": seed,
        "method": {"name": method}, "benchmark": {"name": bench},
        "metrics": {"average_accuracy": avg, "last_accuracy": last, "average_forgetting": fgt,
                    "session_accuracy": sessions},
    }


def _write(tmp_path, runs):
    for i, r in enumerate(runs):
        (tmp_path / "res" / str(i)).mkdir(parents=True)
        (tmp_path / "res" / str(i) / "r.json").write_text(json.dumps(r))
    return tmp_path / "res"


def _labels(md, ckpt="base"):
    return [line.split("|")[2].strip() for line in md.splitlines() if line.startswith(f"| {ckpt} ")]


@pytest.mark.timeout(60)
def test_report_tables_and_plot(tmp_path):
    runs = [
        _result("base", "naive", "coarse", 0, 0.40, 0.10, 0.60, [0.9, 0.2, 0.1]),
        _result("base", "naive", "coarse", 1, 0.50, 0.20, 0.40, [0.9, 0.4, 0.2]),
        _result("base", "pace", "coarse", 0, 0.70, 0.60, 0.10, [0.9, 0.6, 0.6]),
        _result("base", "pace", "fine", 0, 0.65, 0.50, 0.20, [0.8, 0.65, 0.5]),
        _result("base", "joint", "coarse", 0, 0.80, 0.70, 0.05, [0.9, 0.8, 0.7]),
    ]
    res = _write(tmp_path, runs)
    (res / "other.json").write_text(json.dumps({"accuracy": 1.0}))  # not a PACE result
    files = write_report(res, tmp_path / "out")
    naive = next(r for r in files.rows if r.method == "naive")
    assert naive.seeds == [0, 1] and naive.n == 2 and naive.avg_mean == pytest.approx(45.0)
    assert naive.avg_std == pytest.approx(7.0711, abs=1e-3)  # sample std (ddof=1) of 40, 50
    assert naive.session_mean == pytest.approx([90.0, 30.0, 15.0])
    pace = next(r for r in files.rows if r.method == "pace")
    assert pace.n == 1 and math.isnan(pace.avg_std)  # one seed: no std, not 0
    md = files.markdown.read_text()
    assert "sample standard deviation (ddof=1)" in md
    lines = [line for line in md.splitlines() if line.startswith("| base")]
    # joint (80.0) is above naive (45.0) and PACE (70.0) on coarse, the one benchmark it ran on
    assert _labels(md) == ["Joint (upper bound)", "Naive fine-tuning", "PACE"]
    assert "Avg columns only" in md and "not an upper bound" not in md
    # most rows have one seed, so the two-seed naive row says its n
    assert "| 45.0 ± 7.1 (n=2) | 15.0 ± 7.1 (n=2) | 50.0 ± 14.1 (n=2) |" in lines[1]
    assert "| 70.0 (n=1) | 60.0 (n=1) | 10.0 (n=1) | 65.0 (n=1) |" in lines[2]
    assert "± 0.0" not in md
    assert lines[0].count("–") == 3  # joint has no fine result
    assert "- base, coarse: PACE Avg 70.0 (+25.0 vs Naive fine-tuning, -10.0 vs Joint (upper bound))" in md
    csv = files.csv.read_text().splitlines()
    assert len(csv) == 1 + 4 and csv[0].startswith("ckpt,method,benchmark")
    assert "base,pace,coarse,0,70.00,,60.00,,10.00,,90.00 60.00 60.00," in csv  # no std for one seed
    assert files.plot.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "out", tmp_path / "out2")


@pytest.mark.timeout(60)
def test_one_seed_says_n1_not_zero_std(tmp_path):
    runs = [
        _result("base", "joint", "fine", 0, 0.649, 0.562, 0.099, [0.75, 0.66, 0.56]),
        _result("base", "analytic", "fine", 0, 0.60, 0.50, 0.10, [0.7, 0.6, 0.5]),
    ]
    md = write_report(_write(tmp_path, runs), tmp_path / "out").markdown.read_text()
    assert "| 64.9 (n=1) | 56.2 (n=1) | 9.9 (n=1) |" in md
    assert "±" not in md.split("\n| checkpoint")[1]  # no spread anywhere in the table
    assert "over 1 seed;" in md


@pytest.mark.timeout(60)
def test_cells_name_their_n_when_it_differs(tmp_path):
    runs = [_result("base", "naive", "coarse", s, a, 0.1, 0.5, [0.9, 0.1]) for s, a in ((0, 0.4), (1, 0.5))]
    runs += [_result("base", "analytic", "coarse", s, a, 0.5, 0.1, [0.9, 0.5]) for s, a in ((0, 0.6), (1, 0.7))]
    runs += [_result("base", "pace", "coarse", s, a, 0.6, 0.1, [0.9, 0.6]) for s, a in ((0, 0.6), (1, 0.7), (2, 0.8))]
    runs += [_result("base", "joint", "coarse", 0, 0.9, 0.8, 0.0, [0.9, 0.8])]
    md = write_report(_write(tmp_path, runs), tmp_path / "out").markdown.read_text()
    assert "over 2 seeds;" in md
    rows = {line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| base ")}
    assert "| 45.0 ± 7.1 |" in rows["Naive fine-tuning"] and "(n=" not in rows["Naive fine-tuning"]
    assert "| 70.0 ± 10.0 (n=3) |" in rows["PACE"]
    assert "| 90.0 (n=1) |" in rows["Joint (upper bound)"]


@pytest.mark.timeout(60)
def test_joint_is_an_upper_bound_only_where_the_numbers_say_so(tmp_path):
    runs = [
        # base: joint above everything on coarse, but Analytic + FSA beats it on fine
        _result("base", "joint", "coarse", 0, 0.650, 0.55, 0.13, [0.8, 0.6, 0.55]),
        _result("base", "joint", "fine", 0, 0.649, 0.56, 0.10, [0.75, 0.6, 0.56]),
        _result("base", "analytic_fsa", "coarse", 0, 0.640, 0.53, 0.12, [0.8, 0.6, 0.53]),
        _result("base", "analytic_fsa", "fine", 0, 0.652, 0.55, 0.11, [0.78, 0.6, 0.55]),
        _result("base", "pace", "fine", 0, 0.621, 0.52, 0.14, [0.73, 0.6, 0.52]),
        # big: joint above everything on both benchmarks
        _result("big", "joint", "coarse", 0, 0.90, 0.85, 0.02, [0.95, 0.9, 0.85]),
        _result("big", "joint", "fine", 0, 0.88, 0.80, 0.03, [0.9, 0.85, 0.8]),
        _result("big", "analytic_fsa", "coarse", 0, 0.80, 0.70, 0.10, [0.9, 0.8, 0.7]),
        _result("big", "pace", "fine", 0, 0.88, 0.79, 0.05, [0.9, 0.85, 0.79]),  # a tie is not "above"
    ]
    files = write_report(_write(tmp_path, runs), tmp_path / "out")
    md = files.markdown.read_text()
    assert _labels(md, "base") == ["Joint (all sessions at once)", "Analytic + FSA", "PACE"]
    assert _labels(md, "big") == ["Joint (upper bound)", "Analytic + FSA", "PACE"]
    assert ("Note (base): joint training is below Analytic + FSA on fine Avg (65.2 vs 64.9) on this run, "
            "so it is not an upper bound here.") in md
    assert "Note (big)" not in md
    assert "Avg columns only" in md  # the criterion, stated once for the "big" row
    assert "- base, fine: PACE Avg 62.1 (-3.1 vs Analytic + FSA, -2.8 vs Joint (all sessions at once))" in md
    assert "- big, fine: PACE Avg 88.0 (+0.0 vs Joint (upper bound))" in md
    # the plot's legend is shared by both checkpoints: no bound claimed there
    assert method_label("joint", None, files.rows) == "Joint (all sessions at once)"
    # with only "big", joint is a bound everywhere and nothing says otherwise
    big = summarize([r for r in runs if r["ckpt_name"] == "big"])
    assert method_label("joint", None, big) == method_label("joint", "big", big) == "Joint (upper bound)"

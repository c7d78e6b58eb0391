"""Report: seed statistics, Table-1-shaped markdown, CSV, plot, PACE standing."""

import json

import pytest

from espnet2_sonar.pace.report import write_report


def _result(ckpt, method, bench, seed, avg, last, fgt, sessions):
    return {
        "format": "pace_result/1", "ckpt_name": ckpt, "seed": seed,
        "method": {"name": method}, "benchmark": {"name": bench},
        "metrics": {"average_accuracy": avg, "last_accuracy": last, "average_forgetting": fgt,
                    "session_accuracy": sessions},
    }


@pytest.mark.timeout(60)
def test_report_tables_and_plot(tmp_path):
    runs = [
        _result("base", "naive", "coarse", 0, 0.40, 0.10, 0.60, [0.9, 0.2, 0.1]),
        _result("base", "naive", "coarse", 1, 0.50, 0.20, 0.40, [0.9, 0.4, 0.2]),
        _result("base", "pace", "coarse", 0, 0.70, 0.60, 0.10, [0.9, 0.6, 0.6]),
        _result("base", "pace", "fine", 0, 0.65, 0.50, 0.20, [0.8, 0.65, 0.5]),
        _result("base", "joint", "coarse", 0, 0.80, 0.70, 0.05, [0.9, 0.8, 0.7]),
    ]
    for i, r in enumerate(runs):
        (tmp_path / "res" / str(i)).mkdir(parents=True)
        (tmp_path / "res" / str(i) / "r.json").write_text(json.dumps(r))
    (tmp_path / "res" / "other.json").write_text(json.dumps({"accuracy": 1.0}))  # not a PACE result
    files = write_report(tmp_path / "res", tmp_path / "out")
    naive = next(r for r in files.rows if r.method == "naive")
    assert naive.seeds == [0, 1] and naive.avg_mean == pytest.approx(45.0)
    assert naive.avg_std == pytest.approx(7.0711, abs=1e-3)  # sample std of 40, 50
    assert naive.session_mean == pytest.approx([90.0, 30.0, 15.0])
    md = files.markdown.read_text()
    lines = [line for line in md.splitlines() if line.startswith("| base")]
    assert [line.split("|")[2].strip() for line in lines] == ["Joint (upper bound)", "Naive fine-tuning", "PACE"]
    assert "| 45.0 ± 7.1 | 15.0 ± 7.1 | 50.0 ± 14.1 |" in lines[1]
    assert lines[0].count("–") == 3  # joint has no fine result
    assert "- base, coarse: PACE Avg 70.0 (+25.0 vs Naive fine-tuning, -10.0 vs Joint (upper bound))" in md
    csv = files.csv.read_text().splitlines()
    assert len(csv) == 1 + 4 and csv[0].startswith("ckpt,method,benchmark")
    assert files.plot.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "out", tmp_path / "out2")

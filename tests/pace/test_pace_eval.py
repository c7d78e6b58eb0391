"""End to end on generated audio: pace_eval CLI, the stage script (with skipping) and the report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from espnet2_sonar.pace.synthetic import write_synthetic_tasks

REPO = Path(__file__).resolve().parents[2]
FAST = {  # small enough for a CPU test; the defaults are for the benchmark runs
    "analytic": {"proj_dim": 256},
    "adapt": {"epochs": 1, "cka_epochs": 1, "batch_size": 8},
    "perturb": {"num_copies": 1},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_encoder_ckpt):
    root = tmp_path_factory.mktemp("pace_eval")
    write_synthetic_tasks(
        root / "data", seed=0, tasks=("foley", "instrument"), classes_per_task=3,
        per_class={"train": 3, "valid": 1, "test": 2}, seconds=0.5,
    )
    ckpt = tiny_encoder_ckpt
    config = root / "fast.yaml"
    config.write_text(json.dumps(FAST))  # JSON is YAML
    return {"root": root, "data": root / "data", "ckpt": ckpt, "config": config}


def _cli(setup, out: Path, method: str, seed: int = 0) -> dict:
    from espnet2_sonar.bin.pace_eval import main

    main(["--ckpt", str(setup["ckpt"]), "--benchmark", "coarse", "--method", method, "--out", str(out),
          "--data_dir", str(setup["data"]), "--seed", str(seed), "--num_sessions", "3",
          "--config", str(setup["config"])])
    return json.loads(out.read_text())


@pytest.mark.timeout(120)
def test_pace_cli_result_and_seeded_determinism(setup, tmp_path):
    a = _cli(setup, tmp_path / "a.json", "pace")
    assert a["format"].startswith("pace_result/") and a["ckpt_name"] == "tiny"
    assert a["benchmark"]["num_classes"] == 6 and len(a["benchmark"]["sessions"]) == 3
    assert all(c.split("/")[0] in ("foley", "instrument") for c in a["benchmark"]["class_order"])
    m = a["metrics"]
    assert len(m["session_accuracy"]) == 3 and [len(r) for r in m["accuracy_matrix"]] == [1, 2, 3]
    # the summary numbers, recomputed from the matrix: A_t is a[t][s] weighted by session test
    # sizes, each a[t][s] a whole number of that session's test items
    n_test = [sess["n_test"] for sess in a["benchmark"]["sessions"]]
    for t, row in enumerate(m["accuracy_matrix"]):
        assert all(abs(v * n - round(v * n)) < 1e-6 for v, n in zip(row, n_test))
        seen = n_test[: t + 1]
        assert m["session_accuracy"][t] == pytest.approx(sum(v * n for v, n in zip(row, seen)) / sum(seen))
    mat = m["accuracy_matrix"]
    forgetting = [max(mat[t][s] for t in range(s, 2)) - mat[2][s] for s in range(2)]
    assert m["average_forgetting"] == pytest.approx(sum(forgetting) / 2)
    assert m["last_accuracy"] == m["session_accuracy"][-1]
    assert m["average_accuracy"] == pytest.approx(sum(m["session_accuracy"]) / 3)
    assert a["lora_layers"] == [1] and len(a["cka"]) == 2
    assert all(s["adapted"] for s in a["sessions"])  # n_stop not reached
    assert all(s["protected_ranks"] for s in a["sessions"])
    assert len(a["sessions"][0]["adaptation"]["boundary_size"]) == 1
    assert a["method"]["adapt"]["epochs"] == 1 and a["method"]["benchmark"]["num_sessions"] == 3
    b = _cli(setup, tmp_path / "b.json", "pace")
    assert b["metrics"] == a["metrics"] and b["benchmark"]["class_order"] == a["benchmark"]["class_order"]
    c = _cli(setup, tmp_path / "c.json", "analytic_fsa", seed=1)
    assert c["benchmark"]["class_order"] != a["benchmark"]["class_order"]
    assert [s["adapted"] for s in c["sessions"]] == [True, False, False]


def _stage(setup, tmp_path):
    """A recipe dir linking the template's scripts, the environment and the stage command."""
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    template = REPO / "egs2" / "TEMPLATE" / "sonar1"
    for name in ("path.sh", "cmd.sh", "utils", "stages"):
        (recipe / name).symlink_to(template / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1",
               PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")  # this clone's code, not the venv's
    cmd = ["stages/pace.sh", "--exp_dir", str(tmp_path / "exp"), "--data_dir", str(setup["data"]),
           "--ckpts", f"tiny:{setup['ckpt']}", "--seeds", "0", "--benchmarks", "coarse",
           "--methods", "naive analytic", "--num_sessions", "2", "--pace_config", str(setup["config"])]
    return recipe, env, cmd


@pytest.mark.timeout(120)
def test_stage_script_skips_existing_and_writes_report(setup, tmp_path):
    recipe, env, cmd = _stage(setup, tmp_path)
    exp = tmp_path / "exp"
    proc = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(exp.glob("tiny/coarse/*/seed*.json"))
    assert [p.relative_to(exp).as_posix() for p in results] == [
        "tiny/coarse/analytic/seed0.json", "tiny/coarse/naive/seed0.json",
    ]
    table = (exp / "report" / "pace_table.md").read_text()
    assert "| tiny | Naive fine-tuning |" in table and "| tiny | Analytic |" in table
    assert "coarse Avg" in table
    csv_lines = (exp / "report" / "pace_table.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[1].startswith("tiny,")
    assert (exp / "report" / "pace_sessions.png").stat().st_size > 10_000
    mtimes = {p: p.stat().st_mtime_ns for p in results}
    proc = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("skip ") == 2
    assert {p: p.stat().st_mtime_ns for p in results} == mtimes


@pytest.mark.timeout(60)
def test_stage_script_errors(setup, tmp_path):
    recipe, env, cmd = _stage(setup, tmp_path)
    bad = subprocess.run(cmd[:-2] + ["--methods", "ewc"], cwd=recipe, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown method 'ewc'" in bad.stderr
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    bad = subprocess.run(cmd + ["--ckpts", f"broken:{broken}"], cwd=recipe, env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "pace_eval failed (broken coarse naive seed 0)" in bad.stderr
    assert "broken.pt" in bad.stderr  # the tail of the run's log names the file

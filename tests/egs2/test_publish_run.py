"""scripts/publish_run.sh: a finished run's files land unchanged in the recipe's results/NAME/."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _checkout(tmp_path: Path) -> Path:
    """A stand-in checkout holding only the script (it publishes next to itself)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "publish_run.sh", root / "scripts" / "publish_run.sh")
    return root


def _run(root: Path, recipe: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "scripts" / "publish_run.sh"), str(recipe), name],
                          capture_output=True, text=True, timeout=60)


def test_publishes_the_run_files_and_replaces_an_older_copy(tmp_path):
    root = _checkout(tmp_path)
    recipe = tmp_path / "clone" / "egs2" / "mine" / "sonar1"
    files = {"exp/RESULTS.md": "# RESULTS\n", "exp/stage_times.tsv": "1\t5\n", "exp/report/results.json": "{}\n",
             "exp/report/report.md": "# report\n", "exp/report/plot.png": "png", "data/summary.md": "# corpus\n",
             "exp/pace_sonar/report/pace_table.md": "| t |\n", "exp/pace_sonar/report/pace_table.csv": "a,b\n"}
    for rel, text in files.items():
        (recipe / rel).parent.mkdir(parents=True, exist_ok=True)
        (recipe / rel).write_text(text)
    dest = root / "egs2" / "mine" / "sonar1" / "results" / "run1"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an older publication")
    proc = _run(root, recipe, "run1")
    assert proc.returncode == 0, proc.stderr
    got = {p.relative_to(dest).as_posix(): p.read_text() for p in dest.rglob("*") if p.is_file()}
    assert got == {"RESULTS.md": "# RESULTS\n", "stage_times.tsv": "1\t5\n", "report/results.json": "{}\n",
                   "report/report.md": "# report\n", "report/plot.png": "png", "corpus_summary.md": "# corpus\n",
                   "pace/pace_table.md": "| t |\n", "pace/pace_table.csv": "a,b\n"}


def test_an_unfinished_run_is_refused_and_nothing_is_written(tmp_path):
    root = _checkout(tmp_path)
    recipe = tmp_path / "clone" / "egs2" / "mine" / "sonar1"
    (recipe / "exp").mkdir(parents=True)
    (recipe / "exp" / "stage_times.tsv").write_text("1\t5\n")
    proc = _run(root, recipe, "run1")
    assert proc.returncode == 1 and "exp/RESULTS.md is missing" in proc.stderr
    assert not (root / "egs2").exists()
    outside = tmp_path / "not_a_recipe"
    outside.mkdir()
    proc = _run(root, outside, "run1")
    assert proc.returncode == 2 and "not a recipe under egs2/" in proc.stderr

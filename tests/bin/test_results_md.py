"""Regenerable results: RESULTS.md (bin/results_md), README.md's generated blocks
(scripts/sync_readme_results.py), and the published numbers in README.md against results.json."""

import difflib
import importlib.metadata
import importlib.util
import json
import math
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from espnet2_sonar.bin import results_md
from espnet2_sonar.bin.results_md import BEGIN, END, extract_readme_results
from espnet2_sonar.eval.report import ReportSpec, build_results, load_probe_results, to_json
from espnet2_sonar.eval.report_files import readme_section, report_markdown, results_csv

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sync_readme_results.py"
TASKS = ["old", "inst"]
TASK_DOMAIN = {"old": "prior", "inst": "music"}
REPORT_PATH = "egs2/mine/sonar1/exp/report/report.md"
NOTES = "## Findings\n\nA note appended by `--notes`.\n"
ENV = {"date": "2026-12-01 00:00:00 UTC", "git commit": "abc123", "python": "3.12.1"}


def _load_sync():
    spec = importlib.util.spec_from_file_location("sync_readme_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_readme = _load_sync()


def _write_probe(root, name, task, seed, acc):
    path = root / name / task / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": acc, "macro_f1": acc - 0.05, "seed": seed}))


def make_results(eval_dir, train_seeds=None, skip_dcp=False):
    """A small real report: base, sonar and dcp after one music stage, probe seeds 0/1
    (``train_seeds``: one run per training seed under ``tseed<T>/``, as the recipe writes them)."""
    runs = [f"tseed{t}/" for t in train_seeds] if train_seeds else [""]
    for p, j in enumerate((-0.01, 0.01)):
        _write_probe(eval_dir, "base", "old", p, 0.8 + j)
        _write_probe(eval_dir, "base", "inst", p, 0.5 + j)
        for k, run in enumerate(runs):
            _write_probe(eval_dir, f"{run}sonar/music", "old", p, 0.78 - 0.01 * k + j)
            _write_probe(eval_dir, f"{run}sonar/music", "inst", p, 0.6 + j)
            if not skip_dcp:
                _write_probe(eval_dir, f"{run}dcp/music", "old", p, 0.5 + 0.02 * k + j)
                _write_probe(eval_dir, f"{run}dcp/music", "inst", p, 0.62 + j)
    spec = ReportSpec(methods=["sonar", "dcp"], domains=["music"], tasks=TASKS, task_domain=TASK_DOMAIN,
                      train_seeds=train_seeds)
    return build_results(load_probe_results(eval_dir, spec), spec)


def make_report_dir(tmp_path, notes=NOTES):
    """What stage 7 (bin/report.py) writes, plus a plot; returns (report_dir, README_section.md text)."""
    results = make_results(tmp_path / "eval")
    report = tmp_path / "exp" / "report"
    report.mkdir(parents=True)
    (report / "results.json").write_text(to_json(results))
    (report / "results.csv").write_text(results_csv(results))
    (report / "report.md").write_text(report_markdown(results, {}))
    section = readme_section(results, REPORT_PATH) + ("\n" + notes if notes else "")
    (report / "README_section.md").write_text(section)
    (report / "per_stage.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return report, section


def _no_git_above(monkeypatch, path):
    """Make ``path`` the current directory and stop git from finding a repository above it."""
    monkeypatch.chdir(path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(Path(path).parent))


def _env_line(text, key):
    found = re.findall(rf"^- {re.escape(key)}: `(.*)`$", text, flags=re.M)
    assert len(found) == 1, f"no single '- {key}:' line in:\n{text}"
    return found[0]


# ---------------------------------------------------------------- RESULTS.md


@pytest.mark.timeout(120)
def test_results_md_has_environment_command_and_the_readme_section_verbatim(tmp_path, monkeypatch, capsys):
    report, section = make_report_dir(tmp_path)
    work = tmp_path / "not_a_repo"
    work.mkdir()
    _no_git_above(monkeypatch, work)
    out = tmp_path / "exp" / "RESULTS.md"
    command = "./run.sh --stage 1 --stop_stage 7 \\\n    --methods \"sonar dcp\""
    results_md.main(["--report_dir", str(report), "--out", str(out), "--command", command,
                     "--elapsed_s", "542", "--title", "RESULTS: default run"])
    text = out.read_text()
    assert "wrote" in capsys.readouterr().out
    assert text.splitlines()[1] == "# RESULTS: default run"
    assert "## Environment" in text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", _env_line(text, "date"))
    assert _env_line(text, "git commit") == "unknown"  # not a repository: no crash
    assert _env_line(text, "python").startswith(platform.python_version())
    for name in ("numpy", "torch"):
        assert _env_line(text, name) == importlib.metadata.version(name)
    for name in ("torchaudio", "espnet"):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        assert _env_line(text, name) == version
    assert _env_line(text, "OS") == platform.platform()
    assert re.search(r"\(\d+ logical cores", _env_line(text, "CPU"))
    gpus = results_md.gpu_names()
    assert _env_line(text, "GPU") == (", ".join(gpus) if gpus else "none")
    assert f"```bash\n{command}\n```\n" in text
    assert "- elapsed: 9m 2s (542 s)" in text
    # the section, exactly, between the markers; the report files after it, linked from RESULTS.md
    assert extract_readme_results(text) == section
    assert text.index(END) < text.index("## Report files")
    for link in ("report/report.md", "report/results.json", "report/results.csv", "report/per_stage.png"):
        assert f"]({link})" in text


@pytest.mark.timeout(60)
def test_results_md_without_command_or_elapsed_has_no_command_section(tmp_path):
    report, section = make_report_dir(tmp_path, notes="")
    text = results_md.results_markdown(report, report / "RESULTS.md", env=ENV)
    assert "## Command" not in text and "# RESULTS\n" in text
    loaded = json.loads((report / "results.json").read_text())
    assert extract_readme_results(text) == section == readme_section(loaded, REPORT_PATH)
    assert "](results.json)" in text  # links relative to RESULTS.md's own directory


@pytest.mark.timeout(60)
@pytest.mark.parametrize("missing", ["README_section.md", "results.json"])
def test_results_md_names_the_missing_report_file(tmp_path, missing):
    report, _ = make_report_dir(tmp_path)
    (report / missing).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(report / missing))):
        results_md.main(["--report_dir", str(report), "--out", str(tmp_path / "RESULTS.md")])
    assert not (tmp_path / "RESULTS.md").exists()


@pytest.mark.timeout(60)
def test_results_md_names_an_unreadable_results_json(tmp_path):
    report, _ = make_report_dir(tmp_path)
    (report / "results.json").write_text("{truncated")
    with pytest.raises(ValueError, match="results.json: not valid JSON"):
        results_md.results_markdown(report, tmp_path / "RESULTS.md", env=ENV)


@pytest.mark.timeout(60)
def test_git_state_reports_the_commit_and_uncommitted_changes(tmp_path, monkeypatch):
    _no_git_above(monkeypatch, tmp_path)
    assert results_md.git_state(tmp_path) == {"commit": "unknown", "commit_date": "unknown"}

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("not a tracked modification\n")
    assert results_md.git_state(tmp_path)["commit"] == head
    (tmp_path / "a.txt").write_text("two\n")
    assert results_md.git_state(tmp_path)["commit"] == f"{head} (uncommitted changes)"
    assert results_md.git_state(tmp_path)["commit_date"] != "unknown"


@pytest.mark.timeout(60)
def test_package_versions_say_not_installed_and_elapsed_reads_well():
    assert results_md.package_versions(("numpy", "no-such-distribution-xyz")) == {
        "numpy": importlib.metadata.version("numpy"), "no-such-distribution-xyz": "not installed"}
    assert results_md.elapsed_text(42) == "42s (42 s)"
    assert results_md.elapsed_text(3725) == "1h 2m 5s (3725 s)"


@pytest.mark.timeout(60)
def test_extract_readme_results_errors_name_the_file_and_lines():
    assert extract_readme_results("no markers\n") is None
    assert extract_readme_results(f"x\n{BEGIN}\na\n\nb\n{END}\ny\n") == "a\n\nb\n"
    with pytest.raises(ValueError, match=r"R\.md: .*line 1: .*END"):
        extract_readme_results(f"{END}\n{BEGIN}\n", "R.md")
    with pytest.raises(ValueError, match="R.md"):
        extract_readme_results(f"{BEGIN}\nno end\n", "R.md")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["one_training_run", "missing_method"])
def test_readme_section_renders_results_json_with_nulls(tmp_path, case):
    """results.json stores NaN as null: the section rendered from the loaded JSON is the one
    rendered from the in-memory results (std of one run; a method with no probe results)."""
    if case == "one_training_run":
        results = make_results(tmp_path, train_seeds=[0])
    else:
        results = make_results(tmp_path, skip_dcp=True)
    loaded = json.loads(to_json(results))
    text = json.dumps(loaded)
    assert "null" in text  # to_json writes NaN as null (strict JSON)
    if case == "one_training_run":
        assert math.isnan(results["methods"]["sonar"]["mean_forgetting_old"]["std"])
        assert loaded["methods"]["sonar"]["mean_forgetting_old"]["std"] is None
    else:
        assert loaded["methods"]["dcp"]["mean_gain"]["mean"] is None
        assert loaded["verdict"]["available"] is False
    assert readme_section(loaded, REPORT_PATH) == readme_section(results, REPORT_PATH)


# ---------------------------------------------------------------- README.md's generated blocks


def _readme(tmp_path, results_block="stale numbers\n", notes_block=""):
    return (f"# Project\n\nintro\n\n<!-- BEGIN generated from runs/a/RESULTS.md -->\n{results_block}"
            f"<!-- END generated from runs/a/RESULTS.md -->\n\nbetween\n\n"
            f"<!-- BEGIN generated from local/notes.md -->\n{notes_block}"
            f"<!-- END generated from local/notes.md -->\ntail\n")


def _sources(tmp_path):
    report, section = make_report_dir(tmp_path)
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "RESULTS.md").write_text(results_md.results_markdown(report, run / "RESULTS.md", env=ENV))
    (tmp_path / "local").mkdir()
    notes = "A plain file, quoted whole.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    (tmp_path / "local" / "notes.md").write_text(notes)
    return section, notes


@pytest.mark.timeout(120)
def test_sync_fills_blocks_idempotently_and_check_detects_hand_edits(tmp_path, capsys):
    section, notes = _sources(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(_readme(tmp_path))
    args = ["--readme", str(readme), "--root", str(tmp_path)]
    assert sync_readme.main(args + ["--check"]) == 1
    out = capsys.readouterr().out
    assert "runs/a/RESULTS.md differs" in out and "local/notes.md differs" in out and "-stale numbers" in out
    assert readme.read_text() == _readme(tmp_path)  # --check wrote nothing

    assert sync_readme.main(args) == 0
    assert "2 of 2 generated block(s) updated" in capsys.readouterr().out
    filled = readme.read_text()
    assert filled == _readme(tmp_path, results_block=section, notes_block=notes)
    blocks = sync_readme.parse_blocks(filled)
    assert [b.path for b in blocks] == ["runs/a/RESULTS.md", "local/notes.md"]
    assert blocks[0].content == section and blocks[1].content == notes

    assert sync_readme.main(args) == 0  # a second run changes nothing
    assert "0 of 2" in capsys.readouterr().out and readme.read_text() == filled
    assert sync_readme.main(args + ["--check"]) == 0
    assert "all in sync" in capsys.readouterr().out

    readme.write_text(filled.replace("| **sonar** |", "| **sonar (edited)** |"))
    assert sync_readme.main(args + ["--check"]) == 1
    out = capsys.readouterr().out
    assert "runs/a/RESULTS.md differs" in out and "notes.md" not in out and "+| **sonar** |" in out
    assert sync_readme.main(args) == 0 and readme.read_text() == filled

    # run from another directory as a script: paths are relative to --root, not the cwd
    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--check"], cwd=tmp_path / "local",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(60)
def test_sync_without_newline_at_block_end_is_made_idempotent(tmp_path):
    (tmp_path / "n.md").write_text("no final newline")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN generated from n.md -->\n<!-- END generated from n.md -->")
    args = ["--readme", str(readme), "--root", str(tmp_path)]
    assert sync_readme.main(args) == 0
    assert readme.read_text() == ("<!-- BEGIN generated from n.md -->\nno final newline\n"
                                  "<!-- END generated from n.md -->")
    assert sync_readme.main(args + ["--check"]) == 0


@pytest.mark.timeout(60)
def test_sync_ignores_markers_shown_in_code_fences(tmp_path):
    (tmp_path / "n.md").write_text("quoted\n")
    doc = "```\n<!-- BEGIN generated from PATH -->\n<!-- END generated from PATH -->\n```\n"
    readme = tmp_path / "README.md"
    readme.write_text(doc + "<!-- BEGIN generated from n.md -->\nold\n<!-- END generated from n.md -->\n"
                      "~~~~md\n<!-- END generated from n.md -->\n~~~~\n")
    assert [b.path for b in sync_readme.parse_blocks(readme.read_text())] == ["n.md"]
    assert sync_readme.main(["--readme", str(readme), "--root", str(tmp_path)]) == 0
    assert readme.read_text().startswith(doc + "<!-- BEGIN generated from n.md -->\nquoted\n<!-- END")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text,message", [
    ("a\n<!-- END generated from x.md -->\n", r":2: END generated from x.md without a BEGIN"),
    ("<!-- BEGIN generated from x.md -->\nb\n", r":1: BEGIN generated from x.md has no END"),
    ("<!-- BEGIN generated from x.md -->\n<!-- END generated from y.md -->\n", r":2: .*opened at line 1 from x.md"),
    ("<!-- BEGIN generated from x.md -->\n<!-- BEGIN generated from x.md -->\n",
     r":2: BEGIN inside the block opened at line 1"),
    ("ok\n\n<!-- BEGIN generated from -->\n", r":3: malformed marker"),
    ("<!-- BEGIN generated from missing/RESULTS.md -->\n<!-- END generated from missing/RESULTS.md -->\n",
     r":1: source missing/RESULTS.md not found"),
])
def test_sync_errors_name_the_line(tmp_path, capsys, text, message):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    assert sync_readme.main(["--readme", str(readme), "--root", str(tmp_path), "--check"]) == 2
    err = capsys.readouterr().err
    assert re.search(re.escape(str(readme)) + message, err), err
    assert sync_readme.main(["--readme", str(readme), "--root", str(tmp_path)]) == 2
    assert readme.read_text() == text


@pytest.mark.timeout(60)
def test_sync_names_a_results_md_with_broken_markers(tmp_path, capsys):
    (tmp_path / "RESULTS.md").write_text(f"{BEGIN}\nno end\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN generated from RESULTS.md -->\n<!-- END generated from RESULTS.md -->\n")
    assert sync_readme.main(["--readme", str(readme), "--root", str(tmp_path)]) == 2
    assert str(tmp_path / "RESULTS.md") in capsys.readouterr().err


# ---------------------------------------------------------------- the published README.md


def _rendered_prefix(results: dict, section: str) -> str:
    """readme_section(results), quoting the report path the committed section quotes (bin/report.py's
    quoted OUT_DIR/report.md or --readme_report_path: a path, not a number)."""
    quoted = re.search(r"then read `([^`]+)`", section)
    return readme_section(results, quoted.group(1) if quoted else "")


def check_published(readme: Path, root: Path) -> int:
    """Assert every generated block of ``readme`` equals its source (``--check``), and every run
    quoted through its RESULTS.md / README_section.md renders from its results.json; returns the
    number of blocks."""
    blocks = sync_readme.parse_blocks(readme.read_text(), str(readme))
    for block in blocks:
        expected = sync_readme.source_text(root, block.path, f"{readme.name}:{block.begin + 1}")
        assert block.content == expected, (
            f"{readme.name}:{block.begin + 1}: the block generated from {block.path} was edited or its source "
            "changed; run python scripts/sync_readme_results.py\n" + sync_readme.block_diff(block, expected))
    for path in dict.fromkeys(b.path for b in blocks):
        source = root / path
        run = source.parent
        if source.name not in ("RESULTS.md", "README_section.md"):
            continue
        if source.name == "RESULTS.md" and (run / "report" / "results.json").is_file():
            run = run / "report"  # a published run keeps stage 7's report dir beside its RESULTS.md
        # a quoted run must carry what its numbers came from: no silent skip
        assert (run / "results.json").is_file() and (run / "README_section.md").is_file(), (
            f"{source}: no results.json + README_section.md beside it or under report/")
        section = (run / "README_section.md").read_text()
        if source.name == "RESULTS.md":
            assert extract_readme_results(source.read_text(), str(source)) == section, (
                f"{source} does not quote {run / 'README_section.md'}: regenerate it with "
                "python -m espnet2_sonar.bin.results_md")
        results = json.loads((run / "results.json").read_text())
        rendered = _rendered_prefix(results, section)
        assert section.startswith(rendered), (
            f"{run / 'README_section.md'} is not what readme_section() renders from {run / 'results.json'} "
            f"(then the --notes text); numbers or wording differ:\n"
            + "".join(difflib.unified_diff(section[:len(rendered)].splitlines(True), rendered.splitlines(True),
                                           "README_section.md", "readme_section(results.json)", n=1)))
    return len(blocks)


@pytest.mark.timeout(120)
def test_published_check_catches_numbers_that_differ_from_results_json(tmp_path):
    """The check below on a published copy laid out as egs2/.../results/<date>_<name>/ is: the
    report files and RESULTS.md side by side."""
    report, section = make_report_dir(tmp_path / "exp_root")
    run = tmp_path / "results" / "2026-12-01_default"
    run.parent.mkdir()
    report.rename(run)
    (run / "RESULTS.md").write_text(results_md.results_markdown(run, run / "RESULTS.md", env=ENV))
    readme = tmp_path / "README.md"
    readme.write_text("# P\n\n<!-- BEGIN generated from results/2026-12-01_default/RESULTS.md -->\n"
                      "<!-- END generated from results/2026-12-01_default/RESULTS.md -->\n")
    assert sync_readme.main(["--readme", str(readme), "--root", str(tmp_path)]) == 0
    assert check_published(readme, tmp_path) == 1

    results = json.loads((run / "results.json").read_text())
    results["methods"]["sonar"]["mean_gain"]["mean"] += 0.05  # a number changed after the section was written
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(AssertionError, match="README_section.md is not what readme_section"):
        check_published(readme, tmp_path)
    (run / "results.json").write_text(to_json(results))
    (run / "README_section.md").write_text(readme_section(results, REPORT_PATH) + "\n" + NOTES)
    with pytest.raises(AssertionError, match="RESULTS.md does not quote"):
        check_published(readme, tmp_path)
    (run / "RESULTS.md").write_text(results_md.results_markdown(run, run / "RESULTS.md", env=ENV))
    with pytest.raises(AssertionError, match="was edited or its source changed"):
        check_published(readme, tmp_path)
    assert sync_readme.main(["--readme", str(readme), "--root", str(tmp_path)]) == 0
    assert check_published(readme, tmp_path) == 1


@pytest.mark.timeout(120)
def test_published_readme_blocks_match_their_committed_sources_and_results_json():
    """README.md's generated blocks equal their committed sources, and the numbers they quote are
    the committed results.json's. Skipped only while README.md has no generated block."""
    readme = ROOT / "README.md"
    if not sync_readme.parse_blocks(readme.read_text(), str(readme)):
        pytest.skip("README.md has no '<!-- BEGIN generated from PATH -->' block yet")
    check_published(readme, ROOT)


@pytest.mark.timeout(60)
def test_stage_times_are_tabulated_latest_per_stage_and_bad_lines_are_named(tmp_path):
    from espnet2_sonar.bin.results_md import read_stage_times, results_markdown

    report, _ = make_report_dir(tmp_path)
    times = tmp_path / "stage_times.tsv"
    times.write_text("1\t30\tdate\tcmd\n2\t180\tdate\tcmd\n7\t20\tdate\tcmd\n7\t25\tdate\tcmd --stage 7\n")
    parsed = read_stage_times(times)
    assert parsed == {"1": 30.0, "2": 180.0, "7": 25.0}
    text = results_markdown(report, tmp_path / "RESULTS.md", env={"python": "x"}, stage_times=parsed)
    assert "## Wall time per stage" in text and "| 7 |" in text and "| all |" in text
    times.write_text("1\tthirty\n")
    with pytest.raises(ValueError, match="stage_times.tsv:1"):
        read_stage_times(times)

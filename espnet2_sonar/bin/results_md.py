#!/usr/bin/env python3
"""RESULTS.md for one run, ESPnet-style: environment, command, and the README section verbatim.

    python -m espnet2_sonar.bin.results_md --report_dir EXP/report --out EXP/RESULTS.md \\
        [--command "./run.sh --stage 1 --stop_stage 7"] [--elapsed_s 542] [--title "default run"]

ESPnet recipes publish each run as ``RESULTS.md``: what was run, where and with which
versions, then the numbers. Here the numbers are stage 7's ``README_section.md``
(``bin/report.py``: ``report_files.readme_section(results, report_path)`` plus the ``--notes`` file), copied
verbatim between the lines ``<!-- BEGIN README results -->`` and ``<!-- END README results -->``
so that ``scripts/sync_readme_results.py`` can copy exactly that text into README.md and
``tests/bin/test_results_md.py`` can check it against the committed ``results.json``. README.md's
results are never edited by hand.

The environment is read from the machine running this command: date (UTC), the git commit of
the repository containing the current directory (``(uncommitted changes)`` when tracked files
are modified; ``unknown`` outside a repository or without git), Python and package versions
(``not installed`` when absent), OS, CPU model and core count, GPUs (``torch.cuda``). Run it on
the machine and checkout that produced the report.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

BEGIN = "<!-- BEGIN README results -->"
END = "<!-- END README results -->"
PACKAGES = ("torch", "torchaudio", "espnet", "numpy")
REQUIRED = ("README_section.md", "results.json")


def extract_readme_results(text: str, name: str = "RESULTS.md") -> Optional[str]:
    """The text between the BEGIN/END README results lines of ``text`` (None when it has none).

    Lines strictly between the markers, each with its newline. ``name`` (the file) is quoted in
    the errors: an END before its BEGIN, a missing END, or more than one BEGIN/END pair.
    """
    lines = text.splitlines(keepends=True)
    marks = [(i, line.rstrip("\r\n").strip()) for i, line in enumerate(lines)
             if line.strip() in (BEGIN, END)]
    if not marks:
        return None
    kinds = [m for _, m in marks]
    if kinds != [BEGIN, END]:
        where = ", ".join(f"line {i + 1}: {m}" for i, m in marks)
        raise ValueError(f"{name}: expected one '{BEGIN}' line followed by one '{END}' line, found {where}")
    return "".join(lines[marks[0][0] + 1:marks[1][0]])


def _git(args: List[str], cwd: Path) -> Optional[str]:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(cwd: Optional[Path] = None) -> Dict[str, str]:
    """``commit`` (hash, ``+ " (uncommitted changes)"`` when tracked files differ from HEAD) and
    ``commit_date`` of the repository containing ``cwd``; ``unknown`` when git cannot tell."""
    cwd = Path(cwd or os.getcwd())
    head = _git(["rev-parse", "HEAD"], cwd)
    if not head:
        return {"commit": "unknown", "commit_date": "unknown"}
    commit = head.strip()
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    if status is None:
        commit += " (status unknown)"
    elif status.strip():
        commit += " (uncommitted changes)"
    date = _git(["log", "-1", "--format=%cI", "HEAD"], cwd)
    return {"commit": commit, "commit_date": date.strip() if date else "unknown"}


def package_versions(names=PACKAGES) -> Dict[str, str]:
    """Installed distribution versions (``importlib.metadata``); ``not installed`` when absent."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_names() -> List[str]:
    """Names of the CUDA devices torch sees (empty without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop the report
        return []


def environment(cwd: Optional[Path] = None) -> Dict[str, str]:
    """Everything in the "Environment" section, as label -> text."""
    git = git_state(cwd)
    versions = package_versions()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} logical cores" + (
        f", {usable} usable by this process" if usable is not None and usable != os.cpu_count() else "")
    gpus = gpu_names()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git commit": git["commit"],
        "commit date": git["commit_date"],
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        **versions,
        "OS": platform.platform(),
        "CPU": f"{cpu_model()} ({cores})",
        "GPU": ", ".join(gpus) if gpus else "none",
    }


def elapsed_text(seconds: float) -> str:
    """``542`` -> ``"9m 2s (542 s)"``."""
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    hms = (f"{hours}h {minutes}m {sec}s" if hours else f"{minutes}m {sec}s" if minutes else f"{sec}s")
    return f"{hms} ({seconds:.0f} s)"


def _link(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def read_stage_times(path) -> Dict[str, float]:
    """Latest wall time per stage from the recipe's ``stage_times.tsv`` (``stage<TAB>seconds<TAB>
    finished<TAB>command`` lines, appended by every invocation; a rerun of a stage replaces its time).
    A malformed line is an error naming the file and line."""
    out: Dict[str, float] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            out[fields[0]] = float(fields[1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{n}: expected 'stage<TAB>seconds<TAB>...', got {line!r}") from None
    return out


def results_markdown(report_dir, out, command: Optional[str] = None, elapsed_s: Optional[float] = None,
                     title: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                     stage_times: Optional[Dict[str, float]] = None) -> str:
    """The text of RESULTS.md for ``report_dir`` (written to ``out``: links are relative to it).

    ``env``: the environment section's entries (default: :func:`environment` of this machine).
    ``stage_times``: latest seconds per recipe stage (:func:`read_stage_times`), tabulated with
    their sum, so a report regenerated alone still states what the whole run took.
    """
    report_dir, out = Path(report_dir), Path(out)
    for name in REQUIRED:
        if not (report_dir / name).is_file():
            raise FileNotFoundError(f"{report_dir / name}: no such file (run stage 7, bin/report.py, first)")
    try:
        results = json.loads((report_dir / "results.json").read_text())
    except ValueError as e:
        raise ValueError(f"{report_dir / 'results.json'}: not valid JSON ({e})") from None
    section = (report_dir / "README_section.md").read_text()
    if BEGIN in section or END in section:
        raise ValueError(f"{report_dir / 'README_section.md'}: contains the marker '{BEGIN}' or '{END}' itself")
    if section and not section.endswith("\n"):
        section += "\n"
    env = environment() if env is None else env
    here = out.parent
    parts = [f"<!-- Generated by espnet2_sonar.bin.results_md from {report_dir}; do not edit by hand. -->",
             f"# {title or 'RESULTS'}", "", "## Environment", ""]
    parts += [f"- {key}: `{value}`" for key, value in env.items()]
    precision = (results.get("spec") or {}).get("precision") or "fp32"  # reports made before it: fp32
    parts += [f"- encoder forward precision (probe embeddings, from results.json): `{precision}`"]
    if command or elapsed_s is not None:
        parts += ["", "## Command", ""]
        if command:
            parts += ["```bash", command, "```"]
        if elapsed_s is not None:
            parts += ([""] if command else []) + [f"- elapsed: {elapsed_text(elapsed_s)}"]
    if stage_times:
        parts += ["", "## Wall time per stage", "", "Latest run of each stage (`stage_times.tsv`).", "",
                  "| stage | wall time |", "|---|---|"]
        parts += [f"| {stage} | {elapsed_text(sec)} |" for stage, sec in stage_times.items()]
        parts += [f"| all | {elapsed_text(sum(stage_times.values()))} |"]
    parts += ["", "<!-- Between these markers: stage 7's README_section.md verbatim; "
              "scripts/sync_readme_results.py copies it into README.md. -->", BEGIN]
    text = "\n".join(parts) + "\n" + section + END + "\n"
    files = [("report.md", "full report: every table, plots, missing results"),
             ("results.json", "all numbers, per seed (NaN written as null)"),
             ("results.csv", "per-probe accuracy and macro F1, long format"),
             ("README_section.md", "the section above")]
    listing = [f"- [{name}]({_link(report_dir / name, here)}): {what}"
               for name, what in files if (report_dir / name).is_file()]
    plots = sorted(report_dir.glob("*.png"))
    if plots:
        listing.append("- plots: " + ", ".join(f"[{p.name}]({_link(p, here)})" for p in plots))
    text += "\n## Report files\n\n" + "\n".join(listing) + "\n"
    return text


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report_dir", required=True, help="stage 7's output (README_section.md, results.json, ...)")
    p.add_argument("--out", required=True, help="RESULTS.md to write")
    p.add_argument("--command", default=None, help="the recipe command line that produced the run")
    p.add_argument("--elapsed_s", type=float, default=None, help="wall-clock seconds of that command")
    p.add_argument("--title", default=None, help='heading (default "RESULTS")')
    p.add_argument("--stage_times", default=None, help="the recipe's stage_times.tsv (skipped if absent)")
    return p


def main(argv: Optional[List[str]] = None) -> Path:
    args = get_parser().parse_args(argv)
    times = (read_stage_times(args.stage_times)
             if args.stage_times and Path(args.stage_times).is_file() else None)
    text = results_markdown(args.report_dir, args.out, command=args.command, elapsed_s=args.elapsed_s,
                            title=args.title, stage_times=times)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()

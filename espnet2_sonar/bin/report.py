"""Continual-learning report (recipe stage 7): tables, plots, verdict.

    python -m espnet2_sonar.bin.report --eval_dir EXP/eval --exp_dir EXP \\
        --methods "sonar dcp" --domains "music bio" --tasks "calls songs engines" \\
        --task_domain calls=prior,songs=music,engines=bio --out_dir EXP/report

Reads EVAL_DIR/<base|[tseed<T>/]method/domain>/<task>/seed<N>.json (stage 6; ``tseed<T>/`` with
--train_seeds) and, for codebook plots, EXP_DIR/[tseed<T>/]<method>/<domain>/checkpoint.pth (or train.log). Writes OUT_DIR/results.json,
results.csv, report.md, README_section.md and PNG figures. Missing probe results become
NaN cells and are listed in report.md.
"""

import argparse
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional


def parse_pairs(option: str):
    """An argparse type for ``"a=x,b=y"`` -> ``{"a": "x", "b": "y"}`` (errors name ``option``)."""

    def parse(text: str) -> Dict[str, str]:
        out = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise argparse.ArgumentTypeError(f"{option} item '{item}' is not key=value")
            out[key.strip()] = value.strip()
        return out

    return parse


parse_task_domain = parse_pairs("--task_domain")
"""``"calls=prior,songs=music"`` -> ``{"calls": "prior", "songs": "music"}``."""


def quoted_path(path: Path) -> str:
    """``path`` as a reader of the repository finds it: relative to the enclosing git work tree
    (a recipe's ``exp/report/report.md`` -> ``<recipe dir>/exp/report/report.md``), else as given."""
    absolute = Path(os.path.abspath(path))  # not resolve(): a symlinked exp dir stays inside the tree
    for root in absolute.parents:
        if (root / ".git").exists():
            return absolute.relative_to(root).as_posix()
    return str(path)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval_dir", required=True, help="probe results of stage 6")
    p.add_argument("--exp_dir", default=None, help="experiment dir with <method>/<domain> stage dirs")
    p.add_argument("--methods", required=True, help='e.g. "sonar dcp"')
    p.add_argument("--domains", required=True, help='adapted domains in stage order, e.g. "music bio env"')
    p.add_argument("--tasks", required=True, help='probe tasks, e.g. "calls songs engines"')
    p.add_argument("--seeds", default=None, help='expected probe seeds (default: all found), e.g. "0 1 2"')
    p.add_argument("--train_seeds", default=None,
                   help='training seeds of the continual methods, e.g. "0 1 2": stage results are read from '
                        'EVAL_DIR/tseed<T>/<method>/<domain> and error bars are over training runs (default: '
                        'one run, unprefixed names, probe seeds as replicates)')
    p.add_argument("--task_domain", type=parse_task_domain, required=True,
                   help="task=domain pairs, comma-separated, one per --tasks task (the recipe's map, "
                        "run.sh's task_domain): a --domains domain makes it that stage's new task, "
                        "any other (e.g. prior) an old task")
    p.add_argument("--stage0", type=parse_pairs("--stage0"), default="decar=decar/prior",
                   help="method=name pairs: a method whose stage 0 is its own model, not the shared "
                        "base (DECAR pre-trains on the prior pool itself); comma-separated")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--references", default="random logmel decar/random decar/prior",
                   help="encoders under eval_dir shown beside the matrix (absent ones are skipped)")
    p.add_argument("--notes", default=None,
                   help="markdown file appended to report.md and README_section.md (e.g. what was "
                        "investigated on valid data); a missing file is an error")
    p.add_argument("--readme_report_path", default=None,
                   help="report path quoted in README_section.md (default: OUT_DIR/report.md, relative "
                        "to the repository that holds it)")
    return p


def main(argv: Optional[List[str]] = None) -> dict:
    from espnet2_sonar.eval.plots import write_plots
    from espnet2_sonar.eval.report import (ReportSpec, build_results, load_codebook_stats,
                                           load_probe_results, reference_results, to_json)
    from espnet2_sonar.eval.report_files import readme_section, report_markdown, results_csv
    from espnet2_sonar.eval.verdict import load_drift

    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s) %(levelname)s: %(message)s")
    spec = ReportSpec(
        methods=args.methods.split(),
        domains=args.domains.split(),
        tasks=args.tasks.split(),
        task_domain=args.task_domain,
        seeds=[int(s) for s in args.seeds.split()] if args.seeds else None,
        stage0=args.stage0,
        train_seeds=[int(s) for s in args.train_seeds.split()] if args.train_seeds else None,
    )
    probes = load_probe_results(args.eval_dir, spec)
    codebook = load_codebook_stats(args.exp_dir, spec) if args.exp_dir else {}
    references = reference_results(args.eval_dir, spec, args.references.split(), probes.seeds)
    results = build_results(probes, spec, codebook, references, load_drift(args.eval_dir, spec))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, out)
    (out / "results.json").write_text(to_json(results))
    (out / "results.csv").write_text(results_csv(results))
    notes = ""
    if args.notes:
        if not Path(args.notes).is_file():
            raise FileNotFoundError(f"--notes {args.notes}: no such file")
        notes = "\n" + Path(args.notes).read_text().strip() + "\n"
    (out / "report.md").write_text(report_markdown(results, plots, eval_dir=args.eval_dir) + notes)
    (out / "README_section.md").write_text(
        readme_section(results, args.readme_report_path or quoted_path(out / "report.md")) + notes)
    if probes.missing:
        logging.warning("%d probe result(s) missing; listed in %s", len(probes.missing), out / "report.md")
    logging.info("report: %s", out / "report.md")
    return results


if __name__ == "__main__":
    main()

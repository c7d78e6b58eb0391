#!/usr/bin/env python3
"""Publish an exported model dir on the Hugging Face Hub (the recipe's stage 10).

    python -m espnet2_sonar.bin.hf_upload --exp_dir exp/tseed0/sonar/env --repo me/sonar-env \\
        [--results exp/RESULTS.md] [--out_dir DIR] [--private] [--dry_run]

Assembles the upload folder (default EXP_DIR/hf_upload, rewritten on every run): packed.zip
(self-contained, from sonar_export), encoder.pt and tokenizer.pt (official BEATs format, when
exported), config.yaml (the packed config), RESULTS.md (a copy of --results) and README.md, the
model card (espnet2_sonar/utils/model_card.py). Then creates the model repo if needed and uploads
the folder with huggingface_hub (credentials as huggingface_hub reads them: HF_TOKEN or
`hf auth login`). --dry_run stops after the folder and prints what would be uploaded.
"""

import argparse
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import yaml

from espnet2_sonar.utils.hashing import file_sha256
from espnet2_sonar.utils.model_card import ModelCardFacts, model_card
from espnet2_sonar.utils.packing import CONFIG_NAME

MARKER = ".hf_upload"  # marks a folder this tool made (and may rewrite)
COPIED = ("packed.zip", "encoder.pt", "tokenizer.pt")


def _method(config: dict) -> str:
    if "tokenizer_train_conf" in config:
        return "BEATs tokenizer distillation"
    if "teacher" in config:
        return f"frame regression of a frozen teacher ({config['teacher']})"
    tokenizer = config.get("tokenizer")
    lambdas = config.get("model_conf") or {}
    if tokenizer == "random_projection":
        return "BEATs masked audio modelling (random-projection tokens)"
    if tokenizer == "occ" and (lambdas.get("lambda_tok", 0) or lambdas.get("lambda_model", 0)):
        return "SONAR continual pre-training"
    if tokenizer == "frozen" and not (lambdas.get("lambda_tok", 0) or lambdas.get("lambda_model", 0)):
        return "direct continual pre-training (DCP)"
    return f"masked audio modelling ({tokenizer} tokenizer)"


def _model_rows(folder: Path, config: dict) -> List[Tuple[str, str]]:
    rows = []
    if (folder / "encoder.pt").is_file():
        ckpt = torch.load(folder / "encoder.pt", map_location="cpu", weights_only=True)
        cfg = ckpt.get("cfg", {})
        params = sum(v.numel() for v in ckpt.get("model", {}).values())
        rows.append(("encoder", f"BEATs, {cfg.get('encoder_layers', '?')} layers x {cfg.get('encoder_embed_dim', '?')} "
                                f"dims, {params / 1e6:.2f} M parameters"))
    if config.get("tokenizer"):
        rows.append(("tokenizer", str(config["tokenizer"])))
    for key in ("encoder_conf", "tokenizer_conf", "model_conf"):
        if config.get(key):
            rows.append((key, json.dumps(config[key], sort_keys=True)))
    return rows


def _training_rows(config: dict) -> List[Tuple[str, str]]:
    keys = ("max_epoch", "num_iters_per_epoch", "batch_type", "batch_size", "batch_bins", "crop_seconds",
            "optim", "optim_conf", "scheduler", "scheduler_conf", "seed", "use_amp")
    if config.get("batch_type") not in ("numel", "length", "folded"):
        keys = tuple(k for k in keys if k != "batch_bins")  # read only by these batch types
    rows = [(k, json.dumps(config[k], sort_keys=True) if isinstance(config[k], dict) else str(config[k]))
            for k in keys if config.get(k) is not None]
    for entry in config.get("train_data_path_and_name_and_type") or []:
        rows.append(("train data", " ".join(map(str, entry))))
    return rows


def assemble(exp_dir: Path, repo_id: str, out_dir: Path, results: Optional[Path] = None) -> List[Path]:
    """Write the upload folder; returns its files (the card last)."""
    packed = exp_dir / "packed.zip"
    if not packed.is_file():
        raise FileNotFoundError(f"{packed}: missing; export the model first (python -m espnet2_sonar.bin.sonar_export "
                                f"--exp_dir {exp_dir})")
    if results is not None and not results.is_file():
        raise FileNotFoundError(f"--results {results}: no such file")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(f"{out_dir}: not empty and not made by hf_upload; give another --out_dir")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    (out_dir / MARKER).touch()
    for name in COPIED:
        if (exp_dir / name).is_file():
            shutil.copyfile(exp_dir / name, out_dir / name)
    with zipfile.ZipFile(packed) as z:
        config_text = z.read(CONFIG_NAME).decode()
        versions = {k: str(v) for k, v in yaml.safe_load(z.read("meta.yaml")).items()
                    if k in ("python", "torch", "espnet", "timestamp")}
        names = z.namelist()
    (out_dir / "config.yaml").write_text(config_text)
    config = yaml.safe_load(config_text)
    inputs: Dict[str, Tuple[str, str]] = {}
    if (exp_dir / "stage_inputs.json").is_file():
        record = json.loads((exp_dir / "stage_inputs.json").read_text())
        inputs = {k: (v["path"], v["sha256"]) for k, v in record.get("inputs", {}).items()}
    if results is not None:
        shutil.copyfile(results, out_dir / "RESULTS.md")
    files = sorted(p for p in out_dir.iterdir() if p.name != MARKER)
    facts = ModelCardFacts(
        repo_id=repo_id, method=_method(config), model=_model_rows(out_dir, config),
        training=_training_rows(config) + [("packed members", ", ".join(names))], inputs=inputs,
        files=[(p.name, p.stat().st_size, file_sha256(p)) for p in files], versions=versions,
        results=results.read_text() if results is not None else None,
        results_source=str(results) if results is not None else None,
    )
    (out_dir / "README.md").write_text(model_card(facts))
    return files + [out_dir / "README.md"]


def upload(out_dir: Path, repo_id: str, private: bool, message: str) -> str:
    """Create the model repo if needed and upload ``out_dir``; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(out_dir), repo_id=repo_id, repo_type="model",
                             commit_message=message, ignore_patterns=[MARKER])
    return str(getattr(info, "commit_url", info))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, type=Path, help="an exported dir (packed.zip, encoder.pt, ...)")
    p.add_argument("--repo", required=True, help="owner/name of the Hub model repo")
    p.add_argument("--out_dir", type=Path, default=None, help="upload folder (default EXP_DIR/hf_upload)")
    p.add_argument("--results", type=Path, default=None, help="markdown results quoted in the card (RESULTS.md)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", default="espnet2_sonar model upload", help="commit message")
    p.add_argument("--dry_run", action="store_true", help="write the folder and list it; upload nothing")
    args = p.parse_args(argv)
    if args.repo.count("/") != 1 or not all(args.repo.split("/")):
        p.error(f"--repo must be owner/name, got '{args.repo}'")
    out_dir = args.out_dir or args.exp_dir / "hf_upload"
    try:
        files = assemble(args.exp_dir, args.repo, out_dir, args.results)
    except (FileNotFoundError, FileExistsError, KeyError) as e:
        print(f"hf_upload: {e}", file=sys.stderr)
        return 1
    for f in files:
        print(f"{'would upload' if args.dry_run else 'upload'}: {f} ({f.stat().st_size} bytes)")
    if args.dry_run:
        return 0
    try:
        url = upload(out_dir, args.repo, args.private, args.message)
    except Exception as e:  # network, credentials, permissions: the folder stays ready
        print(f"hf_upload: uploading {out_dir} to https://huggingface.co/{args.repo} failed: "
              f"{type(e).__name__}: {e}\nThe folder is complete; with network access and a token (HF_TOKEN or "
              f"`hf auth login`), rerun this command or `hf upload {args.repo} {out_dir}`.", file=sys.stderr)
        return 1
    print(f"uploaded: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

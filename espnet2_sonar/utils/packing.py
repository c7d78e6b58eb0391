"""Self-contained ``packed.zip`` model archives, written by ESPnet's own pack code.

    written = pack_experiment("exp/sonar/music/config.yaml", "exp/sonar/music/3epoch.pth",
                              "exp/sonar/music/packed.zip", extra_files=["exp/sonar/music/stage_inputs.json"])
    files = espnet2.main_funcs.pack_funcs.unpack("packed.zip", "somewhere")  # anywhere else
    model, args = SonarTask.build_model_from_file(files["train_config"], files["model_file"])

ESPnet's ``pack`` writes ``meta.yaml`` (the member names, a timestamp and the python, torch and
espnet versions), and its ``unpack`` rewrites every string of the packed config that names a
member to where that member was unpacked. So building the model must need nothing but members:
every file a ``*_conf`` value of the training config names (the init checkpoints of encoder and
tokenizer, a tokenizer's teacher encoder; a Hugging Face spec's cached file) is packed as
``exp/init/<conf>/<key>/<file name>`` and the packed config names it so. The training-only ``init_param`` is emptied (``model.pth``
holds every weight; the experiment's ``stage_inputs.json``, when given, records where it came
from); data lists and shape files stay as ESPnet leaves them (nothing reads them to build).

Archive layout: ``meta.yaml``, ``exp/config.yaml``, ``exp/model.pth``, ``exp/init/...`` and the
extra files under ``exp/``.
"""

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Tuple

import yaml

from espnet2_sonar.utils.atomic_write import atomic_path

CONFIG_NAME = "exp/config.yaml"
MODEL_NAME = "exp/model.pth"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
HUB_PREFIXES = ("hf:", "http:", "https:")  # Hugging Face specs (espnet2_sonar.utils.hub), resolved to the cached file


def packable_files(config: dict, config_file: Path) -> Tuple[dict, Dict[str, Path]]:
    """The config with every file named in a ``*_conf`` value replaced by its packed name, and
    {packed name: source file}. A ``*_conf`` value that looks like a checkpoint path but names
    no file is an error naming the key: the packed model would not build anywhere else."""
    files: Dict[str, Path] = {}

    def walk(value, keys):
        if isinstance(value, dict):
            return {k: walk(v, keys + [str(k)]) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, keys + [str(i)]) for i, v in enumerate(value)]
        if isinstance(value, str) and value:
            path = Path(value)
            if value.startswith(HUB_PREFIXES):  # a Hugging Face spec: pack the file it names
                from espnet2_sonar.utils.hub import parse_hub_spec, resolve_checkpoint_path

                if parse_hub_spec(value) is not None:
                    path = resolve_checkpoint_path(value)
            if path.is_file():
                name = "/".join(["exp", "init", *keys, path.name])
                files[name] = path
                return name
            if path.suffix in CHECKPOINT_SUFFIXES:
                raise FileNotFoundError(
                    f"{config_file}: {'.'.join(keys)}={value} names no file (from {Path.cwd()}); "
                    "pack from the dir the training ran in, or fix the path")
        return value

    packed = dict(config)
    for key, value in config.items():
        if key.endswith("_conf") and isinstance(value, dict):
            packed[key] = walk(value, [key])
    if packed.get("init_param"):
        packed["init_param"] = []
    return packed, files


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def pack_experiment(config_file, model_file, outpath, extra_files: Iterable = ()) -> Dict[str, str]:
    """Write ``outpath`` (a .zip) with ESPnet's ``pack``; returns {packed name: source path}.

    Relative file names in the config are read from the current directory (where the recipe
    trained). The zip is written next to ``outpath`` and renamed, so a crash leaves no half file.
    """
    from espnet2.main_funcs.pack_funcs import pack

    config_file, model_file, outpath = Path(config_file), Path(model_file), Path(outpath).absolute()
    if outpath.suffix != ".zip":
        raise ValueError(f"{outpath}: the packed model is a .zip")
    config = yaml.safe_load(config_file.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: not a training config (a YAML mapping)")
    packed_config, init_files = packable_files(config, config_file)
    sources = {MODEL_NAME: model_file, **init_files}
    for extra in extra_files:
        sources[f"exp/{Path(extra).name}"] = Path(extra)
    outpath.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(outpath, suffix=".zip") as tmp_zip, \
            tempfile.TemporaryDirectory(dir=outpath.parent, prefix=".pack_") as staging:
        staging = Path(staging)
        (staging / "exp").mkdir()
        (staging / CONFIG_NAME).write_text(yaml.safe_dump(packed_config, sort_keys=False))
        for name, src in sources.items():
            _link_or_copy(src, staging / name)
        options = sorted(n for n in sources if n != MODEL_NAME)
        # pack() names members relative to the current dir and prints each one
        with contextlib.chdir(staging), contextlib.redirect_stdout(io.StringIO()):
            pack(files={"model_file": MODEL_NAME}, yaml_files={"train_config": CONFIG_NAME},
                 outpath=tmp_zip, option=options)
    return {CONFIG_NAME: str(config_file), **{n: str(p) for n, p in sources.items()}}

"""Run s3prl's own ``run_downstream.py`` (legacy ``downstream.runner.Runner``) with our upstream.

s3prl's runner does not import on this stack, for reasons unrelated to training:

* it imports ``HfFolder`` and ``Repository`` from ``huggingface_hub``; both were removed
  in huggingface_hub 1.0, which transformers needs. s3prl uses them only to log in to and
  push to the Hugging Face Hub (``--hub huggingface``, ``--push_to_hf_hub``).
  ``install_compat_shims`` adds placeholders under those two names, only when they are
  missing, that raise a ``RuntimeError`` saying so as soon as they are used;
* it imports ``tensorboardX`` (not installed; ESPnet uses ``tensorboard``). When it is
  missing, ``tensorboardX`` is aliased to ``torch.utils.tensorboard`` (same
  ``SummaryWriter`` API);
* resuming / evaluating (``-e``, ``-i``) ``torch.load``s s3prl's own checkpoints, which
  hold an ``argparse.Namespace``; torch >= 2.6 loads with ``weights_only=True`` and
  refuses it, so ``argparse.Namespace`` is added to torch's safe globals.

``run_downstream(argv)`` applies these, registers the ``sonar_*`` upstreams and the
``sonar_utterance`` downstream (``downstream.py``), then calls s3prl's
``run_downstream.main()`` with ``argv``. Options added by this wrapper (removed before s3prl
parses the rest):

    --train_dir DIR --dev_dir DIR --test_dir DIR
        set ``downstream_expert.datarc.{train,dev,test}_dir`` (via s3prl's ``-o``)

With ``-d sonar_utterance`` and neither ``-c`` nor ``-e``, ``DEFAULT_CONFIG`` is written to
a temporary YAML and passed as ``-c`` (the installed s3prl ships no downstream configs).
Without ``--device`` and without CUDA, ``--device cpu`` is added (s3prl defaults to cuda).
Note that s3prl's ``main`` seeds the global RNGs and replaces ``builtins.isinstance``
(its DDP workaround): run it in its own process, as ``bin/s3prl_downstream.py`` does.
"""

import argparse
import importlib.util
import sys
import tempfile
import types
from typing import List

DOWNSTREAM_NAME = "sonar_utterance"
_HUB_NAMES = ("HfFolder", "Repository")


class _Unavailable(type):
    """Metaclass of the placeholders: any use (call or attribute) raises."""

    def _fail(cls):
        raise RuntimeError(
            f"huggingface_hub.{cls.__name__} does not exist in the installed huggingface_hub "
            "(removed in 1.0); s3prl's Hugging Face Hub login/push (--hub huggingface, "
            "--push_to_hf_hub) cannot be used with espnet2_sonar"
        )

    def __call__(cls, *args, **kwargs):
        cls._fail()

    def __getattr__(cls, name):
        if name.startswith("_"):  # introspection (typing, pickle, inspect) sees a plain class
            raise AttributeError(name)
        cls._fail()


def install_compat_shims() -> List[str]:
    """Make ``s3prl.downstream.runner`` importable; returns what was patched (idempotent)."""
    patched = []
    import huggingface_hub

    for name in _HUB_NAMES:
        if not hasattr(huggingface_hub, name):
            setattr(huggingface_hub, name, _Unavailable(name, (), {"__module__": "huggingface_hub"}))
            patched.append(f"huggingface_hub.{name}")
    if "tensorboardX" not in sys.modules and importlib.util.find_spec("tensorboardX") is None:
        from torch.utils.tensorboard import SummaryWriter

        alias = types.ModuleType("tensorboardX")
        alias.SummaryWriter = SummaryWriter
        alias.__doc__ = "espnet2_sonar alias of torch.utils.tensorboard for s3prl's runner"
        sys.modules["tensorboardX"] = alias
        patched.append("tensorboardX")
    import torch

    torch.serialization.add_safe_globals([argparse.Namespace])
    return patched


def register_downstream() -> None:
    """Make ``s3prl.downstream.sonar_utterance.expert`` importable (the runner's lookup)."""
    from . import downstream

    package = f"s3prl.downstream.{DOWNSTREAM_NAME}"
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = []  # a package with no files of its own
        pkg.expert = downstream
        sys.modules[package] = pkg
    sys.modules[f"{package}.expert"] = downstream


def import_runner():
    """``s3prl.downstream.runner.Runner`` with the shims installed and our entries registered."""
    install_compat_shims()
    import espnet2_sonar.s3prl_upstream  # noqa: F401  (registers sonar_* into s3prl.hub)

    register_downstream()
    from s3prl.downstream.runner import Runner

    return Runner


def _has(argv: List[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in argv for f in flags)


def build_argv(argv: List[str]) -> List[str]:
    """Translate this wrapper's options into s3prl ``run_downstream.py`` arguments."""
    extra = argparse.ArgumentParser(add_help=False)
    for split in ("train", "dev", "test"):
        extra.add_argument(f"--{split}_dir")
    ours, rest = extra.parse_known_args(argv)
    overrides = [
        f"config.downstream_expert.datarc.{split}_dir={getattr(ours, f'{split}_dir')!r}"
        for split in ("train", "dev", "test")
        if getattr(ours, f"{split}_dir") is not None
    ]
    if overrides:
        if _has(rest, "-o", "--override"):
            i = next(i for i, a in enumerate(rest) if a in ("-o", "--override"))
            rest[i + 1] = ",,".join([rest[i + 1]] + overrides)
        else:
            rest += ["-o", ",,".join(overrides)]
    downstream = None
    for i, a in enumerate(rest):
        if a in ("-d", "--downstream") and i + 1 < len(rest):
            downstream = rest[i + 1]
    if downstream == DOWNSTREAM_NAME and not _has(rest, "-c", "--config", "-e", "--past_exp"):
        import yaml

        from .downstream import DEFAULT_CONFIG

        with tempfile.NamedTemporaryFile("w", suffix=f"_{DOWNSTREAM_NAME}.yaml", delete=False) as f:
            yaml.safe_dump(DEFAULT_CONFIG, f)
        rest += ["-c", f.name]
    if not _has(rest, "--device"):
        import torch

        if not torch.cuda.is_available():
            rest += ["--device", "cpu"]
    return rest


def run_downstream(argv: List[str]) -> None:
    """Run s3prl's ``run_downstream.main()`` on ``argv`` with the sonar entries available."""
    import_runner()
    from s3prl import run_downstream as s3prl_run_downstream

    saved = sys.argv
    sys.argv = ["run_downstream.py"] + build_argv(list(argv))
    try:
        s3prl_run_downstream.main()
    finally:
        sys.argv = saved

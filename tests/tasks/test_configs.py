"""Every shipped YAML under conf/ parses with its task and names only known classes.

The recipe feeds these files to ESPnet's parser; a typo in a key or a class name would
otherwise surface only on a GPU machine hours into a run.
"""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "conf").glob("*/*.yaml"))


def _task(name: str):
    if name.startswith("decar_"):
        from espnet2_sonar.tasks.decar import DecarTask as task
    elif name.startswith("ssondo_"):
        from espnet2_sonar.tasks.ssondo import SsondoTask as task
    elif name == "tokenizer.yaml":
        from espnet2_sonar.tasks.tokenizer import TokenizerTask as task
    elif name == "pretrain_teacher.yaml":
        from espnet2_sonar.tasks.teacher_distill import TeacherDistillTask as task
    else:
        from espnet2_sonar.tasks.sonar import SonarTask as task
    return task


def test_both_sizes_ship_the_same_configs():
    names = {size: sorted(p.name for p in (REPO / "conf" / size).glob("*.yaml")) for size in ("tiny", "base")}
    assert set(names["base"]) <= set(names["tiny"])
    missing = set(names["tiny"]) - set(names["base"]) - {"decar_efficientnet.yaml"}  # the CNN is CPU-only
    assert not missing, f"conf/base lacks {sorted(missing)}"


@pytest.mark.parametrize("config", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_config_parses_with_its_task(config):
    task = _task(config.name)
    args = task.get_parser().parse_args(["--config", str(config)])
    conf = yaml.safe_load(config.read_text())
    for key, value in conf.items():
        assert hasattr(args, key), f"{config}: unknown key {key!r}"
    for choices in task.class_choices_list:
        chosen = getattr(args, choices.name)
        if chosen is not None:
            assert choices.get_class(chosen) is not None, f"{config}: {choices.name}={chosen!r} unknown"


def test_an_unknown_key_is_rejected(tmp_path):
    from espnet2_sonar.tasks.sonar import SonarTask

    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "conf" / "tiny" / "train_sonar.yaml").read_text() + "lamda_model: 1.0\n")
    with pytest.raises(SystemExit):
        SonarTask.get_parser().parse_args(["--config", str(bad)])


def _config_dataclasses():
    """(module, class name) of every ``@dataclass`` class named ``*Config`` in the package."""
    import ast

    found = []
    for path in sorted((REPO / "espnet2_sonar").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config") and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                module = ".".join(path.relative_to(REPO).with_suffix("").parts)
                found.append((module, node.name))
    return found


def test_every_config_dataclass_is_a_strict_config():
    import importlib

    from espnet2_sonar.utils.config import StrictConfig

    configs = _config_dataclasses()
    assert len(configs) >= 20, configs
    loose = [f"{m}.{n}" for m, n in configs if not issubclass(getattr(importlib.import_module(m), n), StrictConfig)]
    assert not loose, f"not StrictConfig (unknown keys would pass silently): {loose}"
    for m, n in configs:
        cls = getattr(importlib.import_module(m), n)
        with pytest.raises(ValueError, match=rf"unknown {n} key\(s\): \['not_a_field'\]; known: \["):
            cls.from_dict({"not_a_field": 1})

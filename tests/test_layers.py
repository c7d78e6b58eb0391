"""Imports point one way: down the layer order, never sideways between siblings, never in a cycle.

Layers, bottom first (``espnet2_sonar/__init__.py`` gives the same order):

0. ``utils``: configs, CLI, hub, precision, atomic writes, the checkpoint-kind registry.
1. ``data``, ``nn``: audio and corpus handling; model-agnostic tensor helpers (masks,
   pooling, strict state-dict comparison).
2. ``beats``, ``efficientnet``: model families on the shared blocks alone: the BEATs encoder
   (config, encoder, frontend, masking, interop); DECAR's log-mel EfficientNet (config,
   log-mel, encoder, checkpoint file, interop).
3. ``tokenizer``, ``teachers``, ``students``: model families built on BEATs' blocks or
   frontend: tokenizers; frozen frame-level teachers; the S-SONDO students (backbones,
   encoder on BEATs' fbank, mapping head, checkpoint file).
4. ``distill``, ``sampling``: distillation losses/teachers; embedding, k-means, replay sampling.
5. ``sonar``, ``pace``, ``ssondo``, ``decar``: the methods (training, losses, clustering,
   samplers); the model families they train live below them, so ``eval`` loads a DECAR
   EfficientNet or an S-SONDO student file without importing a method.
6. ``eval``: frozen probes, checkpoint loading, reports.
7. ``tasks``, ``s3prl_upstream``: ESPnet tasks and the s3prl integration.
8. ``bin``, ``adapt``: entry points; ``adapt`` is the one-command pipeline that composes the
   ``bin`` tools (and ``bin.adapt`` is its CLI), so the two may import each other.

Every import counts: top-level, inside functions, under ``TYPE_CHECKING``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "espnet2_sonar"
LAYERS = [["utils"], ["data", "nn"], ["beats", "efficientnet"], ["tokenizer", "teachers", "students"], ["distill", "sampling"],
          ["sonar", "pace", "ssondo", "decar"], ["eval"], ["tasks", "s3prl_upstream"], ["bin", "adapt"]]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
SIDEWAYS = {("bin", "adapt"), ("adapt", "bin")}
"""Sibling imports the order allows (same rank)."""
KNOWN_VIOLATIONS: set = set()
"""Edges that break the order today; each is a bug to fix, not a precedent. They are left out
of the cycle checks too. Remove an entry when its edge goes (stale entries fail)."""


def _modules():
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules) -> set:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} - {""} == set(RANK)


def test_imports_point_down_the_layer_order():
    bad = set()
    for a, targets in _graph().items():
        for b in targets:
            pa, pb = _package(a), _package(b)
            if pa and pb and pa != pb and (RANK[pb] > RANK[pa] or (RANK[pb] == RANK[pa] and (pa, pb) not in SIDEWAYS)):
                bad.add(f"{a} -> {b}")
    new, stale = sorted(bad - KNOWN_VIOLATIONS), sorted(KNOWN_VIOLATIONS - bad)
    assert not new, "imports up or sideways the layer order (see tests/test_layers.py):\n" + "\n".join(new)
    assert not stale, f"fixed, remove from KNOWN_VIOLATIONS: {stale}"


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycles(level):
    graph = {a: {b for b in targets if f"{a} -> {b}" not in KNOWN_VIOLATIONS} for a, targets in _graph().items()}
    if level == "package":  # sideways siblings may import each other; known violations aside
        edges = {}
        for a, targets in graph.items():
            for b in targets:
                pa, pb = _package(a), _package(b)
                if pa and pb and pa != pb and (pa, pb) not in SIDEWAYS:
                    edges.setdefault(pa, set()).add(pb)
        graph = edges
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail(f"{level} import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


TESTS = Path(__file__).resolve().parent
TEST_DIRS_BESIDE_PACKAGES = {"egs2": "the recipes", "fixtures": "data makers (on sys.path via conftest.py)"}
TOP_LEVEL_FILES = {"conftest.py", "test_layers.py", "test_docs.py"}


def test_tests_mirror_the_package_tree():
    """tests/<sub-package>/ holds the tests of espnet2_sonar/<sub-package>/; nothing else sits at
    the top but the repository-wide checks and conftest.py; test file names are unique (pytest
    imports them by base name); no test imports another test module."""
    problems = []
    for path in sorted(TESTS.iterdir()):
        if path.name.startswith((".", "__")):
            continue
        if path.is_dir() and path.name not in RANK and path.name not in TEST_DIRS_BESIDE_PACKAGES:
            problems.append(f"tests/{path.name}/ is neither an espnet2_sonar sub-package nor one of {sorted(TEST_DIRS_BESIDE_PACKAGES)}")
        if path.is_file() and path.suffix == ".py" and path.name not in TOP_LEVEL_FILES:
            problems.append(f"tests/{path.name} belongs in tests/<sub-package>/")
    names = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(TESTS)))
    problems += [f"test file name used twice: {paths}" for paths in names.values() if len(paths) > 1]
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            problems += [f"{path.relative_to(TESTS)} imports the test module {m} (shared code goes to tests/fixtures/)"
                         for m in mods if m.split(".")[0].startswith("test_")]
    assert not problems, "\n".join(problems)

"""The docs are self-contained: README.md, docs/*.md and the recipe READMEs point at nothing
outside the repository, every file they name exists (generated run outputs under exp/ and
data/ aside), and the LICENSE is Apache-2.0 as setup.py says."""

import re
from pathlib import Path

from sonar_fixtures import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "egs2").glob("*/sonar1/README.md"))]
REPO_DIRS = ("espnet2_sonar/", "egs2/", "conf/", "scripts/", "tests/", "bench/", "docs/")
RECIPE_DIRS = ("local/", "utils/", "stages/", "conf/", "results/")
OUTSIDE = re.compile(r"(?<![\w.])(\.\./shared|/work/)")  # where the project's own notes live


def _named_paths(doc: Path):
    """(token, path it names) for each backticked file name in ``doc`` (no placeholders)."""
    for token in re.findall(r"`([^`\s]+)`", doc.read_text()):
        if re.search(r"[<>*{}$]", token):
            continue
        name = token.split(":")[0].rstrip(".,")
        if name.startswith(REPO_DIRS):
            yield token, REPO / name
        elif name.startswith("../"):  # relative to the doc: must stay inside the repository
            yield token, doc.parent / name
        elif doc.parent.name == "sonar1" and name.startswith(RECIPE_DIRS):
            yield token, doc.parent / name


def test_docs_name_only_files_inside_the_repository():
    assert len(DOCS) >= 4 and (REPO / "docs" / "DESIGN.md") in DOCS
    problems = []
    for doc in DOCS:
        text = doc.read_text()
        problems += [f"{doc.name}: outside the repository: {m.group(0)}" for m in OUTSIDE.finditer(text)]
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"(https?|mailto):|#", target):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists() or not path.is_relative_to(REPO.resolve()):
                problems.append(f"{doc.name}: link {target} does not resolve inside the repository")
        for token, path in _named_paths(doc):
            generated = {"exp", "data"} & set(Path(token).parts)
            if not generated and (not path.exists() or not path.resolve().is_relative_to(REPO.resolve())):
                problems.append(f"{doc.relative_to(REPO)}: `{token}` does not exist")
    assert problems == []


def test_the_license_is_apache_2_and_setup_says_so():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 150
    assert 'license="Apache-2.0"' in (REPO / "setup.py").read_text()

#!/usr/bin/env python3
"""Copy README.md's generated blocks from their committed sources, or check they match.

    python scripts/sync_readme_results.py [--readme README.md] [--check]

README.md quotes published results instead of retyping them. Each quote is a block

    <!-- BEGIN generated from egs2/debian_sounds/sonar1/results/<date>_<name>/RESULTS.md -->
    ...
    <!-- END generated from egs2/debian_sounds/sonar1/results/<date>_<name>/RESULTS.md -->

whose PATH is relative to the repository root (the parent of this script's ``scripts/``, or
``--root``). When PATH is a RESULTS.md (``espnet2_sonar.bin.results_md``: it has the
``<!-- BEGIN README results -->`` / ``<!-- END README results -->`` lines), the block holds the text
between those lines, i.e. stage 7's README_section.md; otherwise the whole file. The text is
copied verbatim, one newline after the BEGIN line and before the END line, so a second run
changes nothing. Text outside the blocks is left alone, and so are marker lines inside a
fenced code block (documentation of this syntax).

``--check`` writes nothing: it exits 1 and prints a short unified diff of each block that differs
from its source, 0 when all are in sync (``tests/bin/test_results_md.py`` runs it on the real
README.md). Errors (exit 2) name the file and line: a missing source, a BEGIN without END, an END
without BEGIN, a BEGIN/END pair naming different paths.
"""

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from anywhere, without the venv's editable install
    sys.path.insert(0, str(ROOT))

from espnet2_sonar.bin.results_md import extract_readme_results  # noqa: E402

_BEGIN = re.compile(r"^<!-- BEGIN generated from (\S.*?) -->$")
_END = re.compile(r"^<!-- END generated from (\S.*?) -->$")
_ANY = re.compile(r"^<!--\s*(BEGIN|END) generated\b")
_FENCE = re.compile(r"^(`{3,}|~{3,})")
DIFF_LINES = 40  # per block in --check output


class SyncError(ValueError):
    """Malformed README markers or a missing/malformed source (the message names file and line)."""


@dataclass
class Block:
    path: str  # as written in the markers, relative to the repository root
    begin: int  # 0-based line index of the BEGIN line
    end: int  # 0-based line index of the END line
    content: str  # the lines strictly between them, with their newlines


def parse_blocks(text: str, name: str = "README.md") -> List[Block]:
    """The generated blocks of ``text``, in order; :class:`SyncError` naming ``name:line`` on a
    malformed marker, nesting, an END without BEGIN, mismatched paths or a BEGIN left open."""
    lines = text.splitlines(keepends=True)
    blocks, open_at, open_path, fence = [], None, None, None
    for i, raw in enumerate(lines):
        line = raw.rstrip("\r\n").strip()
        if open_at is None:  # markers shown inside a code fence (documentation) are not blocks
            opener = _FENCE.match(line)
            if fence is None and opener:
                fence = opener.group(1)
                continue
            if fence is not None:
                if line.startswith(fence) and not line[len(fence):].strip(fence[0]).strip():
                    fence = None
                continue
        if not _ANY.match(line):
            continue
        begin, end = _BEGIN.match(line), _END.match(line)
        if not (begin or end):
            raise SyncError(f"{name}:{i + 1}: malformed marker {line!r} (expected "
                            "'<!-- BEGIN generated from PATH -->' or '<!-- END generated from PATH -->')")
        if begin:
            if open_at is not None:
                raise SyncError(f"{name}:{i + 1}: BEGIN inside the block opened at line {open_at + 1} "
                                f"(from {open_path}), which has no END before it")
            open_at, open_path = i, begin.group(1)
        else:
            if open_at is None:
                raise SyncError(f"{name}:{i + 1}: END generated from {end.group(1)} without a BEGIN before it")
            if end.group(1) != open_path:
                raise SyncError(f"{name}:{i + 1}: END generated from {end.group(1)} closes the block opened at "
                                f"line {open_at + 1} from {open_path}")
            blocks.append(Block(open_path, open_at, i, "".join(lines[open_at + 1:i])))
            open_at, open_path = None, None
    if open_at is not None:
        raise SyncError(f"{name}:{open_at + 1}: BEGIN generated from {open_path} has no END")
    return blocks


def source_text(root: Path, path: str, where: str = "README.md") -> str:
    """What a block from ``path`` must hold: a RESULTS.md's marked section, else the whole file;
    always ending with a newline (unless empty). ``where`` (``README.md:line``) is quoted in errors."""
    file = root / path
    if not file.is_file():
        raise SyncError(f"{where}: source {path} not found (looked for {file})")
    text = file.read_text()
    try:
        section = extract_readme_results(text, str(file))
    except ValueError as e:
        raise SyncError(f"{where}: {e}") from None
    if section is not None:
        text = section
    if text and not text.endswith("\n"):
        text += "\n"
    return text


def sync(text: str, root: Path, name: str = "README.md") -> Tuple[str, List[Tuple[Block, str]]]:
    """(``text`` with every block's content replaced by its source, [(block, expected content) for
    the blocks that differ])."""
    lines = text.splitlines(keepends=True)
    blocks = parse_blocks(text, name)
    changed = []
    for block in reversed(blocks):  # replace from the end: earlier line indices stay valid
        expected = source_text(root, block.path, f"{name}:{block.begin + 1}")
        if block.content != expected:
            changed.append((block, expected))
        lines[block.begin + 1:block.end] = expected.splitlines(keepends=True)
    return "".join(lines), list(reversed(changed))


def block_diff(block: Block, expected: str, name: str = "README.md", limit: int = DIFF_LINES) -> str:
    """A unified diff README block -> source, cut to ``limit`` lines."""
    diff = list(difflib.unified_diff(block.content.splitlines(keepends=True), expected.splitlines(keepends=True),
                                     fromfile=f"{name}:{block.begin + 1} (block)", tofile=block.path, n=1))
    diff = [d if d.endswith("\n") else d + "\n" for d in diff]
    if len(diff) > limit:
        diff = diff[:limit] + [f"... ({len(diff) - limit} more diff lines)\n"]
    return "".join(diff)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default=None,
                   help="README to update (default: README.md at the repository root; a relative path is "
                        "relative to the current directory)")
    p.add_argument("--root", default=None,
                   help="directory the block PATHs are relative to (default: the repository root, "
                        f"{ROOT})")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any block differs")
    args = p.parse_args(argv)
    root = Path(args.root) if args.root else ROOT
    readme = Path(args.readme) if args.readme else ROOT / "README.md"
    name = str(readme)
    try:
        if not readme.is_file():
            raise SyncError(f"{readme}: no such file")
        text = readme.read_text()
        new, changed = sync(text, root, name)
    except SyncError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = len(parse_blocks(text, name))
    if args.check:
        if changed:
            for block, expected in changed:
                print(f"{name}:{block.begin + 1}: block generated from {block.path} differs from its source")
                print(block_diff(block, expected, name), end="")
            print(f"{len(changed)} of {n} block(s) out of sync; run: python scripts/sync_readme_results.py")
            return 1
        print(f"{name}: {n} generated block(s), all in sync" if n else
              f"{name}: no '<!-- BEGIN generated from PATH -->' block, nothing to check")
        return 0
    if new != text:
        readme.write_text(new)
    print(f"{name}: {len(changed)} of {n} generated block(s) updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

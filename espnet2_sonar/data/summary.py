"""The corpus summary: clips, minutes and classes per set/split, skipped files by reason."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from espnet2_sonar.utils.atomic_write import atomic_write


@dataclass
class SetStats:
    name: str  # "pools/music" or "tasks/langid/test"
    clips: int
    minutes: float
    classes: int  # 0 for pools
    recordings: int


@dataclass
class Summary:
    subset: str
    seed: int
    sets: list[SetStats] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # reason category -> count
    skipped_examples: dict = field(default_factory=dict)  # reason category -> a few paths
    excluded: dict = field(default_factory=dict)  # rule -> count (duplicates, caps, no split)
    download_mb: float = 0.0  # fetched in this run
    packages_mb: float = 0.0  # size of all packages used (cached or not)
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            f"# Corpus summary (subset `{self.subset}`, seed {self.seed})",
            "",
            "| set | clips | minutes | classes | recordings |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in self.sets:
            lines.append(f"| {s.name} | {s.clips} | {s.minutes:.1f} | {s.classes or '-'} | {s.recordings} |")
        lines += ["", f"Packages: {self.packages_mb:.0f} MB (downloaded this run: {self.download_mb:.0f} MB); "
                  f"build time {self.seconds:.0f} s.", ""]
        total = sum(self.skipped.values())
        lines.append(f"Skipped source files/segments: {total}")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
            ex = ", ".join(self.skipped_examples.get(reason, [])[:2])
            lines.append(f"- {reason}: {n}" + (f" (e.g. {ex})" if ex else ""))
        if self.excluded:
            lines += ["", f"Left out by the corpus rules: {sum(self.excluded.values())}"]
            lines += [f"- {r}: {n}" for r, n in sorted(self.excluded.items(), key=lambda kv: -kv[1])]
        if self.notes:
            lines += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> None:
        for name, text in (("summary.md", self.to_markdown()),
                           ("summary.json", json.dumps(asdict(self), indent=1))):
            atomic_write(out_dir / name, text)


def reason_category(reason: str) -> str:
    """'corrupt or undecodable audio (Error opening ...)' -> 'corrupt or undecodable audio'."""
    text = re.sub(r"\s*\(.*\)$", "", reason)
    text = re.sub(r"^duplicate of .*", "duplicate content (one copy kept)", text)
    text = re.sub(r"^identical content with conflicting labels.*", "identical content with conflicting labels", text)
    text = re.sub(r"^(\w+): no split for source .*", r"\1: source not used by any split", text)
    text = re.sub(r"^(\w+): class .* has no training data", r"\1: class without training data", text)
    return text.strip()


def count_reasons(entries: list[tuple[str, str]]) -> tuple[dict, dict]:
    """[(path, reason)] -> ({reason category: n}, {reason category: [a few paths]})."""
    counts: Counter = Counter()
    examples: dict = {}
    for where, reason in entries:
        cat = reason_category(reason)
        counts[cat] += 1
        if len(examples.setdefault(cat, [])) < 3:
            examples[cat].append(where)
    return dict(counts), examples

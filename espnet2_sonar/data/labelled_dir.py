"""A labelled Kaldi-style data dir (``wav.scp`` + ``utt2label``) as the frozen-encoder probes
and benchmarks read it: plain audio file paths, every utterance labelled."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List


@dataclass
class LabelledDir:
    """A Kaldi-style dir with ``wav.scp`` and ``utt2label`` (same utterance ids)."""

    path: Path
    utt_ids: List[str]
    """In ``wav.scp`` order."""
    wav_paths: List[str]
    labels: List[str]


def read_labelled_dir(path: str | os.PathLike) -> LabelledDir:
    """Read ``wav.scp`` + ``utt2label`` of ``path``; errors name the file and the problem.

    Every ``wav.scp`` entry must be a plain file path (no Kaldi pipes) and have a label,
    and every labelled utterance must be in ``wav.scp``.
    """
    from espnet2_sonar.data.espnet_loader import read_scp

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"data dir {path} does not exist")
    files = {}
    for name in ("wav.scp", "utt2label"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} is missing (a probe data dir needs wav.scp and utt2label)")
        files[name] = read_scp(path / name)
    wavs, labels = files["wav.scp"], files["utt2label"]
    if not wavs:
        raise ValueError(f"{path / 'wav.scp'} lists no utterances")
    unlabelled = [u for u in wavs if u not in labels]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} utterance(s) of {path / 'wav.scp'} have no entry in utt2label, e.g. {unlabelled[:3]}"
        )
    missing = [u for u in labels if u not in wavs]
    if missing:
        raise ValueError(f"{len(missing)} utterance(s) of {path / 'utt2label'} are not in wav.scp, e.g. {missing[:3]}")
    wav_paths = []
    for utt, value in wavs.items():
        if value.rstrip().endswith("|"):
            raise ValueError(f"{path / 'wav.scp'}: {utt}: pipe commands are not supported, give a file path")
        p = Path(value)
        if not p.is_absolute():
            p = Path.cwd() / p
        if not p.is_file():
            raise FileNotFoundError(f"{path / 'wav.scp'}: {utt}: audio file {value} does not exist")
        wav_paths.append(str(p))
    return LabelledDir(path, list(wavs), wav_paths, [labels[u] for u in wavs])

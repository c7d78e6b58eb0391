"""s3prl downstream ``sonar_utterance``: utterance classification on Kaldi-style dirs.

The installed s3prl ships no downstream whose data is a plain file list (and no downstream
``config.yaml`` files at all), so this follows s3prl's legacy downstream contract
(``downstream/example/expert.py``) for our data layout: each split is a dir with
``wav.scp`` and ``utt2label``. Model (SUPERB utterance-level recipe): the featurizer's
weighted layer sum -> optional linear projection -> mean pooling over valid frames ->
linear classifier. ``runner.py`` registers this module as
``s3prl.downstream.sonar_utterance.expert``.

Config (``downstream_expert`` in the s3prl YAML, defaults in ``DEFAULT_CONFIG``)::

    datarc: {train_dir, dev_dir, test_dir, train_batch_size, eval_batch_size,
             num_workers, min_seconds}
    modelrc: {projector_dim}       # 0: no projection

Waveforms shorter than ``min_seconds`` (default 0.2 s) are zero-padded to it, so s3prl's
featurizer keeps at least one 160 ms frame. Labels of dev/test must occur in train. Every
evaluation writes ``<expdir>/<split>_result.json`` (accuracy, n, step).
"""

import json
import math
from pathlib import Path
from typing import Dict, List

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.config import reject_unknown_keys
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE


DEFAULT_CONFIG: Dict = {
    "runner": {
        "total_steps": 2000,
        "gradient_clipping": 1.0,
        "gradient_accumulate_steps": 1,
        "log_step": 100,
        "eval_step": 200,
        "save_step": 200,
        "max_keep": 1,
        "eval_dataloaders": ["dev"],
    },
    "optimizer": {"name": "TorchOptim", "torch_optim_name": "Adam", "lr": 1.0e-3},
    "downstream_expert": {
        "datarc": {
            "train_dir": None,
            "dev_dir": None,
            "test_dir": None,
            "train_batch_size": 32,
            "eval_batch_size": 32,
            "num_workers": 0,
            "min_seconds": 0.2,
        },
        "modelrc": {"projector_dim": 256},
    },
}

_DATARC_KEYS = set(DEFAULT_CONFIG["downstream_expert"]["datarc"])
_MODELRC_KEYS = set(DEFAULT_CONFIG["downstream_expert"]["modelrc"])


def _check_keys(section: str, conf: Dict, known: set) -> Dict:
    reject_unknown_keys(conf, known, section, where="sonar_utterance")
    return conf


class KaldiLabelDataset(Dataset):
    """(waveform [T] float32, label index) pairs of a dir with wav.scp + utt2label."""

    def __init__(self, data_dir: str, classes: List[str] | None, min_seconds: float):
        from espnet2_sonar.data.labelled_dir import read_labelled_dir

        self.data = read_labelled_dir(data_dir)
        self.classes = classes if classes is not None else sorted(set(self.data.labels))
        index = {c: i for i, c in enumerate(self.classes)}
        unseen = sorted(set(self.data.labels) - set(index))
        if unseen:
            raise ValueError(f"{data_dir}/utt2label: label(s) {unseen} do not occur in the training dir")
        self.targets = [index[c] for c in self.data.labels]
        self.min_samples = int(math.ceil(min_seconds * SAMPLE_RATE))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from espnet2_sonar.data.audio import load_audio

        wav, _ = load_audio(self.data.wav_paths[i], target_sr=SAMPLE_RATE)
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
        if wav.numel() < self.min_samples:
            wav = nn.functional.pad(wav, (0, self.min_samples - wav.numel()))
        return wav, self.targets[i]

    @staticmethod
    def collate_fn(items):
        wavs, labels = zip(*items)
        return list(wavs), list(labels)


class DownstreamExpert(nn.Module):
    """Utterance classifier over the featurizer output (s3prl legacy downstream contract)."""

    def __init__(self, upstream_dim: int, upstream_rate: int, downstream_expert: Dict, expdir: str, **kwargs):
        super().__init__()
        datarc = dict(DEFAULT_CONFIG["downstream_expert"]["datarc"])
        datarc.update(_check_keys("datarc", downstream_expert.get("datarc", {}), _DATARC_KEYS))
        modelrc = dict(DEFAULT_CONFIG["downstream_expert"]["modelrc"])
        modelrc.update(_check_keys("modelrc", downstream_expert.get("modelrc", {}), _MODELRC_KEYS))
        _check_keys("downstream_expert", downstream_expert, {"datarc", "modelrc"})
        for split in ("train_dir", "dev_dir", "test_dir"):
            if not datarc[split]:
                raise ValueError(f"sonar_utterance: downstream_expert.datarc.{split} is not set")
        self.datarc, self.expdir = datarc, Path(expdir)
        self.train_dataset = KaldiLabelDataset(datarc["train_dir"], None, datarc["min_seconds"])
        classes = self.train_dataset.classes
        self.datasets = {
            "train": self.train_dataset,
            "dev": KaldiLabelDataset(datarc["dev_dir"], classes, datarc["min_seconds"]),
            "test": KaldiLabelDataset(datarc["test_dir"], classes, datarc["min_seconds"]),
        }
        dim = modelrc["projector_dim"] or upstream_dim
        self.projector = nn.Linear(upstream_dim, dim) if modelrc["projector_dim"] else nn.Identity()
        self.classifier = nn.Linear(dim, len(classes))
        self.register_buffer("best_score", torch.zeros(1))

    def get_dataloader(self, split: str, epoch: int = 0) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"sonar_utterance: unknown split {split!r}; known: {sorted(self.datasets)}")
        dataset = self.datasets[split]
        if split == "train":
            from s3prl.utility.data import get_ddp_sampler

            sampler = get_ddp_sampler(dataset, epoch)
            return DataLoader(
                dataset,
                batch_size=self.datarc["train_batch_size"],
                shuffle=sampler is None,
                sampler=sampler,
                num_workers=self.datarc["num_workers"],
                collate_fn=dataset.collate_fn,
            )
        return DataLoader(
            dataset,
            batch_size=self.datarc["eval_batch_size"],
            shuffle=False,
            num_workers=self.datarc["num_workers"],
            collate_fn=dataset.collate_fn,
        )

    def forward(self, split: str, features: List[Tensor], labels: List[int], records, **kwargs) -> Tensor:
        """features: B unpadded [T_i, D] tensors; labels: B class indices -> mean CE loss."""
        lengths = torch.tensor([max(1, f.size(0)) for f in features], device=features[0].device)
        padded = nn.utils.rnn.pad_sequence(features, batch_first=True)  # [B, T, D]
        if padded.size(1) == 0:
            raise ValueError("sonar_utterance: the featurizer returned no frames (inputs too short)")
        hidden = self.projector(padded)  # [B, T, H]
        mask = valid_mask(lengths, hidden.size(1))
        pooled = (hidden * mask[..., None]).sum(dim=1) / lengths[:, None]  # [B, H]
        logits = self.classifier(pooled)  # [B, C]
        target = torch.as_tensor(labels, dtype=torch.long, device=logits.device)
        loss = nn.functional.cross_entropy(logits, target)
        records["loss"].append(loss.item())
        records["acc"] += (logits.argmax(dim=-1) == target).float().cpu().tolist()
        return loss

    def log_records(self, split, records, logger, global_step, batch_ids, total_batch_num, **kwargs) -> List[str]:
        save_names = []
        results = {key: float(torch.tensor(values).mean()) for key, values in records.items()}
        for key, value in results.items():
            logger.add_scalar(f"sonar_utterance/{split}-{key}", value, global_step=global_step)
        if split != "train":
            out = {"split": split, "step": int(global_step), "n": len(records["acc"]), "accuracy": results.get("acc")}
            atomic_write(self.expdir / f"{split}_result.json", json.dumps(out, indent=2) + "\n")
            if split == "dev" and results.get("acc", 0.0) > float(self.best_score):
                self.best_score.fill_(results["acc"])
                save_names.append(f"{split}-best.ckpt")
        return save_names

"""Whole-set feature extraction (resumable), the per-epoch clustering step and BN calibration."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from decar_fixtures import write_sound_dir
from espnet2_sonar.decar.batchnorm import batchnorm_layers, recalibrate_batchnorm_
from espnet2_sonar.efficientnet.model import EfficientNetEncoder
from espnet2_sonar.decar.cluster_features import extract_cluster_features, weights_digest
from espnet2_sonar.decar.model import DecarModel
from espnet2_sonar.decar.recluster import SplitData, read_labels, recluster_epoch

torch.set_num_threads(1)


def _model(seed=0, **conf):
    torch.manual_seed(seed)
    conf = {"num_clusters": 4, "head_dims": [32, 16], "pca_dim": 8, "feature_batch_size": 4,
            "feature_shard_size": 5, "bn_calibration_clips": 12, **conf}  # fmt: skip
    return DecarModel(EfficientNetEncoder("tiny"), conf)


def _reader(path):
    wav, _ = sf.read(path, dtype="float32")
    return wav


class FlakyReader:
    """Reads audio; raises on call number ``fail_at`` (simulated interruption)."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, path):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return _reader(path)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return write_sound_dir(tmp_path_factory.mktemp("pool"), "u", 18, seed=0)


@pytest.mark.timeout(120)
def test_interrupted_and_resumed_extraction_equals_uninterrupted(pool, tmp_path):
    model = _model().eval()
    full = extract_cluster_features(model, pool / "wav.scp", tmp_path / "a", tag="w", batch_size=4,
                                    shard_size=5, reader=FlakyReader(), progress=False)  # fmt: skip
    flaky = FlakyReader(fail_at=12)  # dies inside the third shard
    with pytest.raises(KeyboardInterrupt):
        extract_cluster_features(model, pool / "wav.scp", tmp_path / "b", tag="w", batch_size=4,
                                 shard_size=5, reader=flaky, progress=False)  # fmt: skip
    assert len(list((tmp_path / "b" / "shards").glob("*.npz"))) == 2
    again = FlakyReader()
    resumed = extract_cluster_features(model, pool / "wav.scp", tmp_path / "b", tag="w", batch_size=4,
                                       shard_size=5, reader=again, progress=False)  # fmt: skip
    assert again.calls == 18 - 10  # the two finished shards were not recomputed
    assert resumed.ids == full.ids
    np.testing.assert_array_equal(resumed.embeddings, full.embeddings)
    # batched features equal one-clip-at-a-time features (padding invariance)
    single = extract_cluster_features(model, pool / "wav.scp", tmp_path / "c", tag="w", batch_size=1,
                                      shard_size=5, reader=FlakyReader(), progress=False)  # fmt: skip
    np.testing.assert_allclose(single.embeddings, full.embeddings, rtol=1e-4, atol=1e-6)


@pytest.mark.timeout(60)
def test_cache_of_other_weights_is_recomputed(pool, tmp_path):
    a, b = _model(seed=0).eval(), _model(seed=1).eval()
    fa = extract_cluster_features(a, pool / "wav.scp", tmp_path / "f", tag=weights_digest(a),
                                  reader=_reader, progress=False)  # fmt: skip
    fb = extract_cluster_features(b, pool / "wav.scp", tmp_path / "f", tag=weights_digest(b),
                                  reader=_reader, progress=False)  # fmt: skip
    assert not np.allclose(fa.embeddings, fb.embeddings)
    assert json.loads((tmp_path / "f" / "meta.json").read_text())["tag"] == weights_digest(b)


@pytest.mark.timeout(120)
def test_batchnorm_calibration_makes_features_distinct_and_is_deterministic(pool, tmp_path):
    model = _model().eval()
    before = extract_cluster_features(model, pool / "wav.scp", tmp_path / "x", tag="0", reader=_reader,
                                      progress=False).embeddings  # fmt: skip
    used = recalibrate_batchnorm_(model, model.features, str(pool / "wav.scp"), _reader, max_clips=12, batch_size=4)
    assert used == 12 and not model.training
    stats = [m.running_var.clone() for m in batchnorm_layers(model)]
    after = extract_cluster_features(model, pool / "wav.scp", tmp_path / "y", tag="1", reader=_reader,
                                     progress=False).embeddings  # fmt: skip
    # at init the eval-mode features collapse (running stats (0, 1)); calibrated they spread out
    assert after.std(axis=0).mean() > 100 * before.std(axis=0).mean()
    recalibrate_batchnorm_(model, model.features, str(pool / "wav.scp"), _reader, max_clips=12, batch_size=4)
    for s, m in zip(stats, batchnorm_layers(model)):
        torch.testing.assert_close(m.running_var, s, rtol=0, atol=0)
        assert m.momentum == model.encoder.config.bn_momentum  # restored


@pytest.mark.timeout(120)
def test_epoch_step_writes_labels_and_is_reused(pool, tmp_path):
    model = _model().eval()
    recalibrate_batchnorm_(model, model.features, str(pool / "wav.scp"), _reader, max_clips=12, batch_size=4)
    split = SplitData(pool / "wav.scp", "sonar_sound")
    s1 = recluster_epoch(model, 1, split, split, tmp_path / "decar", progress=False)
    train = read_labels(tmp_path / "decar" / "epoch001" / "train.labels")
    valid = read_labels(tmp_path / "decar" / "epoch001" / "valid.labels")
    assert len(train) == 18 and set(train.values()) == set(range(s1.num_clusters)) and s1.num_clusters == 4
    assert train == valid  # the same clips are assigned to their own clusters
    assert not (tmp_path / "decar" / "epoch001" / "features_train").exists()  # keep_features false
    # same weights: reused without extracting again; same labels from a fresh run elsewhere
    mtime = (tmp_path / "decar" / "epoch001" / "train.labels").stat().st_mtime_ns
    assert recluster_epoch(model, 1, split, None, tmp_path / "decar", progress=False) == s1
    assert (tmp_path / "decar" / "epoch001" / "train.labels").stat().st_mtime_ns == mtime
    recluster_epoch(model, 1, split, None, tmp_path / "other", progress=False)
    assert read_labels(tmp_path / "other" / "epoch001" / "train.labels") == train
    # next epoch: NMI against the previous labels is recorded
    s2 = recluster_epoch(model, 2, split, None, tmp_path / "decar", progress=False)
    assert s2.nmi_previous is not None and 0.0 <= s2.nmi_previous <= 1.0


@pytest.mark.timeout(120)
def test_beats_model_trains_after_whole_set_extraction(pool, tmp_path):
    """Extraction must not leave inference-mode tensors in module caches used by training."""
    from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder

    torch.manual_seed(0)
    model = DecarModel(SonarBeatsEncoder("tiny"), {"num_clusters": 3, "head_dims": [16]})
    extract_cluster_features(model, pool / "wav.scp", tmp_path / "f", tag="b", reader=_reader, progress=False)
    model.train()
    wav = torch.from_numpy(_reader(str(next((pool / "wav").glob("*.wav")))))[None, :16000]
    loss, _, _ = model(wav, torch.tensor([wav.shape[1]]), pseudo_label=torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss)

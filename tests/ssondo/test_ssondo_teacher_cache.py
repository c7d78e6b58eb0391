"""S-SONDO teacher cache: cached equals fresh, crop as in training, resumable, ESPnet data type."""

import numpy as np
import pytest
import torch

from espnet2_sonar.ssondo import teacher_cache as tc
from ssondo_fixtures import make_teacher, synth, write_dir

CROP = 0.6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssondo_cache")
    rng = np.random.default_rng(0)
    kinds = ["low_tone", "up_chirp", "high_noise", "clicks"]
    items = [(f"u{i:02d}", synth(kinds[i % 4], rng, s), "x") for i, s in enumerate([0.3, 1.2, 0.8, 0.45, 1.0, 0.7, 0.5])]
    data = write_dir(root / "data", items, labelled=False)
    teacher = make_teacher(root / "teacher.pt", "tiny")
    return root, data / "wav.scp", teacher


def _load(ckpt):
    from espnet2_sonar.eval.checkpoints import load_encoder

    return load_encoder(ckpt)


@pytest.mark.timeout(120)
def test_cached_equals_fresh(setup, tmp_path):
    root, scp, ckpt = setup
    cached = tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "c", crop_seconds=CROP, crop_seed=3, batch_size=3, shard_size=2, progress=False, teacher=_load(ckpt))
    fresh = tc.fresh_teacher_embeddings(_load(ckpt), scp, cached.ids, crop_seconds=CROP, crop_seed=3)
    assert cached.embeddings.shape == (7, 160)
    np.testing.assert_allclose(cached.embeddings, fresh, atol=1e-5, rtol=1e-4)
    info = tc.TeacherInfo.read(tmp_path / "c")
    assert (info.dim, info.crop_seconds, info.crop_seed, info.num_items) == (160, CROP, 3, 7)
    # a second call reads the cache
    again = tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "c", crop_seconds=CROP, crop_seed=3, shard_size=2, progress=False, teacher=_load(ckpt))
    np.testing.assert_array_equal(again.embeddings, cached.embeddings)


@pytest.mark.timeout(120)
def test_crop_matters_and_a_cache_made_with_another_crop_is_refused(setup, tmp_path):
    root, scp, ckpt = setup
    teacher = _load(ckpt)
    ids = ["u01", "u04"]  # longer than the crop
    a = tc.fresh_teacher_embeddings(teacher, scp, ids, crop_seconds=CROP, crop_seed=0)
    b = tc.fresh_teacher_embeddings(teacher, scp, ids, crop_seconds=CROP, crop_seed=1)
    assert np.abs(a - b).max() > 1e-4  # another seed, another window
    short = tc.fresh_teacher_embeddings(teacher, scp, ["u00"], crop_seconds=CROP, crop_seed=0)
    np.testing.assert_array_equal(short, tc.fresh_teacher_embeddings(teacher, scp, ["u00"], crop_seconds=None))
    tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "c", crop_seconds=CROP, crop_seed=0, progress=False, teacher=teacher)
    with pytest.raises(ValueError, match="different settings"):
        tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "c", crop_seconds=CROP, crop_seed=1, progress=False, teacher=teacher)


@pytest.mark.timeout(120)
def test_interrupted_extraction_resumes_to_the_same_result(setup, tmp_path, monkeypatch):
    root, scp, ckpt = setup
    teacher = _load(ckpt)
    whole = tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "whole", crop_seconds=CROP, shard_size=2, progress=False, teacher=teacher)

    calls = {"n": 0}
    read = tc.CroppedReader.read

    def failing(self, utt, path):
        calls["n"] += 1
        if calls["n"] > 4:  # two shards done, the third fails
            raise OSError("disk went away")
        return read(self, utt, path)

    monkeypatch.setattr(tc.CroppedReader, "read", failing)
    with pytest.raises(RuntimeError, match="disk went away"):
        tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "r", crop_seconds=CROP, shard_size=2, progress=False, teacher=teacher)
    done = sorted((tmp_path / "r" / "shards").glob("*.npz"))
    assert [p.name for p in done] == ["00000.npz", "00001.npz"]
    stamps = {p: p.stat().st_mtime_ns for p in done}
    monkeypatch.setattr(tc.CroppedReader, "read", read)
    resumed = tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "r", crop_seconds=CROP, shard_size=2, progress=False, teacher=teacher)
    assert {p: p.stat().st_mtime_ns for p in done} == stamps  # finished shards were not recomputed
    assert resumed.ids == whole.ids
    np.testing.assert_array_equal(resumed.embeddings, whole.embeddings)


@pytest.mark.timeout(120)
def test_espnet_data_type_reads_rows(setup, tmp_path):
    root, scp, ckpt = setup
    cached = tc.cache_teacher_embeddings(ckpt, scp, tmp_path / "c", crop_seconds=None, progress=False, teacher=_load(ckpt))
    tc.register_data_types()
    from espnet2.train.dataset import DATA_TYPES

    table = DATA_TYPES[tc.DATA_TYPE]["func"](str(tmp_path / "c"))
    assert len(table) == 7 and list(table.keys()) == cached.ids
    np.testing.assert_array_equal(table["u03"], cached.embeddings[3])
    np.testing.assert_array_equal(tc.TeacherEmbeddingTable(tmp_path / "c" / "embeddings.npy")["u03"], cached.embeddings[3])
    with pytest.raises(KeyError, match="no teacher embedding"):
        table["nope"]
    assert torch.is_tensor(torch.from_numpy(table["u00"]))

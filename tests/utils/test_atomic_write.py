"""utils.atomic_write: the target is the old or the new file, never half; no temp is left behind."""

import os

import pytest

from espnet2_sonar.utils.atomic_write import atomic_path, atomic_write, temp_path


@pytest.mark.timeout(10)
def test_atomic_write_text_and_bytes(tmp_path):
    out = tmp_path / "a.json"
    atomic_write(out, '{"x": 1}\n')
    assert out.read_text() == '{"x": 1}\n'
    atomic_write(out, b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


@pytest.mark.timeout(10)
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    out = tmp_path / "model.pt"
    out.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk on fire")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.timeout(10)
def test_a_writer_that_never_created_the_temp_fails_cleanly(tmp_path):
    out = tmp_path / "x.txt"
    with pytest.raises(ValueError):
        with atomic_path(out):
            raise ValueError("before writing")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.timeout(10)
def test_temp_name_is_hidden_beside_the_target_and_keeps_a_suffix(tmp_path):
    tmp = temp_path(tmp_path / "c.npz", suffix=".npz")
    assert tmp.parent == tmp_path
    assert tmp.name == f".c.npz.{os.getpid()}.tmp.npz"
    with atomic_path(tmp_path / "c.npz", suffix=".npz") as t:
        assert t == tmp
        t.write_bytes(b"z")
    assert (tmp_path / "c.npz").read_bytes() == b"z" and not tmp.exists()

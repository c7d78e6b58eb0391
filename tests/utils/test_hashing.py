"""utils.hashing: file content hashes equal hashlib's over the same bytes."""

import hashlib

from espnet2_sonar.utils.hashing import BLOCK, file_sha256, files_sha256


def test_file_hashes_match_hashlib_across_block_boundaries(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(bytes(range(256)) * (BLOCK // 256 + 3))  # more than one read block
    b.write_bytes(b"tail")
    assert file_sha256(a) == hashlib.sha256(a.read_bytes()).hexdigest()
    assert files_sha256([a, b]) == hashlib.sha256(a.read_bytes() + b.read_bytes()).hexdigest()
    assert files_sha256([b, a]) != files_sha256([a, b])  # order is part of the stream
    assert files_sha256([]) == hashlib.sha256(b"").hexdigest()

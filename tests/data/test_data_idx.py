"""IDX reading and writing."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from supernet.data import read_idx, write_idx
from supernet.errors import ConfigError, DataNotFoundError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((5, 4, 3)) * 100).astype(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is compress
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == (5, 4, 3)
    np.testing.assert_array_equal(back, array)
    back[0] = 0  # the result is a writable copy


def test_header_bytes_are_the_mnist_layout(tmp_path):
    path = tmp_path / "h.idx"
    write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert path.read_bytes() == bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])
    write_idx(path, np.array([258], dtype=np.int32))
    assert path.read_bytes() == bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 2])  # big-endian


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_without_suffix = tmp_path / "plain-name"
    write_idx(gz_without_suffix, array, compress=True)
    raw_with_gz_suffix = tmp_path / "raw.gz"
    write_idx(raw_with_gz_suffix, array, compress=False)
    default_gz = tmp_path / "auto.gz"
    write_idx(default_gz, array)
    assert gzip.decompress(default_gz.read_bytes())[:4] == bytes([0, 0, 8, 2])
    for path in (gz_without_suffix, raw_with_gz_suffix, default_gz):
        np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file_raises_naming_file(tmp_path, compress):
    path = tmp_path / "trunc-images.idx"
    write_idx(path, np.zeros((4, 5, 5), dtype=np.uint8), compress=False)
    raw = path.read_bytes()[:-1]
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(ConfigError, match=r"trunc-images\.idx"):
        read_idx(path)


def test_truncated_gzip_stream_raises(tmp_path):
    path = tmp_path / "cut.gz"
    write_idx(path, np.arange(1000, dtype=np.int32), compress=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ConfigError, match=r"cut\.gz"):
        read_idx(path)


def test_trailing_bytes_raise(tmp_path):
    path = tmp_path / "long.idx"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ConfigError, match="size mismatch"):
        read_idx(path)


def test_bad_magic_raises_naming_file(tmp_path):
    path = tmp_path / "not-idx.bin"
    path.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(ConfigError, match=r"not-idx\.bin"):
        read_idx(path)


def test_unknown_dtype_code_raises(tmp_path):
    path = tmp_path / "code.idx"
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]))
    with pytest.raises(ConfigError, match="0x07"):
        read_idx(path)


def test_missing_file_is_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nope\.idx"):
        read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_])
def test_write_unsupported_dtype_raises(tmp_path, dtype):
    with pytest.raises(ConfigError, match="allowed"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=dtype))

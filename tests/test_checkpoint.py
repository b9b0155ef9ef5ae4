from __future__ import annotations

import collections
import io
import logging
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest
import torch

import supernet
from supernet import checkpoint as ckpt
from supernet.checkpoint import (
    FORMAT_VERSION,
    content_digest,
    load_checkpoint,
    numpy_rng_state,
    restore_numpy_rng,
    restore_torch_rng,
    save_checkpoint,
    torch_rng_state,
)
from supernet.errors import CheckpointError

META = {"space": "ofa-mbv3", "config_hash": "abc123", "epoch": 3}


class Opaque:
    """An arbitrary Python object: a weights-only load must refuse to build it."""

    def __init__(self) -> None:
        self.value = 42


def _trained_state() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    return model, opt


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "ckpt.pt")


def _save_simple(path, value: float = 1.0) -> None:
    save_checkpoint(path, {"w": torch.full((3,), value), "step": 7}, metadata=META)


# --------------------------------------------------------------------------- round trip


def test_round_trip_model_optimizer_and_rngs(tmp_path):
    model, opt = _trained_state()
    np_gen = np.random.default_rng(123)
    np_gen.random(5)  # advance away from the seeded state
    torch_gen = torch.Generator().manual_seed(7)
    torch.rand(3, generator=torch_gen)
    payload = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "np_rng": numpy_rng_state(np_gen),
        "torch_rng": torch_rng_state(torch_gen),
        "step": 11,
        "history": [0.5, 0.25, None, ("a", 1)],
    }
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, payload, metadata=META)

    loaded, metadata = load_checkpoint(path, expect={"space": "ofa-mbv3"})
    assert metadata == META
    assert loaded["step"] == 11
    assert loaded["history"] == [0.5, 0.25, None, ("a", 1)]

    ref = model.state_dict()
    assert loaded["model"].keys() == ref.keys()
    for key, value in ref.items():
        assert torch.equal(loaded["model"][key], value), key

    fresh_model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    fresh_model.load_state_dict(loaded["model"])
    fresh_opt = torch.optim.SGD(fresh_model.parameters(), lr=0.1, momentum=0.9)
    fresh_opt.load_state_dict(loaded["optimizer"])
    momenta = [s["momentum_buffer"] for s in opt.state_dict()["state"].values()]
    restored = [s["momentum_buffer"] for s in fresh_opt.state_dict()["state"].values()]
    assert len(momenta) == len(restored) == 4
    for a, b in zip(momenta, restored, strict=True):
        assert a is not None
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]

    # Restored generators continue exactly where the originals are.
    np_restored = restore_numpy_rng(loaded["np_rng"])
    np.testing.assert_array_equal(np_restored.random(10), np_gen.random(10))
    assert (
        np_restored.integers(0, 2**62, size=4).tolist()
        == np_gen.integers(0, 2**62, size=4).tolist()
    )
    torch_restored = restore_torch_rng(loaded["torch_rng"])
    assert torch.equal(
        torch.rand(10, generator=torch_restored), torch.rand(10, generator=torch_gen)
    )


@pytest.mark.parametrize("bit_generator", ["PCG64", "MT19937", "Philox", "SFC64", "PCG64DXSM"])
def test_numpy_rng_state_is_plain_data_and_restores(tmp_path, bit_generator):
    gen = np.random.Generator(getattr(np.random, bit_generator)(2024))
    gen.standard_normal(3)
    state = numpy_rng_state(gen)

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                assert isinstance(k, str)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert isinstance(value, str | float | bool) or value is None, type(value)
            # Ints are stored as decimal strings, never as (possibly 128-bit) ints.
            assert not isinstance(value, int) or isinstance(value, bool)

    walk(state)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"rng": state}, metadata={})
    loaded, _ = load_checkpoint(path)
    restored = restore_numpy_rng(loaded["rng"])
    assert type(restored.bit_generator).__name__ == bit_generator
    np.testing.assert_array_equal(restored.standard_normal(20), gen.standard_normal(20))


def test_restore_numpy_rng_rejects_malformed_state():
    with pytest.raises(CheckpointError, match="numpy RNG state"):
        restore_numpy_rng({"bit_generator": "os.system", "state": {}})
    with pytest.raises(CheckpointError, match="numpy RNG state"):
        restore_numpy_rng({"bit_generator": "PCG64", "state": {"state": {"__int__": "x"}}})


def test_restore_torch_rng_rejects_malformed_state():
    with pytest.raises(CheckpointError, match="torch RNG state"):
        restore_torch_rng(torch.zeros(3))
    with pytest.raises(CheckpointError, match="torch RNG state"):
        restore_torch_rng(torch.zeros(3, dtype=torch.uint8))


def test_file_layout_and_mode(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"format_version", "library_version", "sha256", "metadata", "payload"}
    assert raw["format_version"] == FORMAT_VERSION == 2
    assert raw["library_version"] == supernet.__version__
    assert raw["metadata"] == META
    assert raw["sha256"] == content_digest(2, supernet.__version__, META, raw["payload"])
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_save_overwrites_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path, 1.0)
    _save_simple(path, 2.0)
    payload, _ = load_checkpoint(path)
    assert torch.equal(payload["w"], torch.full((3,), 2.0))
    assert _leftovers(tmp_path) == []


def test_accepts_str_path(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    _save_simple(path)
    payload, _ = load_checkpoint(path)
    assert payload["step"] == 7


# --------------------------------------------------------------------------- expect


def test_mismatched_expect_names_key_and_both_values(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expect={"space": "mbv3-tiny"})
    message = str(info.value)
    assert "space" in message
    assert "'ofa-mbv3'" in message
    assert "'mbv3-tiny'" in message


def test_expect_missing_key_is_a_mismatch(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    with pytest.raises(CheckpointError, match=r"seed.*None.*5"):
        load_checkpoint(path, expect={"seed": 5})


def test_matching_expect_loads(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    _, metadata = load_checkpoint(path, expect={"space": "ofa-mbv3", "epoch": 3})
    assert metadata["config_hash"] == "abc123"


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_truncated_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.randn(1000)}, metadata=META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage" * 100, np.random.default_rng(0).bytes(4096), b"PK\x03\x04" + b"\x00" * 64],
    ids=["empty", "text", "random", "zip-header"],
)
def test_garbage_file(tmp_path, content):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "obj",
    [
        {"weights": torch.ones(2)},
        [1, 2, 3],
        {"format_version": 1, "payload": {}},
        {"format_version": 1, "metadata": {}, "payload": {}, "extra": 0},
        {"format_version": 1, "metadata": [], "payload": {}},
    ],
)
def test_not_a_supernet_checkpoint(tmp_path, obj):
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="not a supernet checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("version", [99, 0, "2", 2.0, True, None])
def test_other_format_version(tmp_path, version):
    path = tmp_path / "ckpt.pt"
    torch.save({"format_version": version, "metadata": {}, "payload": {}}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert f"format_version {version!r}" in message
    assert "reads format version(s) 1, 2" in message


def test_format_version_1_without_checksum_is_still_read(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"format_version": 1, "metadata": META, "payload": {"w": torch.ones(2)}}, path)
    payload, metadata = load_checkpoint(path, expect={"space": "ofa-mbv3"})
    assert metadata == META
    assert torch.equal(payload["w"], torch.ones(2))


def _rewrite(path, **changes):
    raw = torch.load(path, weights_only=True)
    raw.update(changes)
    torch.save(raw, path)


def test_content_that_does_not_match_its_checksum_is_corrupt(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    raw = torch.load(path, weights_only=True)
    raw["payload"]["w"][1] += 1e-6  # one weight changed, the file itself well-formed
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"corrupt: sha256 of its content") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_changed_metadata_does_not_match_its_checksum(tmp_path):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    _rewrite(path, metadata={**META, "space": "mbv3-tiny"})
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_format_2_missing_its_checksum_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"format_version": 2, "metadata": {}, "payload": {}}, path)
    with pytest.raises(CheckpointError, match=r"not a supernet checkpoint: keys .*sha256"):
        load_checkpoint(path)


def test_other_library_version_is_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "ckpt.pt"
    payload = {"w": torch.ones(2)}
    torch.save(
        {
            "format_version": 2,
            "library_version": "0.0.1",
            "sha256": content_digest(2, "0.0.1", META, payload),
            "metadata": META,
            "payload": payload,
        },
        path,
    )
    with caplog.at_level(logging.WARNING, logger="supernet.checkpoint"):
        loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded["w"], torch.ones(2))
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "0.0.1" in record.getMessage()
    assert supernet.__version__ in record.getMessage()


def test_same_library_version_logs_no_warning(tmp_path, caplog):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    with caplog.at_level(logging.WARNING, logger="supernet.checkpoint"):
        load_checkpoint(path, expect={"library_version": supernet.__version__})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_expected_library_version_mismatch_is_only_a_warning(tmp_path, caplog):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.ones(1)}, metadata={**META, "library_version": "0.0.1"})
    with caplog.at_level(logging.WARNING, logger="supernet.checkpoint"):
        load_checkpoint(path, expect={"space": "ofa-mbv3", "library_version": "9.9"})
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert supernet.__version__ in record.getMessage()  # the writer's version, at the top level
    assert "9.9" in record.getMessage()


def test_digest_ignores_device_container_flavour_and_strides():
    weights = torch.arange(12.0).reshape(3, 4)
    a = content_digest(2, "v", {}, {"w": weights.t().contiguous(), "s": {1, 2, 3}})
    b = content_digest(2, "v", {}, {"w": weights.t(), "s": {3, 2, 1}})
    assert a == b
    ordered = content_digest(2, "v", {}, collections.OrderedDict(w=torch.nn.Parameter(weights)))
    assert ordered == content_digest(2, "v", {}, {"w": weights})
    # ... but not values, dtypes, shapes or types.
    assert content_digest(2, "v", {}, {"w": weights}) != content_digest(
        2, "v", {}, {"w": weights.double()}
    )
    assert content_digest(2, "v", {}, {"w": weights}) != content_digest(
        2, "v", {}, {"w": weights.reshape(4, 3)}
    )
    assert content_digest(2, "v", {}, [1]) != content_digest(2, "v", {}, (1,))
    assert content_digest(2, "v", {}, [1]) != content_digest(2, "v", {}, [True])
    assert content_digest(2, "v", {}, [1]) != content_digest(2, "v", {}, ["1"])


def test_load_uses_weights_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save(
        {"format_version": FORMAT_VERSION, "metadata": {}, "payload": {"obj": Opaque()}}, path
    )
    # The file is otherwise valid: a full unpickle reads it back.
    assert torch.load(path, weights_only=False)["payload"]["obj"].value == 42
    with pytest.raises(CheckpointError, match="weights-only") as info:
        load_checkpoint(path)
    assert "Opaque" in str(info.value)


def test_load_passes_map_location(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    _save_simple(path)
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path, map_location="cpu")
    assert seen["weights_only"] is True
    assert seen["map_location"] == "cpu"


class _RunsACommand:
    """Unpickles to ``os.system(command)``: what a malicious checkpoint would hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def real_checkpoint(tmp_path):
    """A checkpoint like training writes: model, optimizer, RNG states, counters."""
    model, opt = _trained_state()
    payload = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "np_rng": numpy_rng_state(np.random.default_rng(1)),
        "torch_rng": torch_rng_state(torch.Generator().manual_seed(2)),
        "step": 5,
        "rows": [{"phase": "full", "epoch": 1, "val_acc": 12.5}],
    }
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, payload, metadata=META)
    return path


def _record_spans(data: bytes) -> dict[str, tuple[int, int]]:
    """Name → (first, last) byte offsets of each stored record's data inside the zip file."""
    spans = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            # local header: 30 bytes + name + extra field (read from the header itself)
            name_len = int.from_bytes(
                data[info.header_offset + 26 : info.header_offset + 28], "little"
            )
            extra_len = int.from_bytes(
                data[info.header_offset + 28 : info.header_offset + 30], "little"
            )
            first = info.header_offset + 30 + name_len + extra_len
            spans[info.filename] = (first, first + info.compress_size - 1)
    return spans


def test_truncated_real_checkpoint_at_many_offsets(real_checkpoint, tmp_path):
    data = real_checkpoint.read_bytes()
    spans = _record_spans(data)
    offsets = {0, 1, 2, 10, 64, len(data) // 4, len(data) // 2, 3 * len(data) // 4, len(data) - 1}
    offsets |= {first + (last - first) // 2 for first, last in spans.values()}
    offsets |= {len(data) - k for k in (22, 23, 100)}  # inside the zip's central directory
    bad = tmp_path / "bad.pt"
    for offset in sorted(offsets):
        bad.write_bytes(data[:offset])
        with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
            load_checkpoint(bad)
        assert str(bad) in str(info.value), offset


def test_flipped_byte_in_any_record_is_detected(real_checkpoint, tmp_path):
    data = real_checkpoint.read_bytes()
    spans = _record_spans(data)
    assert any(name.endswith("data.pkl") for name in spans)
    bad = tmp_path / "bad.pt"
    for name, (first, last) in spans.items():
        if name.endswith(("/version", "serialization_id", ".format_version", "alignment")):
            continue  # records torch does not read back into the content
        for offset in {first, (first + last) // 2, last}:
            flipped = bytearray(data)
            flipped[offset] ^= 0x5A
            bad.write_bytes(bytes(flipped))
            with pytest.raises(CheckpointError, match="corrupt") as info:
                load_checkpoint(bad)
            assert str(bad) in str(info.value), (name, offset)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_any_flipped_byte_fails_or_leaves_the_content_unchanged(real_checkpoint, tmp_path):
    data = real_checkpoint.read_bytes()
    payload, metadata = load_checkpoint(real_checkpoint)
    expected = content_digest(FORMAT_VERSION, supernet.__version__, metadata, payload)
    bad = tmp_path / "bad.pt"
    detected = 0
    for offset in range(0, len(data), 19):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            got, meta = load_checkpoint(bad)
        except CheckpointError:
            detected += 1
            continue
        # Only bytes torch never reads (zip padding, CRCs, ids) may change without an error.
        assert content_digest(FORMAT_VERSION, supernet.__version__, meta, got) == expected
    assert detected > len(data) // 19 // 4


def test_empty_and_non_torch_files(tmp_path):
    for content in (b"", b'{"format_version": 2}', b"\x89PNG\r\n\x1a\n" + bytes(200)):
        path = tmp_path / "ckpt.pt"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(path)


@pytest.mark.parametrize("container", ["raw-pickle", "torch-zip"])
def test_malicious_global_is_refused_and_never_run(tmp_path, container):
    marker = tmp_path / "pwned"
    evil = _RunsACommand(f"touch {marker}")
    path = tmp_path / "ckpt.pt"
    obj = {"format_version": FORMAT_VERSION, "metadata": {}, "payload": {"x": evil}}
    if container == "raw-pickle":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path)
    with pytest.raises(CheckpointError, match="weights-only load refuses") as info:
        load_checkpoint(path)
    assert "system" in str(info.value)  # names the global it refused
    assert not marker.exists()


# --------------------------------------------------------------------------- failed saves


def test_failed_torch_save_keeps_previous_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    _save_simple(path, 1.0)
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # write a full file, then fail "midway"
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="disk full") as info:
        _save_simple(path, 2.0)
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.undo()

    payload, _ = load_checkpoint(path)
    assert torch.equal(payload["w"], torch.full((3,), 1.0))
    assert _leftovers(tmp_path) == []


def test_failed_replace_keeps_previous_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    _save_simple(path, 1.0)

    def broken_replace(src, dst):
        raise PermissionError("replace refused")

    monkeypatch.setattr(ckpt.os, "replace", broken_replace)
    with pytest.raises(CheckpointError, match="replace refused"):
        _save_simple(path, 2.0)
    monkeypatch.undo()

    payload, _ = load_checkpoint(path)
    assert torch.equal(payload["w"], torch.full((3,), 1.0))
    assert _leftovers(tmp_path) == []


def test_interrupt_during_save_is_not_wrapped_but_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    _save_simple(path, 1.0)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _save_simple(path, 2.0)
    monkeypatch.undo()
    assert load_checkpoint(path)[0]["w"][0] == 1.0
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"obj": Opaque()}, "payload['obj']"),
        ({"fn": lambda x: x}, "payload['fn']"),
        ({"a": [1, {"arr": np.zeros(3)}]}, "payload['a'][1]['arr']"),
        ({"rng": np.random.default_rng(0)}, "numpy_rng_state"),
        ({"rng": torch.Generator()}, "torch_rng_state"),
        ({Opaque(): 1}, "key"),
    ],
)
def test_unsaveable_payload_keeps_previous(tmp_path, payload, fragment):
    path = tmp_path / "ckpt.pt"
    _save_simple(path, 1.0)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, payload, metadata=META)
    assert fragment in str(info.value)
    assert load_checkpoint(path)[0]["w"][0] == 1.0
    assert _leftovers(tmp_path) == []


def test_unsaveable_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="metadata"):
        save_checkpoint(tmp_path / "ckpt.pt", {}, metadata={"obj": Opaque()})
    assert list(tmp_path.iterdir()) == []


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="could not write"):
        _save_simple(tmp_path / "missing" / "ckpt.pt")


def test_payload_must_be_dict(tmp_path):
    with pytest.raises(CheckpointError, match="payload must be a dict"):
        save_checkpoint(tmp_path / "ckpt.pt", [1, 2], metadata={})  # type: ignore[arg-type]

"""export_subnet / load_exported: files, equivalence with the eager subnet, metadata, refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import numpy as np
import onnxruntime
import pytest
import torch

import supernet
from supernet.errors import ConfigError, ExportError
from supernet.export import (
    FORMAT_VERSION,
    METADATA_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    export_subnet,
    load_exported,
)
from supernet.export import subnet as subnet_module
from supernet.space import ArchConfig

METADATA = {
    "predicted_accuracy": 84.5,
    "measured_accuracy": np.float64(83.25),  # NumPy values are converted
    "macs": np.int64(1_234_567),
    "params": 45_678,
    "peak_memory_bytes": 65_536,
    "predicted_latency_ms": 0.61,
    "measured_latency_ms": None,
    "constraints": {"latency_ms": (0.8,)},
    "normalization": {"mean": [0.2860], "std": [0.3530]},
}


def _images(config, n, seed):
    return torch.randn((n, 1, config.resolution, config.resolution),
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip


def _eager(subnet, x):
    with torch.inference_mode():
        return subnet(x).numpy()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_subnet):
    """One export (with given check images) shared by the tests of this module."""
    space, config, subnet = trained_subnet
    out = tmp_path_factory.mktemp("export") / "sub" / "dir"  # missing parents are created
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = export_subnet(
            subnet, config, space, out, metadata=METADATA, check_images=_images(config, 6, 0)
        )
    finally:
        torch.set_num_threads(before)
    return result


def test_writes_the_three_files_and_nothing_else(exported):
    out = exported.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [ONNX_FILE, TORCHSCRIPT_FILE, METADATA_FILE]
    ), "temporary files were left behind"
    assert (exported.onnx_path, exported.torchscript_path, exported.metadata_path) == (
        out / ONNX_FILE, out / TORCHSCRIPT_FILE, out / METADATA_FILE,
    )  # fmt: skip
    for path in (exported.onnx_path, exported.torchscript_path, exported.metadata_path):
        assert path.stat().st_size > 0
        assert path.stat().st_mode & 0o777 == 0o644
    assert exported.check_images == 6
    assert 0 < exported.export_seconds < 120


def test_reported_differences_are_within_tolerance(exported):
    assert 0 <= exported.onnx_max_abs_diff <= 1e-4
    assert exported.torchscript_max_abs_diff <= 1e-6


def test_onnx_file_matches_eager_at_another_batch_size(exported, trained_subnet):
    _, config, subnet = trained_subnet
    session = onnxruntime.InferenceSession(
        str(exported.onnx_path), providers=["CPUExecutionProvider"]
    )
    x = _images(config, 4, 7)
    [out] = session.run(None, {"input": x.numpy()})
    expected = _eager(subnet, x)
    assert out.shape == (4, 10)
    assert np.abs(expected).max() > 0.5 and np.ptp(expected, axis=0).max() > 0.1, (
        "logits too small or input-independent for the check to mean anything"
    )
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)


def test_torchscript_file_equals_eager(exported, trained_subnet):
    _, config, subnet = trained_subnet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load in torch >= 2.13
        module = torch.jit.load(str(exported.torchscript_path))
    assert not module.training
    x = _images(config, 3, 8)
    with torch.inference_mode():
        out = module(x).numpy()
    np.testing.assert_allclose(out, _eager(subnet, x), atol=1e-6, rtol=0)


def test_subnet_json_round_trips(exported, trained_subnet):
    space, config, _ = trained_subnet
    doc = json.loads(exported.metadata_path.read_text())
    assert doc == exported.metadata
    assert doc["format_version"] == FORMAT_VERSION
    assert ArchConfig.from_dict(doc["config"]) == config
    assert doc["space"] == space.name == "mbv3-tiny"
    assert doc["input_shape"] == [1, 1, config.resolution, config.resolution]
    assert doc["output_shape"] == [1, 10]
    assert (doc["input_name"], doc["output_name"], doc["dynamic_batch"]) == (
        "input",
        "output",
        True,
    )
    assert doc["normalization"] == {"mean": [0.2860], "std": [0.3530]}
    assert doc["versions"]["supernet"] == supernet.__version__
    assert doc["versions"]["torch"] == torch.__version__
    expected = {k: v for k, v in METADATA.items() if k != "normalization"}
    expected.update(measured_accuracy=83.25, macs=1_234_567, constraints={"latency_ms": [0.8]})
    assert doc["metadata"] == expected
    assert type(doc["metadata"]["macs"]) is int
    check = doc["verification"]
    assert check["onnx_max_abs_diff"] == exported.onnx_max_abs_diff
    assert check["torchscript_max_abs_diff"] == exported.torchscript_max_abs_diff
    assert (check["tolerance"], check["images"], check["images_source"]) == (1e-4, 6, "given")
    assert check["max_abs_logit"] > 0.5
    for key, path in (("onnx", exported.onnx_path), ("torchscript", exported.torchscript_path)):
        entry = doc["files"][key]
        assert entry["name"] == path.name
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == _digest(path)


def test_load_exported_gives_a_working_session(exported, trained_subnet):
    _, config, subnet = trained_subnet
    session, doc = load_exported(exported.out_dir)
    assert doc == exported.metadata
    x = _images(config, 4, 9)
    [out] = session.run(None, {doc["input_name"]: x.numpy()})
    np.testing.assert_allclose(out, _eager(subnet, x), atol=1e-4, rtol=0)


@pytest.fixture
def export_copy(exported, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(exported.out_dir, out)
    return out


def _edit_json(out, **changes):
    doc = json.loads((out / METADATA_FILE).read_text())
    doc.update(changes)
    (out / METADATA_FILE).write_text(json.dumps(doc))


def test_load_refuses_another_format_version(export_copy):
    _edit_json(export_copy, format_version=FORMAT_VERSION + 1)
    message = f"has format version {FORMAT_VERSION + 1}, this supernet reads format version 1"
    with pytest.raises(ExportError, match=message):
        load_exported(export_copy)


def test_load_refuses_an_onnx_file_of_another_export(export_copy):
    (export_copy / ONNX_FILE).write_bytes(b"not the exported model")
    with pytest.raises(ExportError, match="the directory holds files of different exports"):
        load_exported(export_copy)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "subnet.json does not exist"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", r"is not a supernet export \(no format_version\)"),
        (json.dumps({"format_version": FORMAT_VERSION}), r"lacks key\(s\) \['space', 'config'"),
    ],
)
def test_load_refuses_a_broken_json(export_copy, text, message):
    path = export_copy / METADATA_FILE
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    with pytest.raises(ExportError, match=message):
        load_exported(export_copy)


def test_load_refuses_an_invalid_config(export_copy):
    _edit_json(export_copy, config={"resolution": 32})
    with pytest.raises(ExportError, match="holds an invalid config: arch config keys"):
        load_exported(export_copy)


def test_load_checks_the_space_when_given(export_copy, trained_subnet):
    from supernet.space import get_space

    space, _, _ = trained_subnet
    _, doc = load_exported(export_copy, space=space)
    assert doc["space"] == space.name
    with pytest.raises(ExportError, match=r"subnet.json: space = 'mbv3-tiny', expected 'ofa-mbv3'"):
        load_exported(export_copy, space=get_space("ofa-mbv3"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": True}, "has format version True, this supernet reads"),
        ({"format_version": 1.0}, "has format version 1.0, this supernet reads"),
        ({"space": 3}, "space = 3 must be a space name"),
        ({"input_shape": [1, 1, 28]}, r"input_shape = \[1, 1, 28\] must be 4 integers >= 1"),
        ({"files": []}, r"files = \[\] must be a mapping"),
        ({"files": {"onnx": {"name": "../../etc/passwd", "sha256": "0" * 64}}},
         r"files\['onnx'\] = .* must name a file in the export directory"),
        ({"files": {"onnx": {"name": 5, "sha256": "0" * 64}}}, "must name a file"),
        ({"files": {"onnx": {"name": "subnet.onnx", "sha256": 5}}}, r"sha256 = 5 is not a SHA"),
        ({"files": {}}, "records no ONNX file name and sha256"),
    ],
)  # fmt: skip
def test_load_refuses_malformed_fields(export_copy, changes, message):
    _edit_json(export_copy, **changes)
    with pytest.raises(ExportError, match=message):
        load_exported(export_copy)


def test_load_warns_about_another_library_version(export_copy, caplog):
    doc = json.loads((export_copy / METADATA_FILE).read_text())
    _edit_json(export_copy, versions={**doc["versions"], "supernet": "0.0.1"})
    with caplog.at_level("WARNING", logger="supernet.export.metadata"):
        load_exported(export_copy)
    assert any("0.0.1" in r.getMessage() for r in caplog.records)


def test_mismatch_raises_and_keeps_the_previous_export(export_copy, trained_subnet, monkeypatch):
    """A broken conversion (simulated: onnxruntime's logits off by 1e-3) must be caught."""
    space, config, subnet = trained_subnet
    before = {p.name: _digest(p) for p in export_copy.iterdir()}
    run_onnx = subnet_module._run_onnx
    monkeypatch.setattr(subnet_module, "_run_onnx", lambda *a: run_onnx(*a) + 1e-3)
    message = (
        r"ONNX \(onnxruntime\) output differs from the PyTorch subnet by max abs 0\.001\d* on "
        r"8 images, more than tolerance 0\.0001 \(ONNX 0\.001\d*, TorchScript [-+.e\d]+, "
        r"logits up to "
    )
    with pytest.raises(ExportError, match=message):
        export_subnet(subnet, config, space, export_copy, metadata={})  # random check images
    assert {p.name: _digest(p) for p in export_copy.iterdir()} == before


def test_caller_module_is_left_as_it_was(tmp_path, trained_subnet, monkeypatch):
    space, config, subnet = trained_subnet
    seen = {}
    monkeypatch.setattr(subnet_module, "_torchscript",  # stop before the slow part
                        lambda m: seen.setdefault("training", m.training) or 1 / 0)  # fmt: skip
    subnet.train()
    try:
        with pytest.raises(ZeroDivisionError):
            export_subnet(subnet, config, space, tmp_path, metadata={})
        assert subnet.training and seen == {"training": False}
    finally:
        subnet.eval()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"check_images": torch.zeros(2, 3, 8, 8)}, ConfigError,
         r"check_images must be float \[N >= 1, 1, \d+, \d+\], got \[2, 3, 8, 8\]"),
        ({"check_images": torch.zeros(0, 1, 8, 8)}, ConfigError, "check_images must be float"),
        ({"metadata": {"measured_accuracy": float("nan")}}, ConfigError,
         r"metadata\['measured_accuracy'\] = nan is not finite; use None"),
        ({"metadata": {"when": object()}}, ConfigError,
         r"metadata\['when'\] is a object, which JSON cannot hold"),
        ({"metadata": {"normalization": {"mean": [0.5, 0.5], "std": [1, 1]}}}, ConfigError,
         r"metadata\['normalization'\]\['mean'\] = \[0.5, 0.5\] must be 1 number"),
        ({"metadata": {"normalization": {"mean": [0.5], "std": [0]}}}, ConfigError,
         r"\['std'\] = \[0\] must be > 0"),
        ({"tolerance": -1e-3}, ConfigError, r"tolerance = -0.001 must be a number >= 0"),
    ],
)  # fmt: skip
def test_bad_arguments_are_rejected_before_any_work(tmp_path, trained_subnet, kwargs, error,
                                                    message):  # fmt: skip
    space, config, subnet = trained_subnet
    kwargs = {"metadata": {}, **kwargs}
    with pytest.raises(error, match=message):
        export_subnet(subnet, config, space, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_config_must_be_the_subnets_own(tmp_path, trained_subnet):
    space, config, subnet = trained_subnet
    other = space.smallest()
    assert other != config
    with pytest.raises(ConfigError, match="the subnet was extracted for ArchConfig"):
        export_subnet(subnet, other, space, tmp_path, metadata={})

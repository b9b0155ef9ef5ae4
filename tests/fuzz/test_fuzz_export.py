"""Fuzz export directories: ``subnet.json`` documents and ONNX bytes read by load_exported."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import (
    EXAMPLES,
    fuzz,
    json_documents,
    mutated,
    nasty_numbers,
    nested_mutation,
    outcome,
    raw_bytes,
    to_json_text,
)

import supernet
from supernet.errors import ExportError
from supernet.export import FORMAT_VERSION, METADATA_FILE, ONNX_FILE, load_exported
from supernet.space import get_space

SPACE = get_space("mbv3-tiny")
ONNX_BYTES = b"not really an onnx model"
VALID = {
    "format_version": FORMAT_VERSION,
    "space": SPACE.name,
    "config": SPACE.largest().to_dict(),
    "input_shape": [1, 1, 28, 28],
    "output_shape": [1, 10],
    "input_name": "input",
    "output_name": "output",
    "dynamic_batch": True,
    "normalization": None,
    "onnx_opset": 17,
    "versions": {"supernet": supernet.__version__, "torch": "2", "onnxruntime": "1"},
    "files": {
        "onnx": {
            "name": ONNX_FILE,
            "bytes": len(ONNX_BYTES),
            "sha256": hashlib.sha256(ONNX_BYTES).hexdigest(),
        }
    },
    "verification": {"onnx_max_abs_diff": 0.0, "tolerance": 1e-4},
    "metadata": {},
}
values = json_documents(6) | nasty_numbers
documents = st.one_of(
    mutated(VALID, values),
    st.sampled_from(["name", "sha256", "bytes"]).flatmap(
        lambda key: nested_mutation(VALID, ("files", "onnx", key), values)
    ),
    st.sampled_from(sorted(VALID["config"])).flatmap(
        lambda key: nested_mutation(VALID, ("config", key), values)
    ),
    nested_mutation(VALID, ("versions",), values),
    json_documents(),
)


@fuzz(150)
@given(doc=documents, onnx=st.sampled_from([ONNX_BYTES, b"", b"\x08\x07"]))
def test_export_directories_with_mutated_metadata(doc, onnx, tmp_path):
    """Every directory is refused with an ExportError naming a file of it (the ONNX bytes are
    never a model, so nothing may load)."""
    EXAMPLES["export.documents"] += 1
    (tmp_path / METADATA_FILE).write_bytes(to_json_text(doc).encode("utf-8", "surrogatepass"))
    (tmp_path / ONNX_FILE).write_bytes(onnx)
    for space in (None, SPACE):
        _, error = outcome(lambda space=space: load_exported(tmp_path, space=space), ExportError)
        assert error is not None, "a directory without an ONNX model loaded"
        assert str(tmp_path) in str(error)


@fuzz(30)
@given(content=raw_bytes(nesting=5000))
def test_export_metadata_of_any_bytes(content, tmp_path):
    EXAMPLES["export.bytes"] += 1
    (tmp_path / METADATA_FILE).write_bytes(content)
    _, error = outcome(lambda: load_exported(tmp_path), ExportError)
    assert error is not None, "garbage subnet.json loaded"
    assert METADATA_FILE in str(error)

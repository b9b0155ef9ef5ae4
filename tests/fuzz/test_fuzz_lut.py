"""Fuzz latency-table files: load_latency_table on mutated tables, any JSON and any bytes."""

from __future__ import annotations

import numpy as np
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

from supernet.cost.device import DeviceSpec
from supernet.cost.lut import LatencyTable, config_keys, load_latency_table
from supernet.errors import LatencyTableError
from supernet.space import get_space

SPACE = get_space("mbv3-tiny")
CONFIGS = [
    SPACE.largest(),
    SPACE.smallest(),
    *(SPACE.sample(np.random.default_rng(i)) for i in range(3)),
]
KEYS = sorted({key for config in CONFIGS for key in config_keys(SPACE, config)})
TABLE = LatencyTable(
    space=SPACE,
    device=DeviceSpec(name="fuzz", runtime="onnxruntime", threads=1),
    entries={key: (0.01 * (i + 1), 0.001) for i, key in enumerate(KEYS)},
    scale=1.1,
    overhead_ms=0.02,
    call_overhead_ms=0.001,
    memory_format="onnx",
    build={"repeats": 3, "warmup": 1, "seed": 0, "seconds": 1.0},
)
VALID = TABLE.to_dict()

values = json_documents(6) | nasty_numbers
documents = st.one_of(
    mutated(VALID, values),
    st.sampled_from(KEYS[:5]).flatmap(lambda key: nested_mutation(VALID, ("entries", key), values)),
    st.sampled_from(["median_ms", "iqr_ms"]).flatmap(
        lambda field: nested_mutation(VALID, ("entries", KEYS[0], field), values)
    ),
    st.sampled_from(sorted(VALID["device"])).flatmap(
        lambda field: nested_mutation(VALID, ("device", field), values)
    ),
    st.sampled_from(sorted(VALID["space_fields"])).flatmap(
        lambda field: nested_mutation(VALID, ("space_fields", field), values)
    ),
    nested_mutation(VALID, ("build", "repeats"), values),
    json_documents(),
)


def _load(path) -> None:
    """A table loads (and predicts finite latencies or names a missing key) or the load raises
    LatencyTableError naming the file."""
    for space in (SPACE, None):
        table, error = outcome(
            lambda space=space: load_latency_table(path, space=space), LatencyTableError
        )
        if error is not None:
            assert str(path) in str(error)
            continue
        assert table.space == SPACE
        predicted, error = outcome(lambda table=table: table.predict(CONFIGS), LatencyTableError)
        if error is not None:
            assert "has no entry" in str(error)
        else:
            assert predicted.shape == (len(CONFIGS),) and np.isfinite(predicted).all()


@fuzz(200)
@given(doc=documents)
def test_latency_table_documents(doc, tmp_path):
    EXAMPLES["lut.documents"] += 1
    path = tmp_path / "table.json"
    path.write_bytes(to_json_text(doc).encode("utf-8", "surrogatepass"))
    _load(path)


@fuzz(40)
@given(content=raw_bytes(nesting=5000))
def test_latency_table_files_of_any_bytes(content, tmp_path):
    EXAMPLES["lut.bytes"] += 1
    path = tmp_path / "table.json"
    path.write_bytes(content)
    _load(path)

"""Fuzz device files: load_device / load_devices / get_device on random YAML and JSON documents."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import (
    EXAMPLES,
    fuzz,
    is_finite_number,
    json_documents,
    mutated,
    nasty_numbers,
    nested_mutation,
    outcome,
    raw_bytes,
    to_json_text,
    to_yaml_text,
)

from supernet.cost.device import (
    CONSTRAINTS,
    MAX_THREADS,
    RUNTIMES,
    DeviceSpec,
    get_device,
    load_device,
    load_devices,
)
from supernet.errors import ConfigError

VALID = {
    "name": "edge",
    "runtime": "onnxruntime",
    "threads": 1,
    "batch_size": 1,
    "constraints": {"max_latency_ms": 0.5, "max_macs": 8.0e6},
    "lut": "luts/edge.json",
}
values = json_documents(6) | nasty_numbers | st.sampled_from([*RUNTIMES, *CONSTRAINTS, "2.0e6"])
documents = st.one_of(
    mutated(VALID, values),
    st.sampled_from(CONSTRAINTS).flatmap(
        lambda key: nested_mutation(VALID, ("constraints", key), values)
    ),
    nested_mutation(VALID, ("constraints",), json_documents(6)),
    json_documents(),
    st.lists(mutated(VALID, values), max_size=3).map(lambda items: {"devices": items}),
)


def _check_spec(spec: DeviceSpec) -> None:
    """What a loaded description guarantees to the code that measures with it."""
    assert isinstance(spec.name, str) and spec.name
    assert spec.runtime in RUNTIMES
    assert type(spec.threads) is int and 1 <= spec.threads <= MAX_THREADS
    assert type(spec.batch_size) is int and spec.batch_size >= 1
    assert set(spec.constraints) <= set(CONSTRAINTS)
    assert all(is_finite_number(v) and v > 0 for v in spec.constraints.values())
    assert spec.lut is None or isinstance(spec.lut, str)


def _load_all(path) -> None:
    for load in (load_device, load_devices, get_device):
        specs, error = outcome(lambda load=load: load(path), ConfigError)
        if error is not None:
            assert str(path) in str(error)
            continue
        for spec in specs if isinstance(specs, list) else [specs]:
            _check_spec(spec)


@fuzz(200)
@given(doc=documents, as_json=st.booleans())
def test_device_documents(doc, as_json, tmp_path):
    EXAMPLES["device.documents"] += 1
    path = tmp_path / ("device.json" if as_json else "device.yaml")
    text = to_json_text(doc) if as_json else to_yaml_text(doc)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _load_all(path)


@fuzz(50)
@given(content=raw_bytes())
def test_device_files_of_any_bytes(content, tmp_path):
    EXAMPLES["device.bytes"] += 1
    path = tmp_path / "device.yaml"
    path.write_bytes(content)
    _load_all(path)

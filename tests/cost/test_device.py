"""Device descriptions: built-ins, files, and the errors bad files give."""

from __future__ import annotations

import json

import pytest

from supernet.cost.device import (
    BUILTIN_DEVICES,
    DeviceSpec,
    available_threads,
    describe_machine,
    get_device,
    load_device,
)
from supernet.errors import ConfigError

KNOWN = (
    "['name', 'runtime', 'threads', 'batch_size', 'constraints', 'lut', 'int8', 'memory_planner']"
)


@pytest.mark.parametrize(("name", "runtime"), [("cpu-torch", "torch"), ("cpu-ort", "onnxruntime")])
def test_builtins_describe_this_cpu(name, runtime):
    spec = get_device(name)
    assert spec == DeviceSpec(name=name, runtime=runtime, threads=available_threads())
    assert spec.batch_size == 1 and spec.constraints == {} and spec.lut is None
    assert set(BUILTIN_DEVICES) == {"cpu-torch", "cpu-ort"}


def test_yaml_file_round_trips_and_resolves_the_lut_path(tmp_path):
    (tmp_path / "pi.yaml").write_text(
        "name: pi4\nruntime: onnxruntime\nthreads: 4\nbatch_size: 2\n"
        "constraints: {max_latency_ms: 5.5, max_peak_memory_bytes: 262144}\nlut: luts/pi4.json\n"
    )
    spec = load_device(tmp_path / "pi.yaml")
    assert (spec.name, spec.runtime, spec.threads, spec.batch_size) == ("pi4", "onnxruntime", 4, 2)
    assert spec.constraints == {"max_latency_ms": 5.5, "max_peak_memory_bytes": 262144}
    assert spec.lut == str(tmp_path / "luts" / "pi4.json")
    (tmp_path / "pi.json").write_text(json.dumps(spec.to_dict()))
    assert get_device(tmp_path / "pi.json") == spec


def test_threads_default_to_the_available_cores(tmp_path):
    (tmp_path / "d.json").write_text('{"name": "d", "runtime": "torch"}')
    assert load_device(tmp_path / "d.json").threads == available_threads()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nruntime: torch\ncolour: red\n",
         f"unknown field(s) ['colour']; known fields: {KNOWN}"),
        ("runtime: torch\n", f"missing field(s) ['name']; known fields: {KNOWN}"),
        ("name: x\nruntime: tensorrt\n",
         "runtime = 'tensorrt' is not allowed; choose from ('torch', 'onnxruntime')"),
        ("name: x\nruntime: torch\nthreads: 0\n", "threads = 0 must be an integer >= 1"),
        ("name: x\nruntime: torch\nbatch_size: two\n",
         "batch_size = 'two' must be an integer >= 1"),
        ("name: x\nruntime: torch\nconstraints: {max_flops: 3}\n",
         "unknown constraint(s) ['max_flops']; known constraints: ['max_latency_ms', 'max_macs', "
         "'max_peak_memory_bytes', 'max_model_size_bytes', 'max_sram_bytes', 'max_flash_bytes', "
         "'max_latency']"),
        ("name: x\nruntime: torch\nconstraints: {max_latency_ms: -1}\n",
         "constraints.max_latency_ms = -1 must be a positive number"),
        ("- a list\n", "must be a mapping, got list"),
        ("name: [unclosed\n", "is not valid YAML/JSON"),
        ("name: x\nruntime: torch\nthreads: 1000000\n",
         "threads = 1000000 must be an integer in [1, 1024]"),
        ("name: x\nruntime: torch\nconstraints: {1: 2, max_flops: 3}\n",
         "unknown constraint(s) [1, 'max_flops']"),
        ("name: x\nruntime: torch\nconstraints: []\n", "constraints = [] must be a mapping"),
        ("name: x\nruntime: torch\nconstraints: 0\n", "constraints = 0 must be a mapping"),
        ("name: !!python/object/apply:os.system [ls]\n", "is not valid YAML/JSON"),
        ("[" * 5000, "is not valid YAML/JSON"),
    ],
)  # fmt: skip
def test_bad_device_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "device.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_device(path)
    assert message in str(info.value)


def test_unknown_device_name_lists_the_builtins(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown device 'gpu'; choose from \['cpu-ort', "):
        get_device("gpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_device(tmp_path / "missing.yaml")


def test_replace_validates_again():
    with pytest.raises(ConfigError, match="threads = -2"):
        get_device("cpu-ort").replace(threads=-2)


def test_describe_machine_records_what_the_table_needs():
    info = describe_machine()
    assert {"cpu_model", "available_threads", "python", "torch", "onnxruntime"} <= set(info)
    assert info["cpu_model"] and info["onnxruntime"] and info["available_threads"] >= 1
    json.dumps(info)  # JSON-ready


def test_a_devices_file_lists_several_devices(tmp_path):
    from supernet.cost import load_devices

    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        "  - {name: fast, runtime: onnxruntime, threads: 1, lut: luts/a.json,\n"
        "     constraints: {max_latency_ms: 0.5}}\n"
        "  - {name: small, runtime: torch, threads: 2, constraints: {max_macs: 2.0e6}}\n"
    )
    fast, small = load_devices(path)
    assert (fast.name, fast.runtime, fast.constraints) == (
        "fast",
        "onnxruntime",
        {"max_latency_ms": 0.5},
    )
    assert fast.lut == str(tmp_path / "luts/a.json")
    assert (small.threads, small.constraints) == (2, {"max_macs": 2.0e6})
    path.write_text("devices:\n  - {name: a, runtime: onnxruntime, speed: 3}\n")
    with pytest.raises(ConfigError, match=r"devices\[0\]: unknown field\(s\) \['speed'\]"):
        load_devices(path)
    path.write_text("devices:\n  - {name: a, runtime: torch}\n  - {name: a, runtime: torch}\n")
    with pytest.raises(ConfigError, match="device names must be unique"):
        load_devices(path)
    path.write_text("devices: []\n")
    with pytest.raises(ConfigError, match="at least one device"):
        load_devices(path)


def test_the_demo_devices_file_loads():
    from pathlib import Path

    from supernet.cost import load_devices

    path = Path(__file__).parents[2] / "configs" / "devices" / "demo.yaml"
    devices = load_devices(path)
    assert [d.name for d in devices] == ["mcu-sram", "phone-fast", "edge-cpu", "stm32f746"]
    timed = [d for d in devices if not d.int8]
    assert all(d.lut is not None and d.lut.endswith("mbv3-tiny-cpu-ort-1t.json") for d in timed)
    assert [d.name for d in devices if d.int8] == ["stm32f746"]

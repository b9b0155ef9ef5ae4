"""MCU device descriptions: int8, memory planner and SRAM / Flash budgets in bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from supernet.cost import DeviceSpec, flash_bytes, load_device, load_devices, sram_bytes
from supernet.errors import ConfigError
from supernet.space import ConfigBatch, get_space, sample_batch

MCU_FILE = Path(__file__).parents[2] / "configs" / "devices" / "mcu.yaml"


def test_the_mcu_presets_load_with_budgets_in_bytes():
    specs = {s.name: s for s in load_devices(MCU_FILE)}
    assert specs["stm32f746"].constraints == {"max_sram_bytes": 320 * 1024,
                                              "max_flash_bytes": 1024 * 1024}  # fmt: skip
    budgets = sorted((s.constraints["max_sram_bytes"], s.constraints["max_flash_bytes"])
                     for s in specs.values())  # fmt: skip
    assert budgets == [(32768, 262144), (65536, 524288), (262144, 1048576), (327680, 1048576)]
    assert all(s.int8 and s.planner == "tflm" for s in specs.values())


def test_an_int8_device_defaults_to_the_tflm_planner(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("name: m\nruntime: onnxruntime\nint8: true\nconstraints: {max_sram_bytes: 9}\n")
    spec = load_device(path)
    assert spec.memory_planner is None and spec.planner == "tflm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("memory_planner: tflm", "memory_planner = 'tflm' needs int8: true"),
        ("int8: true\nmemory_planner: greedy", "memory planner = 'greedy' is not known"),
        ("constraints: {max_flash_bytes: 1000}", r"\['max_flash_bytes'\] are int8 budgets"),
        ("int8: yes please", "int8 = 'yes please' must be true or false"),
        (
            "int8: true\nsram: 5",
            r"unknown field\(s\) \['sram'\]; known fields: .*'int8', "
            r"'memory_planner'",
        ),
        (
            "int8: true\nconstraints: {max_sram_kb: 5}",
            r"unknown constraint\(s\) \['max_sram_kb'\]"
            r".*'max_sram_bytes', 'max_flash_bytes'",
        ),
    ],
)
def test_bad_mcu_fields_name_the_problem(tmp_path, text, message):
    path = tmp_path / "d.yaml"
    path.write_text(f"name: m\nruntime: onnxruntime\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_device(path)


def test_specialize_objectives_enforce_int8_sram_and_flash():
    from supernet.report.specialize import CONSTRAINT_OBJECTIVES, objectives_for

    space = get_space("mbv3-tiny")
    batch = sample_batch(space, 20, np.random.default_rng(0))
    objectives = objectives_for(space, None, memory_planner="tinyengine")
    assert CONSTRAINT_OBJECTIVES["max_sram_bytes"] == "sram_bytes"
    assert CONSTRAINT_OBJECTIVES["max_flash_bytes"] == "flash_bytes"
    assert np.array_equal(objectives["sram_bytes"](batch),
                          sram_bytes(batch, space, planner="tinyengine"))  # fmt: skip
    assert np.array_equal(objectives["flash_bytes"](batch), flash_bytes(batch, space))
    one = ConfigBatch.from_configs([space.largest()], space)
    assert objectives["sram_bytes"](one)[0] > 0


def test_replace_keeps_the_int8_fields():
    spec = DeviceSpec("m", "onnxruntime", 1, int8=True, memory_planner="naive")
    assert spec.replace(threads=2).planner == "naive"

"""Latency measurement with PyTorch eager and onnxruntime (export: tests/export/test_onnx.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet.cost.latency import (
    measure_call_overhead,
    measure_latencies,
    measure_latency,
    time_callable,
)
from supernet.errors import ConfigError
from supernet.nn import OFAMobileNetV3
from supernet.space import get_space

FAST = {"warmup": 1, "repeats": 3, "min_repeat_ms": 0.5}


@pytest.fixture(scope="module")
def subnet():
    space = get_space("mbv3-tiny")
    torch.manual_seed(0)
    net = OFAMobileNetV3(space)
    config = space.sample(np.random.default_rng(3))
    return net.get_subnet(config), (2, 1, config.resolution, config.resolution)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_result_is_positive_and_records_the_setup(subnet, runtime):
    module, shape = subnet
    module.train()
    torch.set_num_threads(2)  # measured with 1: 2 OpenMP threads crawl on 2 busy shared cores
    result = measure_latency(module, shape, runtime=runtime, threads=1, **FAST)
    assert result.median_ms > 0 and result.iqr_ms >= 0
    assert (result.threads, result.runtime, result.batch_size) == (1, runtime, 2)
    assert result.repeats == 3 and result.calls_per_repeat >= 1
    assert result.memory_format in (("contiguous", "channels_last") if runtime == "torch" else
                                    ("onnx",))  # fmt: skip
    assert torch.get_num_threads() == 2, "torch's thread count was not restored"
    assert module.training, "the module's mode was not restored"


def test_threads_default_to_torchs_and_formats_can_be_forced(subnet):
    module, shape = subnet
    result = measure_latency(module, shape, memory_format="channels_last", **FAST)
    assert result.threads == torch.get_num_threads() and result.memory_format == "channels_last"
    assert next(module.parameters()).is_contiguous(), "the caller's module was converted"


def test_time_callable_runs_enough_calls_per_repeat():
    calls = []
    times, number = time_callable(lambda: calls.append(1), threads=1, warmup=2, repeats=4)
    assert times.shape == (4,) and (times > 0).all()
    assert number > 100, "a no-op needs many calls to fill a 2 ms repeat"
    assert len(calls) >= 2 + 4 * number


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runtime": "tvm"}, "runtime = 'tvm' is not allowed; choose from ('torch', 'onnx"),
        ({"memory_format": "nhwc"}, "memory_format = 'nhwc' is not allowed; choose from ('auto',"),
        ({"threads": 0}, "threads = 0 must be an integer >= 1"),
        ({"repeats": 0}, "need warmup >= 0, repeats >= 1"),
    ],
)  # fmt: skip
def test_bad_settings_are_rejected(subnet, kwargs, message):
    module, shape = subnet
    with pytest.raises(ConfigError) as info:
        measure_latency(module, shape, **{"warmup": 1, "repeats": 2, **kwargs})
    assert message in str(info.value)


def test_bad_shape_is_rejected(subnet):
    with pytest.raises(ConfigError, match=r"input_shape = \(1, 28, 28\) must be \(B, C, H, W\)"):
        measure_latency(subnet[0], (1, 28, 28))


def test_call_overhead_is_zero_for_eager_and_small_for_onnxruntime():
    assert measure_call_overhead((1, 8, 4, 4), runtime="torch", threads=1) == 0.0
    ort = measure_call_overhead((1, 8, 4, 4), runtime="onnxruntime", threads=1, **{
        k: v for k, v in FAST.items() if k != "min_repeat_ms"})  # fmt: skip
    assert 0 < ort < 1.0


class _Recorder(torch.nn.Module):
    def __init__(self, name: str, calls: list[str]) -> None:
        super().__init__()
        self.name, self.calls = name, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.name)
        return x


def test_measure_latencies_times_modules_round_robin():
    calls: list[str] = []
    modules = [_Recorder("a", calls), _Recorder("b", calls)]
    modules[0].eval()
    results = measure_latencies(
        modules, [(1, 1, 2, 2), (3, 1, 2, 2)], threads=1, warmup=0, repeats=3,
        memory_format="contiguous", min_repeat_ms=1e-9,
    )  # fmt: skip
    runs = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]
    # prepared one after the other, then one repeat of each per round (timed one by one, the
    # runs would be just ["a", "b"])
    assert runs == ["a", "b"] + ["a", "b"] * 3
    assert [r.batch_size for r in results] == [1, 3]
    assert all(r.repeats == 3 and r.memory_format == "contiguous" for r in results)
    assert [m.training for m in modules] == [False, True]  # modes restored


def test_measure_latencies_needs_one_shape_per_module():
    with pytest.raises(ConfigError, match="2 modules but 1 input shapes"):
        measure_latencies([torch.nn.Identity(), torch.nn.Identity()], [(1, 1, 2, 2)])

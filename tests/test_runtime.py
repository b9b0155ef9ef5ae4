from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch

from supernet import runtime as rt_mod
from supernet.errors import ConfigError
from supernet.runtime import Runtime, detect_runtime, make_generators, set_threads

RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in RANK_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cpu_only(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(rt_mod, "_mps_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend this machine has two CUDA devices (no CUDA call is made)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(rt_mod, "_cuda_bf16_supported", lambda device: True)


# --------------------------------------------------------------------------- devices


def test_cpu_explicit():
    rt = detect_runtime("cpu")
    assert rt.device == torch.device("cpu")
    assert rt.amp_dtype is None
    assert (rt.rank, rt.local_rank, rt.world_size) == (0, 0, 1)
    assert rt.is_main
    assert not rt.is_distributed


def test_auto_on_cpu_machine(cpu_only):
    rt = detect_runtime("auto")
    assert rt.device.type == "cpu"
    assert rt.amp_dtype is None


def test_auto_prefers_mps_over_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(rt_mod, "_mps_available", lambda: True)
    rt = detect_runtime()
    assert rt.device.type == "mps"
    assert rt.amp_dtype is None


@pytest.mark.parametrize("bogus", ["tpu", "gpu", "cuda:x", "cuda:-1", "", "meta", "xpu"])
def test_bogus_device_names_the_value(bogus):
    with pytest.raises(ConfigError) as info:
        detect_runtime(bogus)
    message = str(info.value)
    assert repr(bogus) in message
    assert "cpu" in message  # lists what is allowed/available


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_unavailable(cpu_only, device):
    with pytest.raises(ConfigError, match="not available") as info:
        detect_runtime(device)
    assert repr(device) in str(info.value)


def test_mps_unavailable(cpu_only):
    with pytest.raises(ConfigError, match="'mps'"):
        detect_runtime("mps")


def test_cuda_auto_uses_local_rank_and_bf16(fake_cuda, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    rt = detect_runtime("auto")
    assert rt.device == torch.device("cuda", 1)
    assert rt.amp_dtype == torch.bfloat16
    assert not rt.is_main
    assert detect_runtime("cuda").device == torch.device("cuda", 1)
    assert detect_runtime("cuda:0").device == torch.device("cuda", 0)


def test_cuda_fp16_without_bf16(fake_cuda, monkeypatch):
    monkeypatch.setattr(rt_mod, "_cuda_bf16_supported", lambda device: False)
    assert detect_runtime("cuda").amp_dtype == torch.float16
    assert detect_runtime("cuda", amp=False).amp_dtype is None


def test_cuda_index_out_of_range(fake_cuda):
    with pytest.raises(ConfigError, match="'cuda:5'"):
        detect_runtime("cuda:5")


# --------------------------------------------------------------------------- amp


@pytest.mark.parametrize(
    ("amp", "expected"),
    [
        ("auto", None),
        (False, None),
        ("off", None),
        (True, torch.bfloat16),
        ("bf16", torch.bfloat16),
        ("BFloat16", torch.bfloat16),
        ("fp16", torch.float16),
    ],
)
def test_amp_choices_on_cpu(amp, expected):
    assert detect_runtime("cpu", amp=amp).amp_dtype == expected


@pytest.mark.parametrize("amp", ["int8", "yes please", 3, None])
def test_bad_amp(amp):
    with pytest.raises(ConfigError, match="amp"):
        detect_runtime("cpu", amp=amp)


def test_autocast_context():
    plain = Runtime(device=torch.device("cpu"), amp_dtype=None, rank=0, local_rank=0, world_size=1)
    assert isinstance(plain.autocast(), contextlib.nullcontext)
    with plain.autocast():
        assert not torch.is_autocast_enabled("cpu")

    amp = dataclasses.replace(plain, amp_dtype=torch.bfloat16)
    layer = torch.nn.Linear(4, 4)
    with amp.autocast():
        assert torch.is_autocast_enabled("cpu")
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16


def test_runtime_is_frozen():
    rt = detect_runtime("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rt.rank = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- env vars


def test_env_ranks(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    rt = detect_runtime("cpu")
    assert (rt.rank, rt.local_rank, rt.world_size) == (3, 1, 4)
    assert not rt.is_main
    assert rt.is_distributed


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RANK", "one"),
        ("RANK", "-1"),
        ("LOCAL_RANK", "1.5"),
        ("WORLD_SIZE", "0"),
        ("WORLD_SIZE", ""),
    ],
)
def test_malformed_env(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        detect_runtime("cpu")


def test_rank_not_below_world_size(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="RANK=2"):
        detect_runtime("cpu")


# --------------------------------------------------------------------------- generators


def test_make_generators_reproducible():
    np_a, torch_a = make_generators(17)
    np_b, torch_b = make_generators(17)
    assert isinstance(np_a, np.random.Generator)
    assert isinstance(torch_a, torch.Generator)
    np.testing.assert_array_equal(np_a.random(8), np_b.random(8))
    assert torch.equal(torch.rand(8, generator=torch_a), torch.rand(8, generator=torch_b))


def test_make_generators_differ_per_seed():
    np_a, torch_a = make_generators(1)
    np_b, torch_b = make_generators(2)
    assert not np.array_equal(np_a.random(8), np_b.random(8))
    assert not torch.equal(torch.rand(8, generator=torch_a), torch.rand(8, generator=torch_b))


def test_make_generators_does_not_touch_global_state():
    np_before = np.random.get_state()[1].copy()  # noqa: NPY002
    torch_before = torch.random.get_rng_state().clone()
    make_generators(5)
    np.testing.assert_array_equal(np.random.get_state()[1], np_before)  # noqa: NPY002
    assert torch.equal(torch.random.get_rng_state(), torch_before)


def test_make_generators_torch_seed_is_not_the_raw_seed():
    # Derived via SeedSequence, not torch.manual_seed(seed) on the raw seed.
    _, torch_gen = make_generators(0)
    assert torch_gen.initial_seed() != 0


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_make_generators_bad_seed(seed):
    with pytest.raises(ConfigError, match="seed"):
        make_generators(seed)


# --------------------------------------------------------------------------- threads


def test_set_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    set_threads(None)
    assert calls == []
    set_threads(3)
    assert calls == [3]


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", True])
def test_set_threads_rejects(bad, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail("must not be called"))
    with pytest.raises(ConfigError, match="num_threads"):
        set_threads(bad)

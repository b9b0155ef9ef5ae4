"""HAQ: per-channel fake quantization, bit lowering under the size budget, budget parsing, the
environment, and run_haq end to end on a tiny MobileNetV3."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from supernet.checkpoint import load_checkpoint
from supernet.compress.haq import parse_size_budget, run_haq
from supernet.compress.haq_env import QuantizationEnv, action_to_bits, finish_policy
from supernet.compress.mixed_precision import (
    BITS,
    attach_fake_quant,
    fake_quantize_weight,
    lower_bits,
    set_bits,
    weight_bytes,
)
from supernet.errors import ConfigError
from supernet.nn import ConvBNAct, MBConv, MobileNetV3

RES, CLASSES = 12, 4


def tiny_mobilenet(seed: int = 0) -> MobileNetV3:
    torch.manual_seed(seed)
    blocks = [
        MBConv(8, 8, kernel_size=3, stride=1, mid_channels=24, act="relu", se_mid_channels=8),
        MBConv(8, 16, kernel_size=3, stride=2, mid_channels=32, act="h_swish"),
    ]
    return MobileNetV3(
        ConvBNAct(1, 8, 3, stride=2, act="h_swish"),
        blocks,
        ConvBNAct(16, 32, 1, act="h_swish"),
        nn.Sequential(nn.Conv2d(32, 48, 1, bias=False), nn.Hardswish()),
        nn.Linear(48, CLASSES),
    ).eval()


def batches(n: int, seed: int, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class k = a bright blob in image quadrant k, plus noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(0, CLASSES, (size,), generator=g)
        x = 0.5 * torch.randn(size, 1, RES, RES, generator=g)
        for i, k in enumerate(y.tolist()):
            r, c = divmod(k, 2)
            x[i, 0, r * 6 : r * 6 + 6, c * 6 : c * 6 + 6] += 1.5
        out.append((x, y))
    return out


def top1(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
    return 100.0 * hits / sum(len(y) for _, y in data)


def finetune(model: nn.Module, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in batches(steps, seed=99):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from(BITS), out=st.integers(1, 6), fan_in=st.integers(1, 200))
def test_fake_quant_has_at_most_2_to_the_b_values_per_channel(bits, out, fan_in):
    torch.manual_seed(out * 1000 + fan_in)
    w = torch.randn(out, fan_in, 1, 1) * torch.rand(out, 1, 1, 1) * 3
    q = fake_quantize_weight(w, bits)
    for channel in range(out):
        assert q[channel].unique().numel() <= 2**bits
    # scale = max|w| / (2^(b-1) - 1): the largest magnitude survives, the error is half a step
    step = w.abs().flatten(1).amax(1) / (2 ** (bits - 1) - 1)
    assert torch.all((q - w).abs().flatten(1).amax(1) <= step / 2 + 1e-6)


def test_fake_quant_passes_gradients_straight_through():
    w = torch.randn(4, 8, requires_grad=True)
    fake_quantize_weight(w, 3).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


@pytest.mark.parametrize("bits", [1, 9, 4.5, True])
def test_bad_bit_widths_are_named(bits):
    with pytest.raises(ConfigError, match=r"choose from \[2, 3, 4, 5, 6, 7, 8\]"):
        fake_quantize_weight(torch.ones(2, 2), bits)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 12), fixed=st.floats(0, 1000))
def test_bit_lowering_meets_the_size_budget(data, n, fixed):
    bits = data.draw(st.lists(st.sampled_from(BITS), min_size=n, max_size=n))
    costs = data.draw(st.lists(st.integers(1, 10**5), min_size=n, max_size=n))
    least = fixed + 2 * sum(costs)
    start = fixed + sum(c * b for c, b in zip(costs, bits, strict=True))
    budget = data.draw(st.floats(least, max(least, start) * 1.2))
    lowered = lower_bits(bits, costs, fixed, budget)
    assert fixed + sum(c * b for c, b in zip(costs, lowered, strict=True)) <= budget
    assert all(BITS[0] <= lo <= b for lo, b in zip(lowered, bits, strict=True))
    if start <= budget:
        assert lowered == bits  # a policy within budget is left alone


def test_bit_lowering_goes_round_robin_from_the_first_layer():
    # cost 10 each; 8+8+8 = 240 → budget 215 needs three one-bit steps, one per layer
    assert lower_bits([8, 8, 8], [10, 10, 10], 0.0, 215) == [7, 7, 7]
    assert lower_bits([8, 8, 8], [10, 10, 10], 0.0, 225) == [7, 7, 8]


def test_bit_lowering_below_all_2_bit_is_an_error_naming_the_least():
    with pytest.raises(ConfigError, match="smallest reachable 60"):
        lower_bits([8, 8], [10, 20], 0.0, 59)


def test_action_to_bits_covers_2_to_8_evenly():
    actions = np.linspace(0, 1, 701)
    counts = np.bincount([action_to_bits(a) for a in actions], minlength=9)[2:]
    assert set(action_to_bits(a) for a in actions) == set(BITS)
    assert counts.max() - counts.min() <= 2


@pytest.fixture(scope="module")
def quantized():
    model = tiny_mobilenet()
    calib = torch.cat([x for x, _ in batches(2, seed=4)])
    return model, *attach_fake_quant(model, calib)


def test_attach_fake_quant_describes_every_layer(quantized):
    model, _, layers = quantized
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == len(convs)
    assert [i.weights for i in layers] == [m.weight.numel() for m in convs]
    assert sum(i.depthwise for i in layers) == 2 and layers[-1].kind == "linear"
    assert layers[0].activations == RES * RES  # the image: 1 channel


def test_fake_quant_model_follows_its_bits(quantized):
    model, qmodel, layers = quantized
    x = torch.cat([x for x, _ in batches(1, seed=7)])
    with torch.no_grad():
        ref = model(x)
        fp = set_bits(qmodel, None, None)(x)
        torch.testing.assert_close(fp, ref, atol=1e-4, rtol=1e-4)  # BN folding only
        errors = [(set_bits(qmodel, [b] * len(layers), [b] * len(layers))(x) - ref).abs().mean()
                  for b in (2, 4, 8)]  # fmt: skip
    assert errors[0] > errors[1] > errors[2]
    set_bits(qmodel, None, None)


def test_size_budget_parsing(quantized):
    _, _, layers = quantized
    four = weight_bytes(layers, [4] * len(layers))
    assert parse_size_budget("size:uniform4", layers) == (pytest.approx(four), 4)
    assert parse_size_budget(f"size:{four + 1}", layers) == (pytest.approx(four + 1), 4)
    five = weight_bytes(layers, [5] * len(layers))
    assert parse_size_budget(f"size:{five}", layers)[1] == 5


@pytest.mark.parametrize(
    ("budget", "match"),
    [
        ("latency:3", "latency:MS' is not supported"),
        ("size:uniform9", "B in 2..8"),
        ("size:uniformx", "B in 2..8"),
        ("bytes:100", "size:BYTES"),
        ("size:-5", "size:BYTES"),
        ("size:10", "below the smallest size reachable"),
    ],
)
def test_bad_size_budgets_are_named(quantized, budget, match):
    with pytest.raises(ConfigError, match=match):
        parse_size_budget(budget, quantized[2])


def test_environment_policies_meet_both_budgets(quantized):
    _, _, layers = quantized
    size = weight_bytes(layers, [4] * len(layers))
    act = 4.0 * sum(i.activations for i in layers)
    seen = []
    env = QuantizationEnv.make(layers, size, act, lambda w, a: seen.append((w, a)) or 0.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.reset()
        done, steps = False, 0
        while not done:
            obs, _, done, _, _ = env.step(rng.random(1).astype(np.float32))
            assert obs.shape == (10,) and np.all((obs >= 0) & (obs <= 1))
            steps += 1
        assert steps == 2 * len(layers)
    for w, a in seen:
        assert weight_bytes(layers, w) <= size
        assert sum(i.activations * b for i, b in zip(layers, a, strict=True)) <= act
    assert len({tuple(w) for w, _ in seen}) > 1
    # finish_policy leaves a policy inside its budgets alone
    assert finish_policy(layers, [3] * len(layers), [2] * len(layers), size, act) == (
        [3] * len(layers),
        [2] * len(layers),
    )


@pytest.mark.slow
def test_run_haq_returns_rows_and_writes_files(tmp_path):
    val, test = batches(2, seed=1), batches(2, seed=2)
    ctx = SimpleNamespace(
        model=tiny_mobilenet(), arch={"resolution": RES}, resolution=RES, in_channels=1,
        num_classes=CLASSES, train_batches=lambda n: iter(batches(n, seed=3)),
        calib_images=torch.cat([x for x, _ in batches(2, seed=4)]),
        evaluate=lambda m: top1(m, val), test=lambda m: top1(m, test), finetune=finetune,
        out_dir=tmp_path / "out", seed=0, lut_path=None, progress=None,
    )  # fmt: skip
    result = run_haq(ctx, budget="size:uniform4", episodes=2, finetune_steps=2)
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == ["haq:untouched", "haq:uniform4", "haq:haq"]
    assert rows["haq:haq"]["size_bytes"] <= rows["haq:uniform4"]["size_bytes"]
    assert rows["haq:uniform4"]["weight_bits"] == 4
    assert rows["haq:untouched"]["size_bytes"] == 4 * rows["haq:untouched"]["params"]
    for path in result["artifacts"] + result["plots"]:
        assert path.is_file() and path.stat().st_size > 0
    doc = json.loads((ctx.out_dir / "haq_policy.json").read_text())
    assert len(doc["episodes"]) == 2
    assert doc["policies"]["haq"]["weight_bits"] == doc["episodes"][0]["weight_bits"] or (
        doc["policies"]["haq"]["weight_bits"] == doc["episodes"][1]["weight_bits"]
    )
    payload, _ = load_checkpoint(ctx.out_dir / "haq_subnet.pt")
    assert payload["weight_bits"] == doc["policies"]["haq"]["weight_bits"]

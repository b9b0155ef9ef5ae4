"""``lite_residual_everywhere``: every method's network carries the lite residual modules, as
the TinyTL reference's baselines do, trained or frozen by the method's rule."""

from __future__ import annotations

import pytest
import torch

from supernet.transfer.lite_residual import LiteResidual
from supernet.transfer.methods import build_transfer_model

from .helpers import NUM_CLASSES, RESOLUTION, make_subnet


def _lite_params(model):
    return {
        f"{i}.{n}": p
        for i, m in enumerate(x for x in model.modules() if isinstance(x, LiteResidual))
        for n, p in m.named_parameters()
    }


@pytest.mark.parametrize(
    ("method", "trains"),
    [
        ("full", lambda n: True),
        ("last", lambda n: False),
        ("norm+last", lambda n: "norm" in n),
        ("bias+last", lambda n: n.endswith("bias")),
    ],
)
def test_baselines_carry_lite_residuals_when_asked(method, trains):
    subnet = make_subnet("gn")
    g = torch.Generator().manual_seed(0)
    plain = build_transfer_model(subnet, NUM_CLASSES, method, resolution=RESOLUTION, generator=g)
    assert not _lite_params(plain)  # default: today's behaviour
    model = build_transfer_model(subnet, NUM_CLASSES, method, resolution=RESOLUTION,
                                 lite_residual_everywhere=True, generator=g)  # fmt: skip
    lite = _lite_params(model)
    assert lite
    got = {n: p.requires_grad for n, p in lite.items()}
    assert got == {n: trains(n) for n in lite}, got
    tinytl = build_transfer_model(subnet, NUM_CLASSES, "tinytl-l", resolution=RESOLUTION,
                                  generator=g)  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in model.classifier.parameters()
    ) == sum(p.numel() for p in tinytl.parameters()) - sum(
        p.numel() for p in tinytl.classifier.parameters()
    )  # the same network as TinyTL-L's

"""ProxylessNAS-Mobile + lite residuals under the reference accounting reproduces TinyTL's
headline memory numbers (arXiv 2007.11622, Table 1 / Fig. 6: 102 classes, batch 8, 224 px)."""

from __future__ import annotations

import pytest
import torch

from supernet.errors import ConfigError
from supernet.transfer.memory_reference import reference_training_memory
from supernet.transfer.proxyless_mobile import (
    build_proxyless_mobile,
    lite_residual_kernel_sizes,
    set_reference_method,
)

PAPER_MB = {
    "full": 390.8,
    "norm+last": 192.4,
    "last": 30.8,
    "bias+last": 31.7,
    "tinytl-l": 37.1,
    "tinytl-l+b": 37.1,
}


def test_parameter_count_is_the_published_4_08_million():
    net = build_proxyless_mobile(num_classes=1000, lite_residual=False)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(4.08e6, abs=5e3)
    x = torch.zeros(1, 3, 64, 64)
    assert build_proxyless_mobile(num_classes=5)(x).shape == (1, 5)


def test_lite_kernel_rules():
    reference = lite_residual_kernel_sizes(224, "reference")
    assert reference[0] is None and reference[3] is None and reference[4] is None
    assert reference[1] == 5 and reference[-1] == 3  # nominal 128 px: 4 px pooled at the end
    assert lite_residual_kernel_sizes(448, "reference") == reference  # input size ignored
    assert lite_residual_kernel_sizes(448, "input")[-1] == 5  # 7 px pooled at the end
    with pytest.raises(ConfigError, match="lite_kernel_rule = 'x'"):
        lite_residual_kernel_sizes(224, "x")


@pytest.mark.slow
def test_reference_accounting_reproduces_the_papers_six_numbers():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = build_proxyless_mobile(num_classes=102)
        got = {}
        for method in PAPER_MB:
            set_reference_method(net, method)
            got[method] = reference_training_memory(net, resolution=224).total_mb(8)
    finally:
        torch.set_num_threads(threads)
    for method, paper in PAPER_MB.items():
        assert got[method] == pytest.approx(paper, abs=0.1), (method, got[method])

"""The MCU extra's import guard, input checks that need no extra, and BN folding before int8."""

from __future__ import annotations

import importlib

import pytest
import torch

from supernet.errors import ConfigError, MissingExtraError
from supernet.nn import create_supernet
from supernet.quant import (
    INSTALL_HINT,
    backend,
    mcu_extra_available,
    prepare_float,
    quantize_qat,
    require,
    top1_agreement,
)


def _hide(monkeypatch, *names):
    """Make ``import NAME`` (and its submodules) fail as if the package were not installed."""
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in names:
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(backend.importlib, "import_module", fake)


def test_missing_extra_names_the_package_and_the_install_command(monkeypatch):
    _hide(monkeypatch, "litert_torch")
    with pytest.raises(MissingExtraError) as info:
        require("litert_torch.quantize.pt2e_quantizer")
    text = str(info.value)
    assert "package litert-torch" in text
    assert INSTALL_HINT in text
    assert INSTALL_HINT == 'pip install -e ".[mcu]"'
    assert isinstance(info.value, ImportError)  # callers that catch ImportError still do


def test_extra_reported_missing_when_a_module_cannot_be_found(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        backend.importlib.util, "find_spec",
        lambda name, *a: None if name == "tflite_micro" else real(name, *a),
    )  # fmt: skip
    assert mcu_extra_available() is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps = 0 must be an int >= 1"),
        ({"steps": 2, "lr": 0.0}, "lr = 0.0 must be > 0"),
        ({"steps": 2, "freeze_observers_at": 1.5}, "freeze_observers_at = 1.5 must be in (0, 1]"),
    ],
)
def test_qat_arguments_are_checked_before_anything_runs(kwargs, message):
    with pytest.raises(ConfigError) as info:
        quantize_qat(torch.nn.Identity(), [], **kwargs)
    assert str(info.value) == message


def test_top1_agreement_counts_equal_argmax_and_checks_shapes():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    b = torch.tensor([[5.0, 0.0], [1.0, 0.0], [2.0, 1.5], [1.0, 0.0]])
    assert top1_agreement(a, b) == pytest.approx(50.0)
    with pytest.raises(ConfigError, match=r"got \[4, 2\] and \[3, 2\]"):
        top1_agreement(a, b[:3])


def test_prepare_float_folds_batchnorm_and_keeps_outputs():
    torch.manual_seed(0)
    supernet = create_supernet("mbv3-tiny").eval()
    config = supernet.space.smallest()
    subnet = supernet.get_subnet(config).train()
    x = torch.randn(16, 1, config.resolution, config.resolution)
    subnet(x)  # move the running statistics away from (0, 1)
    subnet.eval()
    folded = prepare_float(subnet)
    assert subnet.training is False
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in subnet.modules())  # caller's kept
    with torch.no_grad():
        torch.testing.assert_close(folded(x), subnet(x), rtol=1e-4, atol=1e-5)


def test_prepare_float_refuses_a_group_norm_subnet():
    supernet = create_supernet("mbv3-tiny", norm="gn").eval()
    subnet = supernet.get_subnet(supernet.space.smallest())
    with pytest.raises(ConfigError, match="GroupNorm"):
        prepare_float(subnet)

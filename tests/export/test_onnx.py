"""ONNX conversion and onnxruntime sessions (used by latency tables and by exported subnets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet.errors import ConfigError
from supernet.export.onnx import export_onnx, make_session


def _eager(subnet, x):
    with torch.inference_mode():
        return subnet(x).numpy()


def test_export_matches_eager(trained_subnet):
    _, config, subnet = trained_subnet
    shape = (2, 1, config.resolution, config.resolution)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    [out] = make_session(export_onnx(subnet, shape), threads=1).run(None, {"input": x.numpy()})
    expected = _eager(subnet, x)
    assert out.shape == expected.shape == (2, 10)
    assert np.abs(expected).max() > 0.5, "logits too small for a 1e-4 check to mean anything"
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)


def test_export_is_deterministic_and_restores_the_mode(trained_subnet):
    _, config, subnet = trained_subnet
    shape = (1, 1, config.resolution, config.resolution)
    subnet.train()
    try:
        assert export_onnx(subnet, shape) == export_onnx(subnet, shape)
        assert subnet.training, "the module's mode was not restored"
    finally:
        subnet.eval()


def test_static_graph_refuses_another_batch_size_and_dynamic_one_takes_it(trained_subnet):
    _, config, subnet = trained_subnet
    shape = (1, 1, config.resolution, config.resolution)
    x = torch.randn((4, *shape[1:]), generator=torch.Generator().manual_seed(2))
    static = make_session(export_onnx(subnet, shape), threads=1)
    assert static.get_inputs()[0].shape == list(shape)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        static.run(None, {"input": x.numpy()})
    dynamic = make_session(export_onnx(subnet, shape, dynamic_batch=True), threads=1)
    assert dynamic.get_inputs()[0].shape == ["batch", *shape[1:]]
    assert dynamic.get_outputs()[0].shape == ["batch", 10]
    [out] = dynamic.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(out, _eager(subnet, x), atol=1e-4, rtol=0)


def test_session_from_a_file(tmp_path, trained_subnet):
    _, config, subnet = trained_subnet
    shape = (1, 1, config.resolution, config.resolution)
    path = tmp_path / "m.onnx"
    path.write_bytes(export_onnx(subnet, shape))
    x = torch.zeros(shape)
    [out] = make_session(path, threads=1).run(None, {"input": x.numpy()})
    np.testing.assert_allclose(out, _eager(subnet, x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_count_is_rejected(threads):
    with pytest.raises(ConfigError, match=rf"threads = {threads!r} must be an integer >= 1"):
        make_session(b"", threads=threads)


def test_unexportable_module_names_itself():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return {"a": x}.get  # not a tensor: the exporter cannot trace it

    with pytest.raises(ConfigError, match="could not export Branchy to ONNX"):
        export_onnx(Branchy(), (1, 1, 2, 2))

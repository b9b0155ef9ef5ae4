"""int8 PTQ / QAT with the MCU extra: the quantization scheme, round-trip error bounds, accuracy
kept on a tiny model, and the .tflite run in TensorFlow Lite Micro (skipped without the extra)."""

from __future__ import annotations

from operator import attrgetter

import flatbuffers
import numpy as np
import pytest
import torch

from supernet.errors import ExportError
from supernet.export import (
    export_tflite,
    float_operators,
    mcu_footprint,
    run_tflm,
    strip_tensor_names,
    tflite_operators,
)
from supernet.quant import (
    int8_accuracy,
    mcu_extra_available,
    quantize_ptq,
    quantize_qat,
    top1_agreement,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not mcu_extra_available(), reason='the MCU extra is not installed: pip install -e ".[mcu]"'
    ),
]


@pytest.fixture(scope="module")
def ptq(trained_tiny):
    model, train, _ = trained_tiny
    return quantize_ptq(model, [x for x, _ in train], max_images=256)


@pytest.fixture(scope="module")
def tflite(ptq):
    return export_tflite(ptq)


def _quant_nodes(quantized, name):
    """The graph's ``quantized_decomposed.NAME`` calls (quantize ops, not dequantize ops)."""
    target = f"quantized_decomposed.{name}."
    return [n for n in quantized.model.graph.nodes if str(n.target).startswith(target)]


def test_weights_are_per_channel_symmetric_int8_within_half_a_step(ptq):
    nodes = _quant_nodes(ptq, "quantize_per_channel")
    assert len(nodes) == 14  # 13 convolutions + the classifier
    for node in nodes:
        weight, scale, zero, axis, qmin, qmax, dtype = (
            attrgetter(a.target)(ptq.model) if isinstance(a, torch.fx.Node) else a
            for a in node.args
        )
        assert (axis, qmin, qmax, dtype) == (0, -127, 127, torch.int8)
        assert torch.all(zero == 0)  # symmetric
        flat = weight.detach().flatten(1)
        torch.testing.assert_close(scale, flat.abs().amax(1) / 127, rtol=1e-5, atol=2**-12 / 127)
        q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127)
        error = (q * scale[:, None] - flat).abs()
        assert torch.all(error <= scale[:, None] / 2 + 1e-7)


def test_activations_are_per_tensor_asymmetric_int8(ptq):
    nodes = _quant_nodes(ptq, "quantize_per_tensor")
    assert len(nodes) >= 20
    zeros = set()
    for node in nodes:
        scale, zero, qmin, qmax, dtype = node.args[1:6]
        assert (qmin, qmax, dtype) == (-128, 127, torch.int8)
        assert scale > 0
        zeros.add(int(zero))
    assert len(zeros) > 1  # asymmetric: zero points follow each tensor's range


def test_ptq_keeps_accuracy_and_agreement_on_a_tiny_model(trained_tiny, ptq):
    _, _, test = trained_tiny
    acc = int8_accuracy(ptq, test)
    assert acc.images == 256
    assert acc.fp32_accuracy >= 90.0  # the task is learnt, so the comparison means something
    assert acc.drop <= 2.0
    assert acc.agreement >= 95.0
    x = test[0][0]
    fp32, int8 = ptq.float_model(x), ptq(x)
    assert (fp32 - int8).abs().max() <= 0.1 * fp32.abs().max()  # logits close, not only argmax


def test_qat_fine_tunes_and_returns_an_int8_model(trained_tiny):
    model, train, test = trained_tiny
    qat = quantize_qat(model, train, steps=8, lr=1e-3)
    assert (qat.method, qat.qat_steps) == ("QAT", 8)
    acc = int8_accuracy(qat, test)
    assert acc.int8_accuracy >= acc.fp32_accuracy - 3.0
    assert len(_quant_nodes(qat, "quantize_per_channel")) == 14


def test_tflite_is_fully_int8_and_tflm_agrees_with_the_int8_model(trained_tiny, ptq, tflite):
    _, _, test = trained_tiny
    assert float_operators(tflite) == []
    names = {op.name for op in tflite_operators(tflite)}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MEAN", "MUL", "ADD"} <= names
    x = torch.cat([b for b, _ in test])[:128]
    run = run_tflm(tflite, x)
    assert run.logits.shape == (128, 4)
    assert run.tflite_bytes == len(tflite)
    assert 0 < run.arena_head_bytes < run.arena_bytes
    # the largest int8 activation pair of the net (stem output 8x6x6 + its input 1x12x12) fits
    assert run.arena_head_bytes >= 8 * 6 * 6
    assert top1_agreement(torch.from_numpy(run.logits), ptq(x)) >= 97.0


def test_footprint_matches_a_full_run(trained_tiny, tflite):
    model, train, _ = trained_tiny
    arena, size = mcu_footprint(model, [train[0][0]])
    run = run_tflm(tflite, train[0][0][:1])
    assert arena == run.arena_bytes  # the arena does not depend on the calibration ranges
    assert abs(size - len(tflite)) <= 64  # only scales and zero points differ


def test_an_operator_tflm_lacks_is_named(tflite):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.HARD_SWISH:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SKIP_GRAM
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ExportError, match="no kernel for operator SKIP_GRAM"):
        run_tflm(bytes(builder.Output()), torch.zeros(1, 1, 12, 12))


def test_tflm_arena_model_matches_the_measured_arena(trained_tiny, tflite):
    from supernet.cost import mcu_cost
    from supernet.cost.mcu_net import BlockList, MBConvSpec
    from supernet.cost.tflm_persistent import converted_graph, tflm_persistent_bytes

    # conftest.tiny_mobilenet as a block list (12x12x1 input, 4 classes)
    net = BlockList(
        "tiny", 12, 1, 8,
        (MBConvSpec(8, 8, 16, 3, 1, se_channels=8, residual=True, act="relu"),
         MBConvSpec(8, 16, 24, 3, 2, se_channels=8, act="h_swish")),
        4, stem_act="h_swish", final_expand_channels=32, feature_mix_channels=48,
        head_act="h_swish",
    )  # fmt: skip
    assert len(converted_graph(net).ops) == sum(op.count for op in tflite_operators(tflite))
    run = run_tflm(tflite, trained_tiny[2][0][0][:1])
    tail = run.arena_bytes - run.arena_head_bytes
    assert abs(tflm_persistent_bytes(net) - tail) <= 0.01 * tail
    assert abs(mcu_cost(net, "tflm-arena").sram_bytes - run.arena_bytes) <= 0.01 * run.arena_bytes


def test_the_file_carries_no_tensor_names_and_stripping_keeps_the_outputs(trained_tiny, tflite):
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(tflite, 0)
    graph = model.Subgraphs(0)
    assert graph.TensorsLength() > 10
    assert all(graph.Tensors(i).Name() == b"" for i in range(graph.TensorsLength()))
    # a named copy (what the converter wrote) is larger and computes the same logits
    named = schema.ModelT.InitFromObj(model)
    for i, tensor in enumerate(named.subgraphs[0].tensors):
        tensor.name = f"supernet.nn.blocks.MobileNetV3/tensor_{i}".encode()
    builder = flatbuffers.Builder(0)
    builder.Finish(named.Pack(builder), file_identifier=b"TFL3")
    named_bytes = bytes(builder.Output())
    assert len(strip_tensor_names(named_bytes)) < len(named_bytes)
    _, _, test = trained_tiny
    x = torch.cat([b for b, _ in test])[:16]
    assert np.array_equal(run_tflm(named_bytes, x).logits, run_tflm(tflite, x).logits)

"""The PT2E quantizer: LiteRT's static int8 scheme, extended so that every activation is int8.

litert-torch's ``PT2EQuantizer`` annotates conv, linear, add, mul, pooling and concat. A
MobileNetV3 subnet also has h-swish, the squeeze-and-excitation gate (mean, h-sigmoid, mul) and
global average pooling; left unannotated they stay float32 in the ``.tflite`` (DEQUANTIZE → float
op → QUANTIZE), which an MCU int8 deployment cannot afford (4x the activation bytes, float
kernels). :func:`make_quantizer` therefore adds one annotation pass: every remaining
floating-point op output (and its float inputs) gets the same per-tensor asymmetric int8
activation spec, with the library's observers (histogram for PTQ, fused moving-average
fake-quant for QAT). TFLite has int8 kernels for all of them (HARD_SWISH, MEAN, MUL, ADD, ...)
except h-sigmoid, which the converter would lower to float ADD and MUL; it is first rewritten as
``relu6(x + 3) * (1/6)`` (its definition, MobileNetV3 Sec. 5.2), three ops with int8 kernels.

Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference" (CVPR'18, arXiv 1712.05877), Sec. 2 (affine int8 scheme) and
Sec. 3 (quantization-aware training); Krishnamoorthi, "Quantizing deep convolutional networks for
efficient inference" (arXiv 1806.08342), Sec. 2.2 (per-channel symmetric weights, per-tensor
asymmetric activations).
"""

from __future__ import annotations

from typing import Any

import torch

from supernet.quant.backend import require

__all__ = ["make_quantizer"]

_SKIP_TARGETS = ("sym_size", "_assert", "getitem", "quantize_per", "dequantize_per")


def make_quantizer(*, qat: bool = False) -> Any:
    """A litert-torch ``PT2EQuantizer`` for static int8 with every activation quantized.

    Weights: int8 per output channel, symmetric (range [-127, 127], zero point 0); activations:
    int8 per tensor, asymmetric ([-128, 127], a zero point). ``qat=True`` gives fake-quantize
    modules (quantization-aware training) instead of observers.

    Raises:
        MissingExtraError: the MCU extra is not installed (the message has the install hint).
    """
    pt2e = require("litert_torch.quantize.pt2e_quantizer")
    utils = require("litert_torch.quantize.pt2e_quantizer_utils")
    spec_mod = require("torchao.quantization.pt2e.quantizer")

    class FullInt8Quantizer(pt2e.PT2EQuantizer):  # type: ignore[misc, name-defined]
        """litert-torch's static patterns, then every other float op as int8 in and out."""

        # BN is folded before quantization, so there is no conv-BN pattern to match; and
        # litert-torch 0.10's conv-BN QAT annotators fail under torch 2.13 (they pass a function
        # to torch.export), so they are switched off.
        STATIC_QAT_ONLY_OPS: list[str] = []  # noqa: RUF012 (the base class's attribute)

        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            return super().transform_for_annotation(_decompose_hardsigmoid(model))

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = self._annotate_for_static_quantization_config(model)
            config = self.global_config
            _annotate_remaining(model, config, utils, spec_mod, elementwise_only=True)
            utils.propagate_annotation(model)
            _annotate_remaining(model, config, utils, spec_mod, elementwise_only=False)
            return model

    config = pt2e.get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
    return FullInt8Quantizer().set_global(config)


_ELEMENTWISE = ("hardswish", "hardsigmoid", "relu", "hardtanh", "clamp", "mul", "add", "sigmoid")


def _annotate_remaining(
    model: torch.fx.GraphModule, config: Any, utils: Any, spec_mod: Any, *, elementwise_only: bool
) -> None:
    """Annotate each not yet annotated float op: int8 on its float inputs and on its output."""
    act = utils.get_input_act_qspec(config)
    out = utils.get_output_act_qspec(config)
    for node in model.graph.nodes:
        if node.op != "call_function" or not _is_float_tensor(node):
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if any(s in name for s in _SKIP_TARGETS):
            continue
        if elementwise_only and name.split(".")[0].rstrip("_") not in _ELEMENTWISE:
            continue
        annotation = node.meta.get("quantization_annotation")
        if annotation is not None and annotation._annotated:
            continue
        inputs = {
            a: act
            for a in node.args
            if isinstance(a, torch.fx.Node)
            and (_is_float_tensor(a) or _is_float_constant(model, a))
        }
        node.meta["quantization_annotation"] = spec_mod.QuantizationAnnotation(
            input_qspec_map=inputs, output_qspec=out, _annotated=True
        )


def _is_float_constant(model: torch.fx.GraphModule, node: torch.fx.Node) -> bool:
    """A ``get_attr`` float tensor (a scalar operand made a constant, e.g. the 3 of x + 3)."""
    if node.op != "get_attr":
        return False
    value = getattr(model, str(node.target), None)
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _decompose_hardsigmoid(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Replace each ``hardsigmoid(x)`` by ``hardtanh(x + 3, 0, 6) * (1 / 6)`` (same values)."""
    aten = torch.ops.aten
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in (
            aten.hardsigmoid.default,
            aten.hardsigmoid_.default,
        ):
            continue
        val = node.meta.get("val")
        with model.graph.inserting_before(node):
            shifted = model.graph.call_function(aten.add.Tensor, (node.args[0], 3.0))
            clipped = model.graph.call_function(aten.hardtanh.default, (shifted, 0.0, 6.0))
            scaled = model.graph.call_function(aten.mul.Tensor, (clipped, 1.0 / 6.0))
        for new in (shifted, clipped, scaled):
            new.meta = {**node.meta, "val": val}
        node.replace_all_uses_with(scaled)
        model.graph.erase_node(node)
    model.graph.lint()
    model.recompile()
    return model


def _is_float_tensor(node: torch.fx.Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, torch.Tensor) and value.is_floating_point()

"""Published Once-for-All weights: the reference package's ``OFAMobileNetV3`` state-dict layout
read into our ``ofa-mbv3`` / ``ofa-mbv3-w1.2`` supernets and written back.

The reference (github.com/mit-han-lab/once-for-all, PyPI ``ofa``) publishes
``ofa_mbv3_d234_e346_k357_w1.0`` and ``..._w1.2``: state dicts of its ``OFAMobileNetV3`` with
kernel sizes {3, 5, 7}, expand ratios {3, 4, 6}, depths {2, 3, 4} and width multiplier 1.0 / 1.2.
Both networks hold the same tensors one for one (stem, first block, 20 elastic blocks with their
kernel transformation matrices, final expand, feature mix, classifier); only the names differ,
so conversion is a renaming with every shape checked, and the values are copied bit for bit.
Older published files name blocks ``.mobile_inverted_conv.`` and drop or double the inner
``bn.`` / ``conv.`` / ``linear.`` of dynamic layers; those spellings are accepted too (the
reference's own ``load_state_dict`` accepts the same).

Reference: Cai, Gan, Wang, Zhang, Han, "Once-for-All: Train One Network and Specialize it for
Efficient Deployment", ICLR'20, arXiv 1908.09791 (Sec. 3.2, Fig. 3: the elastic MobileNetV3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from supernet.errors import CheckpointError

__all__ = [
    "REFERENCE_WIDTHS",
    "from_reference_state_dict",
    "reference_key",
    "to_reference_state_dict",
    "unwrap_reference_checkpoint",
]

REFERENCE_WIDTHS: dict[str, float] = {"ofa-mbv3": 1.0, "ofa-mbv3-w1.2": 1.2}
"""Our space name → the reference network's ``width_mult``."""

_BLOCK_PARTS = {  # our name inside blocks.i → the reference's inside blocks.(i + 1).conv
    "expand_conv.weight": "inverted_bottleneck.conv.conv.weight",
    "expand_bn.": "inverted_bottleneck.bn.bn.",
    "depthwise_conv.weight": "depth_conv.conv.conv.weight",
    "depthwise_conv.transforms.5to3": "depth_conv.conv.5to3_matrix",
    "depthwise_conv.transforms.7to5": "depth_conv.conv.7to5_matrix",
    "depthwise_bn.": "depth_conv.bn.bn.",
    "se.": "depth_conv.se.fc.",
    "project_conv.weight": "point_linear.conv.conv.weight",
    "project_bn.": "point_linear.bn.bn.",
}
_FIXED_PARTS = {  # prefixes outside the elastic blocks
    "stem.0.": "first_conv.conv.",
    "stem.1.": "first_conv.bn.",
    "first_block.depthwise.0.": "blocks.0.conv.depth_conv.conv.",
    "first_block.depthwise.1.": "blocks.0.conv.depth_conv.bn.",
    "first_block.project.0.": "blocks.0.conv.point_linear.conv.",
    "first_block.project.1.": "blocks.0.conv.point_linear.bn.",
    "final_expand.0.": "final_expand_layer.conv.",
    "final_expand.1.": "final_expand_layer.bn.",
    "feature_mix.0.": "feature_mix_layer.conv.",
    "classifier.": "classifier.linear.",
}
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


def reference_key(key: str) -> str:
    """The reference ``OFAMobileNetV3`` name of one of our supernet's state-dict keys.

    Raises:
        CheckpointError: a key our ``ofa-mbv3`` supernets do not have.
    """
    for ours, theirs in _FIXED_PARTS.items():
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    match = _BLOCK.fullmatch(key)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        for ours, theirs in _BLOCK_PARTS.items():
            if rest == ours or (ours.endswith(".") and rest.startswith(ours)):
                return f"blocks.{index + 1}.conv.{theirs}{rest[len(ours) :]}"
    raise CheckpointError(f"supernet key {key!r} has no counterpart in the reference layout")


def _spellings(key: str) -> list[str]:
    """A reference key as written, then its older spellings normalized (first match wins)."""
    if key.startswith("module."):  # saved from a DataParallel / DDP wrapper
        key = key[len("module.") :]
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    out = [key]
    for short, long in ((".bn.", ".bn.bn."), (".conv.weight", ".conv.conv.weight"),
                        (".linear.", ".linear.linear.")):  # fmt: skip
        out += [key.replace(long, short), key.replace(short, long)]
    return out


def unwrap_reference_checkpoint(obj: object, where: str) -> dict[str, torch.Tensor]:
    """The state dict of a loaded reference checkpoint: itself, or its ``"state_dict"`` entry
    (how the published files store it).

    Raises:
        CheckpointError: not a mapping of names to tensors (names ``where``).
    """
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(
            f"{where}: expected a state dict (names → tensors) in the layout of the reference "
            "OFAMobileNetV3, or a dict with one under 'state_dict'"
        )
    return dict(obj)


def from_reference_state_dict(
    state: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor], *, where: str = "state"
) -> dict[str, torch.Tensor]:
    """Our supernet's state dict from a reference ``OFAMobileNetV3`` one.

    ``template`` is our supernet's own ``state_dict()`` (names and shapes to fill). Values are
    copied exactly (same dtype and bits); ``num_batches_tracked`` may be missing (older files)
    and then keeps the template's value.

    Shapes: every tensor as in ``template``.

    Raises:
        CheckpointError: the first key of ``state`` that has no place in the layout, the first
            expected key missing from it (with its expected shape), or the first shape that
            differs (both shapes; a width-1.2 file loaded as width 1.0 shows here).
    """
    wanted = {reference_key(k): k for k in template}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        target = next((wanted[s] for s in _spellings(key) if s in wanted), None)
        if target is None:
            raise CheckpointError(
                f"{where}: unexpected key {key!r}: not in the reference OFAMobileNetV3 layout "
                f"(expected keys such as {next(iter(wanted))!r})"
            )
        expected = tuple(template[target].shape)
        if tuple(value.shape) != expected:
            raise CheckpointError(
                f"{where}: key {key!r} has shape {tuple(value.shape)}, expected {expected} "
                f"(a checkpoint of another width multiplier or class count?)"
            )
        out[target] = value.detach().clone()
    for theirs, ours in wanted.items():
        if ours not in out:
            if ours.endswith("num_batches_tracked"):
                out[ours] = template[ours].clone()
                continue
            raise CheckpointError(
                f"{where}: missing key {theirs!r} (expected shape {tuple(template[ours].shape)})"
            )
    return {k: out[k] for k in template}


def to_reference_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A reference ``OFAMobileNetV3`` state dict from our supernet's (values copied exactly).

    Raises:
        CheckpointError: a key our ``ofa-mbv3`` supernets do not have.
    """
    return {reference_key(k): v.detach().clone() for k, v in state.items()}

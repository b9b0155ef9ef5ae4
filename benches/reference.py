"""The Once-for-All reference implementation (``pip install ofa tqdm``), loaded for side-by-side
benchmarks when it is importable; nothing here installs it.

The reference imports torchvision at module level only from its data-loading code
(``ofa.utils.my_dataloader`` and ``ofa.imagenet_classification.data_providers``), which nothing
benchmarked here runs. torchvision is not a dependency of this project (PyPI's build does not
import beside the pinned torch), so when it is missing :func:`load_reference` puts empty stand-in
modules under those names and reports that it did; any use of them raises ``AttributeError``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any

__all__ = ["Reference", "load_reference", "reference_arch", "reference_network"]

_TORCHVISION_MODULES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.datasets",
)


@dataclass(frozen=True)
class Reference:
    """Handles to the reference modules used by the benches.

    Attributes:
        version: the installed ``ofa`` distribution's version.
        stubbed_torchvision: True when empty torchvision stand-ins were installed.
        networks, evolution, acc_predictor, arch_encoder, efficiency, utils: the reference modules
            holding ``OFAMobileNetV3``, ``EvolutionFinder``, ``AccuracyPredictor``,
            ``MobileNetArchEncoder``, ``Mbv3FLOPsModel`` and its loss helpers.
    """

    version: str
    stubbed_torchvision: bool
    networks: Any
    evolution: Any
    acc_predictor: Any
    arch_encoder: Any
    efficiency: Any
    utils: Any


def _stub_torchvision() -> bool:
    loaded = sys.modules.get("torchvision")
    if loaded is not None:  # the real one, or our stand-in from an earlier call
        return bool(getattr(loaded, "__supernet_stub__", False))
    if importlib.util.find_spec("torchvision") is not None:
        return False
    for name in _TORCHVISION_MODULES:
        module = sys.modules.setdefault(name, types.ModuleType(name))
        module.__supernet_stub__ = True  # type: ignore[attr-defined]
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    # The reference subclasses these at import time; any call on them fails loudly.
    transforms = sys.modules["torchvision.transforms"]
    transforms.RandomResizedCrop = type("RandomResizedCrop", (), {})  # type: ignore[attr-defined]
    transforms.RandomCrop = type("RandomCrop", (), {})  # type: ignore[attr-defined]
    return True


def load_reference() -> Reference | None:
    """The reference modules, or None when ``ofa`` (or its ``tqdm`` dependency) is missing."""
    if importlib.util.find_spec("ofa") is None or importlib.util.find_spec("tqdm") is None:
        return None
    from importlib.metadata import version

    stubbed = _stub_torchvision()
    return Reference(
        version=version("ofa"),
        stubbed_torchvision=stubbed,
        networks=importlib.import_module("ofa.imagenet_classification.elastic_nn.networks"),
        evolution=importlib.import_module("ofa.nas.search_algorithm.evolution"),
        acc_predictor=importlib.import_module("ofa.nas.accuracy_predictor.acc_predictor"),
        arch_encoder=importlib.import_module("ofa.nas.accuracy_predictor.arch_encoder"),
        efficiency=importlib.import_module("ofa.nas.efficiency_predictor"),
        utils=importlib.import_module("ofa.utils"),
    )


def reference_network(ref: Reference, n_classes: int = 1000) -> Any:
    """The reference ``OFAMobileNetV3`` matching the ``ofa-mbv3`` space at width 1.0
    (kernel sizes {3, 5, 7}, expand ratios {3, 4, 6}, depths {2, 3, 4}), with OFA's defaults of
    BN momentum 0.1, eps 1e-5 and dropout 0.1."""
    return ref.networks.OFAMobileNetV3(
        n_classes=n_classes,
        dropout_rate=0.1,
        width_mult=1.0,
        ks_list=[3, 5, 7],
        expand_ratio_list=[3, 4, 6],
        depth_list=[2, 3, 4],
    )


def reference_arch(config: Any) -> dict[str, Any]:
    """An ``ArchConfig`` as the reference's arch dict (``ks``, ``e``, ``d``, ``image_size``)."""
    return {
        "ks": list(config.kernel_size),
        "e": list(config.expand_ratio),
        "d": list(config.depth),
        "image_size": config.resolution,
    }

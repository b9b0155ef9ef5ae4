"""Supernet families by name (timm-style registry)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from supernet.errors import ConfigError
from supernet.nn.ofa_mbv3 import build_ofa_mbv3
from supernet.space import SearchSpace, get_space

__all__ = ["create_supernet", "list_supernets", "register_supernet"]

SupernetBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, SupernetBuilder] = {"ofa-mbv3": build_ofa_mbv3}


def register_supernet(name: str, builder: SupernetBuilder) -> None:
    """Register ``builder(space, **kwargs) -> nn.Module`` under ``name``.

    Raises:
        ConfigError: when the name is already taken.
    """
    if name in _REGISTRY:
        raise ConfigError(f"supernet family {name!r} is already registered")
    _REGISTRY[name] = builder


def list_supernets() -> list[str]:
    """Names of the registered supernet families."""
    return sorted(_REGISTRY)


def create_supernet(
    space: str | SearchSpace, *, family: str = "ofa-mbv3", **kwargs: object
) -> nn.Module:
    """Build a supernet of ``family`` over ``space`` (a space or a preset name).

    Raises:
        ConfigError: for an unknown family or space (lists the known names).
    """
    if family not in _REGISTRY:
        raise ConfigError(f"unknown supernet family {family!r}; choose from {list_supernets()}")
    if isinstance(space, str):
        space = get_space(space)
    return _REGISTRY[family](space, **kwargs)

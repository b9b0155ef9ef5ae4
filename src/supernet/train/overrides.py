"""Command-line overrides of a training config, ``KEY=VALUE`` with dotted keys into the phases.

``batch_size=64`` replaces a top-level key; ``phases.0.epochs=1`` (by index),
``phases.kernel.train_limit=512`` (by phase name) and ``phases.*.epochs=1`` (every phase) reach
one key of the phases. Values are YAML (``null``, ``true``, ``[3, 5]``). Plain dict handling:
checking the values is :class:`~supernet.train.config.TrainConfig`'s job.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from supernet.errors import ConfigError

__all__ = ["apply_overrides", "parse_overrides"]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["batch_size=64", "train_limit=null"]`` → ``{"batch_size": 64, "train_limit": None}``.

    Values are parsed with ``yaml.safe_load`` (plain data only; no tags that build objects).
    Keys may be dotted (``phases.0.epochs``); :func:`apply_overrides` resolves them.

    Raises:
        ConfigError: an item without ``=`` or with an empty key, or a value that is not valid
            YAML (names the item).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. ints > 4300 digits
            reason = " ".join(str(exc).split())
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({reason})") from exc
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``overrides`` applied in order; dotted keys reach into phases.

    ``phases.SELECTOR.KEY``: SELECTOR is a phase index (0-based), a phase name or ``*`` (every
    phase). Only ``phases`` takes dotted keys; a plain ``phases=[...]`` replaces the whole list.

    Raises:
        ConfigError: a dotted key that is not ``phases.SELECTOR.KEY``, an index out of range or
            an unknown phase name (lists the phases).
    """
    out = copy.deepcopy(data)
    for key, value in overrides.items():
        if not isinstance(key, str) or "." not in key:
            out[key] = value
            continue
        head, _, rest = key.partition(".")
        selector, _, field = rest.partition(".")
        if head != "phases" or not selector or not field or "." in field:
            raise ConfigError(
                f"override key {key!r}: only phases take dotted keys, as phases.INDEX.KEY, "
                "phases.NAME.KEY or phases.*.KEY (e.g. phases.0.epochs=1)"
            )
        phases = out.get("phases")
        if not isinstance(phases, list) or not all(isinstance(p, dict) for p in phases):
            raise ConfigError(f"override key {key!r}: the config has no list of phases to change")
        names = [p.get("name") for p in phases]
        if selector == "*":
            chosen = list(range(len(phases)))
        elif selector.isdigit():
            if int(selector) >= len(phases):
                raise ConfigError(
                    f"override key {key!r}: phase index {selector} is out of range; the config "
                    f"has {len(phases)} phases, 0..{len(phases) - 1}: {names}"
                )
            chosen = [int(selector)]
        elif selector in names:
            chosen = [names.index(selector)]
        else:
            raise ConfigError(
                f"override key {key!r}: no phase named {selector!r}; phases are {names} "
                f"(or use an index 0..{len(phases) - 1}, or * for every phase)"
            )
        for i in chosen:
            phases[i][field] = copy.deepcopy(value)
    return out

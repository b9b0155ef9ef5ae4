"""Device descriptions: which runtime, how many threads, which batch size, which budgets.

A device is a small YAML or JSON file (JSON is read as YAML)::

    name: pi4-ort
    runtime: onnxruntime      # torch | onnxruntime
    threads: 4
    batch_size: 1
    constraints: {max_latency_ms: 5.0, max_peak_memory_bytes: 262144}
    lut: luts/pi4-ort.json    # optional; relative to the device file

A microcontroller adds ``int8: true``, a ``memory_planner`` (``naive``, ``tflm``,
``tflm-arena``, ``tinyengine``; default ``tflm``) and int8 budgets in bytes::

    name: stm32f746
    runtime: onnxruntime      # host-side timing only; SRAM / Flash are the MCU's budgets
    int8: true
    memory_planner: tflm
    constraints: {max_sram_bytes: 327680, max_flash_bytes: 1048576}
A latency budget may instead be relative to the latency table, ``max_latency: 60% of largest``
(:data:`RELATIVE_LATENCY`).

Two descriptions are built in: ``cpu-torch`` (this CPU, PyTorch eager) and ``cpu-ort`` (this CPU,
onnxruntime), both with as many threads as this process may use and batch size 1.

Reference: the per-device specialization of Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791),
Sec. 3.4 and Table 2 (latency constraints per hardware platform).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from supernet.errors import ConfigError

__all__ = [
    "BUILTIN_DEVICES",
    "CONSTRAINTS",
    "DEFAULT_MEMORY_PLANNER",
    "INT8_CONSTRAINTS",
    "MAX_THREADS",
    "RELATIVE_LATENCY",
    "RUNTIMES",
    "DeviceSpec",
    "available_threads",
    "describe_machine",
    "get_device",
    "load_device",
    "load_devices",
    "parse_relative_budget",
]

RUNTIMES = ("torch", "onnxruntime")
"""Runtimes a latency can be measured with."""

CONSTRAINTS = (
    "max_latency_ms",
    "max_macs",
    "max_peak_memory_bytes",
    "max_model_size_bytes",
    "max_sram_bytes",
    "max_flash_bytes",
)
"""Budgets a device description may set (units in the names). ``max_sram_bytes`` and
``max_flash_bytes`` are int8 budgets (:mod:`supernet.cost.mcu`) and need ``int8: true``."""

INT8_CONSTRAINTS = ("max_sram_bytes", "max_flash_bytes")
"""Constraints on int8 costs: int8 SRAM under the device's memory planner, int8 Flash."""

DEFAULT_MEMORY_PLANNER = "tflm"
"""Memory planner of an int8 device that names none (the runtime MCU toolchains ship)."""

RELATIVE_LATENCY = "max_latency"
"""A latency budget relative to the device's latency table: ``"60% of largest"`` is 0.6 times
the table's predicted latency of the space's largest subnet (``of smallest`` likewise), so a
budget means the same on a fast and a slow machine."""
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*of\s+(largest|smallest)\s*$")


def parse_relative_budget(text: Any) -> tuple[float, str]:
    """``"60% of largest"`` → ``(0.6, "largest")``.

    Raises:
        ConfigError: ``text`` is not ``"P% of largest"`` or ``"P% of smallest"`` with P > 0.
    """
    match = _RELATIVE.match(text) if isinstance(text, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            f"constraints.{RELATIVE_LATENCY} = {text!r}; write a share of the latency table's "
            "largest or smallest subnet, e.g. '60% of largest' or '150% of smallest' (an "
            "absolute budget goes in max_latency_ms)"
        )
    return float(match.group(1)) / 100, match.group(2)


def available_threads() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


MAX_THREADS = 1024
"""Most intra-op threads a device description may ask for (a typo such as 10**6 threads would
otherwise start that many)."""


def _positive_int(label: str, value: Any, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{label} = {value!r} must be an integer >= 1")
    if high is not None and value > high:
        raise ConfigError(f"{label} = {value!r} must be an integer in [1, {high}]")
    return value


def _yaml11_number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class DeviceSpec:
    """Where and how latency is measured, plus the budgets a search must meet there.

    Attributes:
        name: a label for tables and file names.
        runtime: ``"torch"`` (PyTorch eager) or ``"onnxruntime"``.
        threads: intra-op threads used for every measurement (fixed and recorded), at most
            :data:`MAX_THREADS`.
        batch_size: images per forward pass.
        constraints: budgets, keys from :data:`CONSTRAINTS` (``max_latency_ms`` in ms,
            ``max_macs``, ``max_peak_memory_bytes``, ``max_model_size_bytes``), positive numbers;
            or ``max_latency`` relative to the latency table (:data:`RELATIVE_LATENCY`, e.g.
            ``"60% of largest"``), resolved to ``max_latency_ms`` when the table is loaded.
        lut: path of the latency lookup table for this device, if built.
        int8: the device runs int8 subnets (a microcontroller); needed by ``max_sram_bytes`` /
            ``max_flash_bytes``.
        memory_planner: how SRAM is counted for an int8 device (``naive``, ``tflm``,
            ``tflm-arena``, ``tinyengine``; see :mod:`supernet.cost.mcu`); ``None`` means
            :data:`DEFAULT_MEMORY_PLANNER` when ``int8`` is true.

    Raises:
        ConfigError: a value is not allowed (names the field, the value and what is allowed).
    """

    name: str
    runtime: str
    threads: int
    batch_size: int = 1
    constraints: dict[str, float] = field(default_factory=dict, hash=False)
    lut: str | None = None
    int8: bool = False
    memory_planner: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"device name = {self.name!r} must be a non-empty string")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"runtime = {self.runtime!r} is not allowed; choose from {RUNTIMES}")
        _positive_int("threads", self.threads, MAX_THREADS)
        _positive_int("batch_size", self.batch_size)
        if not isinstance(self.constraints, dict):
            raise ConfigError(f"constraints = {self.constraints!r} must be a mapping")
        known = (*CONSTRAINTS, RELATIVE_LATENCY)
        unknown = sorted((k for k in self.constraints if k not in known), key=str)
        if unknown:
            raise ConfigError(f"unknown constraint(s) {unknown}; known constraints: {list(known)}")
        if RELATIVE_LATENCY in self.constraints and "max_latency_ms" in self.constraints:
            raise ConfigError(
                f"constraints set both max_latency_ms and {RELATIVE_LATENCY}; give one latency "
                "budget"
            )
        for key, value in self.constraints.items():
            if key == RELATIVE_LATENCY:
                parse_relative_budget(value)
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigError(f"constraints.{key} = {value!r} must be a positive number")
        if self.lut is not None and not isinstance(self.lut, str):
            raise ConfigError(f"lut = {self.lut!r} must be a path (string)")
        if not isinstance(self.int8, bool):
            raise ConfigError(f"int8 = {self.int8!r} must be true or false")
        if self.memory_planner is not None:
            from supernet.cost.mcu import check_planner

            if not self.int8:
                raise ConfigError(
                    f"memory_planner = {self.memory_planner!r} needs int8: true (it counts int8 "
                    f"SRAM)"
                )
            check_planner(self.memory_planner)
        int8_only = [k for k in INT8_CONSTRAINTS if k in self.constraints]
        if int8_only and not self.int8:
            raise ConfigError(f"constraint(s) {int8_only} are int8 budgets; set int8: true")

    @property
    def planner(self) -> str:
        """The memory planner int8 SRAM is counted with (:data:`DEFAULT_MEMORY_PLANNER` when
        none is named)."""
        return self.memory_planner or DEFAULT_MEMORY_PLANNER

    def replace(self, **changes: Any) -> DeviceSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict; :func:`load_device` reads it back."""
        return {**dataclasses.asdict(self), "constraints": dict(self.constraints)}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "device description") -> DeviceSpec:
        """Build from a mapping, rejecting unknown and missing fields.

        Raises:
            ConfigError: ``data`` is not a mapping, has unknown fields (lists the known fields),
                lacks ``name`` or ``runtime``, or holds a bad value; the message starts with
                ``source``.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must be a mapping, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known fields: {known}")
        missing = [k for k in ("name", "runtime") if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing field(s) {missing}; known fields: {known}")
        values = dict(data)
        values.setdefault("threads", available_threads())
        if values.get("constraints") is None:
            values["constraints"] = {}
        if isinstance(values["constraints"], dict):
            # PyYAML follows YAML 1.1, which reads ``2.0e6`` (no exponent sign) as a string.
            values["constraints"] = {k: _yaml11_number(v) for k, v in values["constraints"].items()}
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc


BUILTIN_DEVICES = {
    "cpu-torch": "this CPU, PyTorch eager, all available threads, batch 1",
    "cpu-ort": "this CPU, onnxruntime, all available threads, batch 1",
}


def _builtin(name: str) -> DeviceSpec:
    runtime = "torch" if name == "cpu-torch" else "onnxruntime"
    return DeviceSpec(name=name, runtime=runtime, threads=available_threads(), batch_size=1)


def load_device(path: str | os.PathLike[str]) -> DeviceSpec:
    """Read a device description from a YAML or JSON file.

    A relative ``lut`` path is taken relative to the file's directory.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: the file is not valid YAML/JSON, has unknown fields (lists the known fields),
            misses ``name``/``runtime``, or holds a bad value (names the value and what is allowed).
    """
    path = Path(path)
    data = _read_yaml(path, "device file")
    return _with_lut_beside(DeviceSpec.from_dict(data, source=f"device file {str(path)!r}"), path)


def _read_yaml(path: Path, what: str) -> Any:
    """``yaml.safe_load`` of a UTF-8 file: plain data only, no tags that build objects."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # bad UTF-8, huge ints
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML/JSON: {reason}") from exc


def _with_lut_beside(spec: DeviceSpec, path: Path) -> DeviceSpec:
    """A relative ``lut`` path is relative to the device file's directory."""
    if spec.lut is not None and not Path(spec.lut).is_absolute():
        return spec.replace(lut=str(path.parent / spec.lut))
    return spec


def load_devices(path: str | os.PathLike[str]) -> list[DeviceSpec]:
    """Read several device descriptions from one YAML/JSON file: ``devices: [{...}, {...}]``.

    A file holding a single description (as :func:`load_device` reads) gives a one-item list.
    Relative ``lut`` paths are taken relative to the file's directory.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: invalid YAML/JSON, ``devices`` not a non-empty list, duplicate names, or a
            bad description (names the device index, the field and what is allowed).
    """
    path = Path(path)
    data = _read_yaml(path, "devices file")
    if isinstance(data, dict) and set(data) != {"devices"}:
        return [load_device(path)]
    items = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f"devices file {str(path)!r} must hold 'devices: [...]' with at least one device"
        )
    specs = []
    for i, item in enumerate(items):
        source = f"devices file {str(path)!r}, devices[{i}]"
        specs.append(_with_lut_beside(DeviceSpec.from_dict(item, source=source), path))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"devices file {str(path)!r}: device names must be unique, got {names}")
    return specs


def get_device(name_or_path: str | os.PathLike[str]) -> DeviceSpec:
    """A built-in device (``"cpu-torch"``, ``"cpu-ort"``) or one read from a file.

    Raises:
        ConfigError: neither a built-in name nor an existing file (lists the built-ins), or a bad
            file (see :func:`load_device`).
    """
    text = str(name_or_path)
    if text in BUILTIN_DEVICES:
        return _builtin(text)
    if Path(text).is_file():
        return load_device(text)
    raise ConfigError(
        f"unknown device {text!r}; choose from {sorted(BUILTIN_DEVICES)} or give a YAML/JSON file"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_machine() -> dict[str, Any]:
    """What the measurements ran on: CPU model, thread counts, OS, runtime versions.

    Returns:
        A JSON-ready dict with ``cpu_model``, ``logical_cpus``, ``available_threads``,
        ``platform``, ``python``, ``torch``, ``torch_threads`` and ``onnxruntime`` (``None`` when
        not installed).
    """
    import torch

    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "available_threads": available_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": ort_version,
    }

"""Shared hypothesis strategies and settings of the fuzz suite (tests/fuzz/test_fuzz_*.py).

Every fuzz test asserts one property: an input either works or fails with the documented error
type and a message; nothing else escapes (no KeyError, TypeError, RecursionError, ... from deep
inside a parser or torch). ``EXAMPLES`` counts the examples each test ran; the fuzz conftest
prints the total at the end of the session.
"""

from __future__ import annotations

import collections
import json
import math

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES: collections.Counter[str] = collections.Counter()
"""Examples run per test (``EXAMPLES[test name] += 1`` in each test body)."""


def fuzz(max_examples: int) -> settings:
    """Reproducible settings: the same examples on every run (CI), no deadline, no database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )  # fmt: skip


# Numbers that break naive validators: bools (ints in Python), NaN/inf, huge and negative ints.
nasty_numbers = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**6, 0.5, -0.0, 1e-300, 1e300]),
)
nasty_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["", " ", "null", "~", "yes", "no", "1e3", "nan", "-inf", "[/x]", "[bold]", "{", "[",
         "a\x00b", "..", "../x", "x" * 300, "\u202e", "\ud800"]
    ),
)  # fmt: skip
scalars = st.one_of(st.none(), nasty_numbers, nasty_text)


def json_documents(max_leaves: int = 12) -> st.SearchStrategy:
    """Any JSON value: scalars, lists and objects nested a few levels."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def mutated(base: dict, values: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """``base`` with a few keys (known or new) set to arbitrary values, or deleted.

    Starting from a valid document keeps most examples deep in the validator instead of all
    failing the first check.
    """
    values = values if values is not None else json_documents(6)
    keys = st.sampled_from(sorted(base)) | nasty_text
    edits = st.lists(st.tuples(keys, st.booleans(), values), min_size=1, max_size=3)

    def apply(changes: list) -> dict:
        out = json.loads(json.dumps(base))
        for key, delete, value in changes:
            if delete:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    return edits.map(apply)


def nested_mutation(base: dict, path: tuple, values: st.SearchStrategy) -> st.SearchStrategy:
    """``base`` with the value at ``path`` (keys / indices) replaced by a drawn one."""

    def apply(value: object) -> dict:
        out = json.loads(json.dumps(base))
        target = out
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return out

    return values.map(apply)


def to_json_text(value: object) -> str:
    """JSON text of ``value``; NaN/inf as JSON's non-standard constants (Python writes them)."""
    return json.dumps(value, allow_nan=True)


def to_yaml_text(value: object) -> str:
    """YAML text of ``value`` (``safe_dump``); text that is not YAML is kept as is."""
    if isinstance(value, str):
        return value
    try:
        return yaml.safe_dump(value)
    except (yaml.YAMLError, ValueError):
        return str(value)


def raw_bytes(nesting: int = 600) -> st.SearchStrategy[bytes]:
    """Bytes that are not UTF-8 text, deep nesting, huge numbers and odd YAML tags.

    ``nesting``: depth of the nested brackets (600 overflows PyYAML's recursion in 0.1 s; JSON
    parsers need about 1,000 and are fast).
    """
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [b"\xff\xfe\x00", b"[" * nesting, b"{" * nesting, b"1" * 5000, b"a: " + b"9" * 5000,
             b"!!python/object/apply:os.system [echo pwned]", b"a: !!binary AAAA", b"a: 2001-13-45",
             b"&a [*a]", b"\x00", b""]
        ),
    )  # fmt: skip


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def outcome(call, error: type[BaseException]) -> tuple[object, BaseException | None]:
    """``(call(), None)``, or ``(None, exc)`` when ``call`` raises ``error`` (anything else
    propagates and fails the test)."""
    try:
        return call(), None
    except error as exc:
        return None, exc

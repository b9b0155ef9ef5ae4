"""The fuzz suite prints how many generated examples it ran."""

from __future__ import annotations

from tests.fuzz.strategies import EXAMPLES


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if EXAMPLES:
        per_test = ", ".join(f"{name} {n}" for name, n in sorted(EXAMPLES.items()))
        terminalreporter.write_line(
            f"fuzz: {sum(EXAMPLES.values())} generated examples ({per_test})"
        )

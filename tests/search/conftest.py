"""Fixtures for the search tests."""

from __future__ import annotations

import pytest
from tests.search.helpers import enumerable_space


@pytest.fixture
def small_space():
    return enumerable_space()

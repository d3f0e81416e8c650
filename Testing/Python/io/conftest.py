"""Fixtures of the io tests (builders live in io_helpers.py)."""

import numpy as np
import pytest

from io_helpers import make_study


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def study():
    return make_study()

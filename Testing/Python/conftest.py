"""Shared fixtures: tiny phantoms built once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def heart():
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    return PhantomHeart.from_seed(0, 0, kind="normal")


@pytest.fixture(scope="session")
def tiny_cine(heart):
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine

    return simulate_cine(heart, CMRConfig.tiny(), seed=1)

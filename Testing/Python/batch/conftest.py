"""Fixtures of the batch tests: a tiny phantom cohort of 8 UK Biobank-style subjects (no CT), written once
per session, and a manifest builder."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def cohort8(tmp_path_factory) -> Path:
    from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, write_cohort

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("cohort8")
    write_cohort(folder, replace(CohortConfig.tiny(8), ct=None))
    return folder


@pytest.fixture()
def cohort_copy(cohort8, tmp_path) -> Path:
    """A private copy of the cohort (tests may corrupt it)."""
    target = tmp_path / "cohort"
    shutil.copytree(cohort8, target)
    return target

"""The preprocessing record a motion checkpoint carries and the check of a request against it."""

from __future__ import annotations

import re

import pytest

from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.motion.preprocessing import resolve_request, stored_reduction

REDUCED = {"intensity_percentile": 99.0, "preset": None, "reduction": {"factor": 2, "crop": 40, "frames": 10}}
PRESET = {"intensity_percentile": 99.0, "preset": "demo", "reduction": None}
UNKNOWN = {"intensity_percentile": 99.0, "preset": None, "reduction": None}


def test_stored_settings_fill_unset_options():
    assert resolve_request(REDUCED, "m.pt") == ("reduction", (2, 40, 10))
    assert resolve_request(REDUCED, "m.pt", factor=2, frames=10) == ("reduction", (2, 40, 10))
    assert resolve_request(PRESET, "m.pt") == ("preset", "demo")
    assert resolve_request(PRESET, "m.pt", preset="demo") == ("preset", "demo")


@pytest.mark.parametrize("record, request_, message", [
    (REDUCED, {"crop": 32}, "trained with factor 2, crop 40, frames 10; got crop 32"),
    (REDUCED, {"preset": "demo"}, "not with a preset; got preset demo"),
    (PRESET, {"factor": 1}, "trained with the 'demo' preset"),
    (PRESET, {"preset": "tiny"}, "trained with the 'demo' preset"),
    (REDUCED, {"intensity_percentile": 95.0}, "99.0th percentile, asked for 95.0"),
])
def test_mismatched_requests_are_refused(record, request_, message):
    with pytest.raises(CardiacMotionAtlasError, match=r"^m\.pt: .*" + re.escape(message)):
        resolve_request(record, "m.pt", **request_)


def test_unrecorded_grid_takes_the_request():
    assert resolve_request(UNKNOWN, "m.pt") is None
    assert resolve_request(UNKNOWN, "m.pt", frames=5) == ("reduction", (1, None, 5))
    assert resolve_request(None, "m.pt", preset="tiny") == ("preset", "tiny")
    assert stored_reduction(UNKNOWN) is None and stored_reduction(PRESET) == {"preset": "demo"}
    assert stored_reduction(REDUCED) == REDUCED["reduction"]

"""The checkpoint registry: relative paths beside the registry, checksum verification, clear errors."""

import json

import pytest

from CardiacMotionAtlasLib.registry import RegistryError, list_models, register_checkpoint, resolve_checkpoint


def test_register_and_resolve_round_trip_with_relative_paths(tmp_path):
    checkpoint = tmp_path / "models" / "atlas.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    registry = tmp_path / "models.json"
    register_checkpoint(registry, "phantom-atlas", "atlas", checkpoint, source="main job")
    assert json.loads(registry.read_text())["models"]["phantom-atlas"]["path"] == "models/atlas.pt"
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    tmp_path.rename(moved)  # the results folder moves as a whole
    assert resolve_checkpoint(moved / "models.json", "phantom-atlas", "atlas") == moved / "models" / "atlas.pt"
    assert list_models(moved / "models.json")["phantom-atlas"].source == "main job"


def test_changed_checkpoint_wrong_method_and_unknown_name_are_refused(tmp_path):
    checkpoint = tmp_path / "nisf.pt"
    checkpoint.write_bytes(b"a")
    registry = tmp_path / "models.json"
    register_checkpoint(registry, "n", "nisf", checkpoint)
    with pytest.raises(RegistryError, match="not atlas"):
        resolve_checkpoint(registry, "n", "atlas")
    with pytest.raises(RegistryError, match="no model named 'x'"):
        resolve_checkpoint(registry, "x")
    checkpoint.write_bytes(b"b")
    with pytest.raises(RegistryError, match="checksum"):
        resolve_checkpoint(registry, "n")
    with pytest.raises(RegistryError, match="unknown method"):
        register_checkpoint(registry, "m", "voodoo", checkpoint)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(RegistryError, match="bad.json"):
        list_models(tmp_path / "bad.json")


def test_a_half_trained_checkpoint_is_not_registered(tmp_path):
    from CardiacMotionAtlasLib.training import save_checkpoint

    registry = tmp_path / "models.json"
    partial = save_checkpoint(tmp_path / "atlas.partial.pt", model_state={}, config={}, step=250, total_steps=1000,
                              kind="atlas")
    with pytest.raises(RegistryError, match=r"atlas.partial.pt: incomplete model \(step 250 of 1000\)"):
        register_checkpoint(registry, "a", "atlas", partial)
    assert not registry.exists()
    finished = save_checkpoint(tmp_path / "atlas.pt", model_state={}, config={}, step=1000, total_steps=1000,
                               kind="atlas")
    assert register_checkpoint(registry, "a", "atlas", finished).path.name == "atlas.pt"

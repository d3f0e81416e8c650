"""Annotated pairs: the written flow reproduces the generated frame; geometry, JSON, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.synthesis import generate_pairs
from CardiacMotionAtlasLib.synthesis.grid import pull_frame
from CardiacMotionAtlasLib.synthesis.pairs import check_pair, read_pair, write_pair
from CardiacMotionAtlasLib.synthesis.sample import generate, grid_latents, line_latents, make_latents


def test_moving_the_frame_by_the_written_flow_reproduces_the_generated_frame(trained_synth, es_frame, tmp_path):
    image, labels = es_frame.image, es_frame.labels.array[0]
    folders = generate_pairs(trained_synth, image, tmp_path / "pairs", labels=labels, n=2, seed=4,
                             es_phase=float(es_frame.heart.es_phase), subject_id="s0")
    for folder in folders:
        pair = read_pair(folder)
        conditioning, generated = pair["conditioning"].array[0], pair["generated"].array[0]
        assert np.abs(generated - conditioning).max() > 1.0  # the flow does move the frame
        assert np.abs(pair["flow"].vectors).max() > 1e-3
        assert check_pair(folder) < 1e-3  # exact up to float32 I/O
        moved_labels = pull_frame(pair["labels_conditioning"].array[0], image.ijk_to_ras, pair["flow"], labels=True)
        assert np.array_equal(moved_labels, pair["labels_generated"].array[0])
        # the RAS-component NIfTI holds the same numbers as the displacement-field file
        assert np.allclose(pair["flow_ras_mm"].array, pair["flow"].vectors, atol=1e-5)


def test_written_pairs_share_the_frame_geometry_and_record_the_latent(trained_synth, es_frame, tmp_path):
    folders = generate_pairs(trained_synth, es_frame.image, tmp_path, labels=es_frame.labels.array[0], n=3,
                             mode="line", seed=2)
    latents = make_latents("line", 3, trained_synth.config.latent_dim, 2).numpy()
    for index, folder in enumerate(folders):
        pair = read_pair(folder)
        record = pair["record"]
        assert record["model_version"] == trained_synth.model_version
        assert record["latent_mode"] == "line"
        assert np.allclose(record["latent"], latents[index], atol=1e-6)
        for key in ("conditioning", "generated", "flow_ras_mm", "labels_conditioning", "labels_generated", "flow"):
            assert np.allclose(pair[key].ijk_to_ras, es_frame.image.ijk_to_ras, atol=1e-4), key
            shape = pair[key].shape_zyx
            assert shape == es_frame.image.shape_zyx, key
        assert record["target_phase"] == pytest.approx(0.35) and record["source_phase"] == 0.0
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]
        assert leftovers == []
    # rerunning keeps complete pairs untouched
    stamp = (folders[0] / "pair.json").stat().st_mtime_ns
    generate_pairs(trained_synth, es_frame.image, tmp_path, labels=es_frame.labels.array[0], n=3, mode="line", seed=2)
    assert (folders[0] / "pair.json").stat().st_mtime_ns == stamp
    # ... but other latents (another seed) replace them
    generate_pairs(trained_synth, es_frame.image, tmp_path, n=1, mode="random", seed=7)
    record = read_pair(folders[0])["record"]
    assert np.allclose(record["latent"], make_latents("random", 1, trained_synth.config.latent_dim, 7)[0].numpy(), atol=1e-6)
    assert record["latent_mode"] == "random"


def test_a_failed_write_leaves_no_record_and_no_partial_files(trained_synth, es_frame, tmp_path):
    labels = es_frame.labels.array[0]
    sample = generate(trained_synth, es_frame.image, labels=labels)[0]
    sample.labels = sample.labels.astype(np.int32) * 100  # 300: not a storable label
    folder = tmp_path / "pair_bad"
    with pytest.raises(CardiacMotionAtlasError, match="label"):
        write_pair(folder, sample, es_frame.image.array[0], es_frame.image.ijk_to_ras, labels, model_version="x")
    assert not (folder / "pair.json").exists()
    assert [p.name for p in folder.iterdir() if ".tmp" in p.name] == []


def test_anisotropic_frames_get_flows_on_their_own_grid(trained_synth, es_frame, tmp_path):
    from CardiacMotionAtlasLib.geometry.warp import ras_to_voxel_displacement

    image = es_frame.image
    volume = image.array[0][::2]  # 8 mm slices along S
    matrix = image.ijk_to_ras.copy()
    matrix[:3, 2] *= 2
    samples = generate(trained_synth, volume, matrix, n=1)
    flow = samples[0].flow
    assert flow.shape_zyx == volume.shape and np.allclose(flow.ijk_to_ras, matrix)
    u = torch.as_tensor(ras_to_voxel_displacement(flow.vectors, matrix))[None]
    from CardiacMotionAtlasLib.geometry.warp import warp

    expected = warp(torch.as_tensor(volume)[None, None], u)[0, 0].numpy()
    assert np.array_equal(expected, samples[0].generated)


def test_latent_layouts():
    line = line_latents(5, 4, extent=2.0, direction=torch.tensor([1.0, 2.0, 0.0, 2.0]))
    steps = line[1:] - line[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-6)  # equally spaced, collinear
    assert torch.allclose(line[0].norm(), torch.tensor(2.0)) and torch.allclose(line[2], torch.zeros(4), atol=1e-6)
    grid = grid_latents(9, 3, extent=1.0)
    assert grid.shape == (9, 3) and torch.all(grid[:, 2] == 0)
    assert {tuple(v) for v in grid[:, :2].tolist()} == {(a, b) for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)}
    assert torch.equal(make_latents("random", 4, 3, seed=1), make_latents("random", 4, 3, seed=1))
    assert not torch.equal(make_latents("random", 4, 3, seed=1), make_latents("random", 4, 3, seed=2))


def test_the_json_record_is_plain_json(trained_synth, es_frame, tmp_path):
    folder = generate_pairs(trained_synth, es_frame.image, tmp_path, n=1)[0]
    record = json.loads((folder / "pair.json").read_text())
    assert set(record["files"]) == {"conditioning", "generated", "flow", "flow_ras_mm"}
    assert 0.0 <= record["stats"]["negative_jacobian_fraction"] <= 1.0

"""``cardiac-atlas atlas train|fit|mesh`` end to end (tiny), and clear errors for bad input files."""

from __future__ import annotations

import json

import numpy as np

from CardiacMotionAtlasLib.cli.main import main
from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.io.meshes import read_mesh_sequence
from CardiacMotionAtlasLib.io.nifti import write_nifti


def test_cli_train_fit_mesh(tmp_path, capsys, tiny_atlas):
    atlas_dir = tmp_path / "atlas"
    code = main(["atlas", "train", "--phantom", "2", "--frames", "3", "--tiny", "--steps", "4", "--out",
                 str(atlas_dir), "--device", "cpu", "--progress", "lines"])
    assert code == 0 and (atlas_dir / "atlas.pt").is_file() and (atlas_dir / "atlas_config.json").is_file()
    assert "PROGRESS 1.000000" in capsys.readouterr().out
    code = main(["atlas", "train", "--phantom", "2", "--frames", "3", "--tiny", "--steps", "4", "--out",
                 str(atlas_dir), "--device", "cpu", "--resume", "--progress", "none"])
    assert code == 0
    # fitting and meshing need a template with a surface: use the session's tiny trained atlas
    trained = tiny_atlas.save(tmp_path / "trained.pt")
    fit_dir = tmp_path / "fit"
    code = main(["atlas", "fit", "--atlas", str(trained), "--phantom-index", "3", "--frames", "4", "--setting", "ed",
                 "--steps", "3", "--phases", "4", "--resolution", "24", "--out", str(fit_dir), "--device", "cpu", "--progress", "none"])
    assert code == 0
    codes = fit_dir / "phantom003_codes.pt"
    assert codes.is_file() and (fit_dir / "volume_curve.png").is_file()
    curve = json.loads((fit_dir / "volume_curve.json").read_text())
    assert len(curve["lv_ml"]) == 4 and curve["setting"] == "ed"
    meshes = read_mesh_sequence(fit_dir / "meshes")
    assert meshes.n_frames == 4
    code = main(["atlas", "mesh", "--atlas", str(trained), "--subject", str(codes), "--phases", "2", "--resolution", "24",
                 "--out", str(tmp_path / "subject_meshes"), "--device", "cpu"])
    assert code == 0
    code = main(["atlas", "mesh", "--atlas", str(trained), "--phases", "2", "--resolution", "24",
                 "--out", str(tmp_path / "template"), "--device", "cpu"])
    template = read_mesh_sequence(tmp_path / "template")
    assert code == 0 and template.n_frames == 2


def test_cli_reports_bad_label_files(tmp_path, capsys):
    empty = ImageSequence(np.zeros((2, 8, 8, 8), np.uint8), np.eye(4), name="empty")
    write_nifti(empty, tmp_path / "empty.nii.gz", labels=True)
    code = main(["atlas", "train", "--labels", str(tmp_path / "empty.nii.gz"), "--tiny", "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--progress", "none"])
    error = capsys.readouterr().err
    assert code == 2 and "empty.nii.gz" in error
    missing = tmp_path / "missing.pt"
    code = main(["atlas", "mesh", "--atlas", str(missing), "--out", str(tmp_path / "m"), "--device", "cpu"])
    assert code == 2 and "missing.pt" in capsys.readouterr().err

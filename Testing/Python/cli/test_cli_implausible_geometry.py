"""Issue 19, row "NIfTI files with 1e9 mm voxels": ``cardiac-atlas indices`` printed LVEDV 1.03e27 ml with
exit 0. Now the study is refused (exit 2) naming the file, and no output is written."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

from CardiacMotionAtlasLib.cli.main import main  # noqa: E402
from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study  # noqa: E402
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti  # noqa: E402
from io_helpers import make_study  # noqa: E402


def _study(folder: Path) -> Path:
    return write_ukbb_study(make_study(n_frames=4, n_sax=3, labelled=(0, 2), lax_views=()), folder)


def test_indices_on_a_sane_study_succeeds_and_writes_json(tmp_path, capsys):
    folder = _study(tmp_path / "ok")
    assert main(["indices", str(folder), "--json", str(tmp_path / "ok.json")]) == 0
    indices = json.loads((tmp_path / "ok.json").read_text())
    assert 0.1 < indices["LVEDV"] < 100.0 and "LVEDV" in capsys.readouterr().out  # a few-ml toy study


def test_indices_refuses_1e9_mm_voxels_naming_the_file_and_writes_nothing(tmp_path, capsys):
    folder = _study(tmp_path / "huge")
    for name in ("sa.nii.gz", "seg_sa.nii.gz"):
        image = read_nifti(folder / name, labels=name.startswith("seg"))
        image.ijk_to_ras = np.diag([1e9, 1e9, 1e9, 1.0]) @ image.ijk_to_ras
        write_nifti(image, folder / name)
    out = tmp_path / "huge.json"
    assert main(["indices", str(folder), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "voxel size" in err and ("sa.nii.gz" in err) and "Traceback" not in err
    assert not out.exists()

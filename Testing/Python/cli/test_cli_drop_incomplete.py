"""``cardiac-atlas info``/``indices`` on a cine DICOM folder with one truncated slice: refused (exit 2,
the truncated files named) by default; with ``--drop-incomplete`` the study is read without that slice
and every drop is printed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

from CardiacMotionAtlasLib.cli.main import main  # noqa: E402
from CardiacMotionAtlasLib.io.dicom import write_dicom_cine  # noqa: E402
from io_helpers import make_study  # noqa: E402

N_SAX = 4


def _cine_folder_with_truncated_slice(folder: Path):
    study = make_study(n_frames=5, n_sax=N_SAX, integer=True, labelled=None, lax_views=())
    files = [write_dicom_cine(s, folder, patient_id="P1", study_uid="1.2.3", frame_of_reference_uid="1.2.3.9",
                              series_number=s.slice_index + 1) for s in study.slices]
    for path in files[1]:
        path.write_bytes(path.read_bytes()[: 400])
    return files


def test_info_refuses_a_truncated_slice_naming_its_files(tmp_path, capsys):
    files = _cine_folder_with_truncated_slice(tmp_path)
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert files[1][0].name in err and "Traceback" not in err


def test_info_drop_incomplete_reads_the_rest_and_prints_each_drop(tmp_path, capsys):
    files = _cine_folder_with_truncated_slice(tmp_path)
    assert main(["info", "--drop-incomplete", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert f"{N_SAX - 1} slices" in captured.out
    assert "dropped" in captured.err and files[1][0].name in captured.err

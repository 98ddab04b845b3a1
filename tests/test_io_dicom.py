"""Reading DICOM series: sorting, HU, LPS -> RAS affine, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from geometry import read_nrrd

from keras_liverseg.io import LPS_TO_RAS, InputError, load_scan, read_dicom_series


def _series(
    write,
    folder,
    n=4,
    rows=6,
    cols=5,
    orientation=(1, 0, 0, 0, 1, 0),
    spacing=(0.8, 0.7),
    step=2.0,
    origin=(-100.0, -50.0, 20.0),
    **tags,
):
    """Slices whose stored value encodes (slice, row, column); positions along the normal."""
    row_cos, col_cos = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row_cos, col_cos)
    slices = [
        np.fromfunction(lambda r, c, k=k: 1000 * k + 10 * r + c, (rows, cols)).astype(int)
        for k in range(n)
    ]
    positions = [np.asarray(origin) + k * step * normal for k in range(n)]
    write(folder, slices, positions, orientation=orientation, pixel_spacing=spacing, **tags)
    return slices, positions


def test_slices_sorted_by_position_hu_and_ras_affine(tmp_path, write_dicom_series):
    orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal: rows along A, columns along I
    slices, positions = _series(
        write_dicom_series, tmp_path, orientation=orientation, slope=2.0, intercept=-1024.0
    )
    volume, affine, info = read_dicom_series(tmp_path)
    assert volume.shape == (5, 6, 4) and info["num_slices"] == 4
    row_cos, col_cos = np.array(orientation[:3]), np.array(orientation[3:])
    for k in range(4):
        for r in range(6):
            for c in range(5):
                assert volume[c, r, k] == slices[k][r, c] * 2.0 - 1024.0
                lps = positions[k] + c * 0.7 * row_cos + r * 0.8 * col_cos
                assert np.allclose(affine @ [c, r, k, 1], LPS_TO_RAS @ [*lps, 1])


def test_integer_hu_stays_int16(tmp_path, write_dicom_series):
    _series(write_dicom_series, tmp_path, intercept=-1024.0)
    volume, _, _ = read_dicom_series(tmp_path)
    assert volume.dtype == np.int16 and volume.min() == -1024


def test_file_names_do_not_decide_the_order(tmp_path, write_dicom_series):
    _series(write_dicom_series, tmp_path, names=["b.dcm", "d.dcm", "a.dcm", "c.dcm"])
    volume, affine, _ = read_dicom_series(tmp_path)
    assert [int(volume[0, 0, k]) + 1024 for k in range(4)] == [0, 1000, 2000, 3000]
    assert affine[2, 2] == pytest.approx(2.0)


def test_files_without_suffix_are_found_and_other_files_ignored(tmp_path, write_dicom_series):
    _series(write_dicom_series, tmp_path, n=3, names=["IM1", "IM2", "IM3"])
    (tmp_path / "notes.txt").write_text("not dicom")
    assert load_scan(tmp_path).volume.shape == (5, 6, 3)


def test_mixed_series_are_named(tmp_path, write_dicom_series):
    _series(write_dicom_series, tmp_path, n=2, series_uid="1.2.3.4", names=["a1.dcm", "a2.dcm"])
    _series(
        write_dicom_series,
        tmp_path,
        n=3,
        series_uid="1.2.3.5",
        names=["b1.dcm", "b2.dcm", "b3.dcm"],
    )
    with pytest.raises(InputError, match=r"2 DICOM series.*1\.2\.3\.4.*1\.2\.3\.5") as error:
        read_dicom_series(tmp_path)
    assert "\n" not in str(error.value)


def test_duplicate_and_irregular_positions_are_errors(tmp_path, write_dicom_series):
    slices = [np.zeros((4, 4), int)] * 3
    write_dicom_series(tmp_path / "dup", slices, [(0, 0, 0), (0, 0, 1), (0, 0, 1)])
    with pytest.raises(InputError, match="same position"):
        read_dicom_series(tmp_path / "dup")
    write_dicom_series(tmp_path / "gap", slices, [(0, 0, 0), (0, 0, 1), (0, 0, 3)])
    with pytest.raises(InputError, match="irregular slice spacing"):
        read_dicom_series(tmp_path / "gap")


def test_gantry_tilt_is_kept_as_shear(tmp_path, write_dicom_series):
    slices = [np.zeros((4, 4), int)] * 3
    write_dicom_series(tmp_path, slices, [(0, 0, 0), (0, 0.5, 1), (0, 1.0, 2)])
    _, affine, info = read_dicom_series(tmp_path)
    assert np.allclose(affine[:3, 2], [0, -0.5, 1])
    assert any("tilt" in w for w in info["warnings"])


def test_not_dicom_and_empty_folders(tmp_path):
    (tmp_path / "broken.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(InputError, match="not a readable DICOM"):
        read_dicom_series(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM files"):
        read_dicom_series(tmp_path / "empty")


def test_real_series_matches_the_nrrd_mask_geometry(shared_data):
    """The dcmqi 3-slice CT and its liver mask (NRRD, LPS) share one voxel grid."""
    folder = shared_data / "dcmqi_ct_3slice"
    scan = load_scan(folder)
    mask, affine = read_nrrd(folder / "liver_seg.nrrd")
    assert scan.volume.shape == mask.shape == (512, 512, 3)
    assert np.allclose(scan.affine, affine, atol=1e-4)
    assert scan.spacing == pytest.approx((0.810547, 0.810547, 1.0), abs=1e-5)
    # HU: air around the body, soft tissue under the liver mask
    assert scan.volume[:20, :20].mean() < -900
    assert -50 < np.median(scan.volume[mask > 0]) < 200

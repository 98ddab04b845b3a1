"""NIfTI reading, label writing with the input's exact header geometry, atomic writes."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from geometry import nifti_geometry

from keras_liverseg.io import InputError, atomic_path, load_scan, scan_from_array, write_labels

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def _save(path, data, affine=AFFINE, **header):
    image = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        image.header[key] = value
    nib.save(image, str(path))
    return path


def test_int16_stays_int16_and_scaled_data_become_float32(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5) - 1000
    assert load_scan(_save(tmp_path / "a.nii.gz", data)).volume.dtype == np.int16
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_slope_inter(2.0, -1024.0)
    nib.save(image, str(tmp_path / "b.nii"))
    scan = load_scan(tmp_path / "b.nii")
    assert scan.volume.dtype == np.float32
    assert np.allclose(scan.volume, data * 2.0 - 1024.0)


@pytest.mark.parametrize(("dtype", "slope"), [("<i2", 1.0), (">i2", 1.0), ("<u1", 1.0),
                                              (">i2", 0.5), ("<f4", 1.0)])
def test_a_gzipped_file_is_read_as_nibabel_reads_it(tmp_path, dtype, slope):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 200, size=(7, 5, 3, 1)).astype(dtype)
    header = nib.Nifti1Header(endianness=dtype[0])  # the byte order on disk
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(data, AFFINE, header)
    image.header.set_slope_inter(slope, -3.0 if slope != 1.0 else 0.0)
    nib.save(image, str(tmp_path / "a.nii.gz"))
    expected = np.asarray(nib.load(str(tmp_path / "a.nii.gz")).dataobj)
    assert nib.load(str(tmp_path / "a.nii.gz")).header.get_data_dtype() == np.dtype(dtype)
    volume = load_scan(tmp_path / "a.nii.gz").volume
    assert volume.shape == (7, 5, 3)
    np.testing.assert_array_equal(volume, expected[..., 0])


def test_a_wrong_gzip_crc_is_an_error(tmp_path):
    data = np.random.default_rng(2).integers(-1000, 1000, (40, 40, 20)).astype(np.int16)
    raw = bytearray(_save(tmp_path / "good.nii.gz", data).read_bytes())
    raw[-8] ^= 0xFF  # the CRC-32 of the uncompressed data: the voxels themselves are intact
    (tmp_path / "crc.nii.gz").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="gzip data are truncated or corrupt"):
        load_scan(tmp_path / "crc.nii.gz")
    from keras_liverseg.io.labels import LabelError, read_labels

    with pytest.raises(LabelError, match="cannot be read .*gzip data are truncated or corrupt"):
        read_labels(tmp_path / "crc.nii.gz", lits=False)  # label maps: the same one pass
    np.testing.assert_array_equal(read_labels(tmp_path / "good.nii.gz", lits=False).labels,
                                  data)


def test_4d_with_singleton_axis_keeps_its_shape(tmp_path):
    scan = load_scan(_save(tmp_path / "a.nii.gz", np.zeros((3, 4, 5, 1), np.int16)))
    assert scan.volume.shape == (3, 4, 5) and scan.shape == (3, 4, 5, 1)


@pytest.mark.parametrize(("shape", "message"), [((3, 4), "2D image"), ((3, 4, 5, 2), "4D image")])
def test_2d_and_4d_are_errors(tmp_path, shape, message):
    with pytest.raises(InputError, match=message):
        load_scan(_save(tmp_path / "a.nii.gz", np.zeros(shape, np.int16)))


def test_truncated_and_fake_files(tmp_path):
    good = _save(tmp_path / "good.nii.gz", np.zeros((20, 20, 20), np.int16))
    raw = good.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated or corrupt|not a readable"):
        load_scan(tmp_path / "cut.nii.gz")
    plain = gzip.decompress(raw)
    (tmp_path / "cut.nii").write_bytes(plain[: len(plain) - 100])
    with pytest.raises(InputError, match="file is truncated: header declares 20x20x20 int16"):
        load_scan(tmp_path / "cut.nii")
    (tmp_path / "text.nii.gz").write_text("hello")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_scan(tmp_path / "text.nii.gz")


def test_content_warnings(tmp_path):
    assert any("constant" in w for w in scan_from_array(np.full((4, 4, 4), 7.0)).warnings)
    assert any("all NaN" in w for w in scan_from_array(np.full((4, 4, 4), np.nan)).warnings)
    some_nan = np.zeros((4, 4, 4), np.float32)
    some_nan[0, 0, 0], some_nan[1, 1, 1] = np.nan, 40
    assert any("1 NaN" in w for w in scan_from_array(some_nan).warnings)


def _geometry(header) -> dict:
    return nifti_geometry(header, ("xyzt_units", "dim_info"))


def test_labels_keep_qform_and_sform_even_when_they_differ(tmp_path):
    data = np.zeros((6, 5, 4, 1), np.int16)
    image = nib.Nifti1Image(data, None)
    qform = np.array([[-0.7, 0, 0, 10], [0, 0.9, 0, -5], [0, 0, 2.5, 7], [0, 0, 0, 1]])
    sform = qform.copy()
    sform[0, 1] = 0.1  # a shear only the sform can hold
    image.header.set_qform(qform, code=1)
    image.header.set_sform(sform, code=4)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(tmp_path / "in.nii.gz"))
    scan = load_scan(tmp_path / "in.nii.gz")
    labels = np.ones(scan.shape, np.uint8)
    write_labels(labels, tmp_path / "out.nii.gz", scan.affine, scan.header)
    written = nib.load(str(tmp_path / "out.nii.gz"))
    original = nib.load(str(tmp_path / "in.nii.gz"))
    assert _geometry(written.header) == _geometry(original.header)
    assert written.get_data_dtype() == np.uint8 and written.shape == (6, 5, 4, 1)
    assert np.array_equal(np.asarray(written.dataobj), labels)
    assert np.allclose(written.affine, sform)


def test_labels_from_arrays_get_qform_and_sform(tmp_path):
    affine = np.array([[0, -0.8, 0, 5], [0.8, 0, 0, 3], [0, 0, 3, 1], [0, 0, 0, 1.0]])
    write_labels(np.zeros((3, 4, 5), np.uint8), tmp_path / "out.nii", affine)
    header = nib.load(str(tmp_path / "out.nii")).header
    assert header["qform_code"] == 1 and header["sform_code"] == 1
    assert np.allclose(header.get_qform(), affine, atol=1e-6)
    assert np.allclose(header.get_sform(), affine, atol=1e-6)


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "sub" / "out.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        assert temp.name.endswith(".nii.gz") and temp.parent == target.parent
        temp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []
    with atomic_path(target) as temp:
        temp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and len(list(target.parent.iterdir())) == 1

"""Bad inputs (issue 20): one clear line or a correct result, never a silent change or a
traceback. The bad files are built here, from good ones, with nibabel and pydicom."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from geometry import nifti_geometry
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

import keras_liverseg.io.memory
from keras_liverseg.io import (
    InputError,
    find_scans,
    load_scan,
    scan_from_array,
    scan_kind,
    skipped_label_files,
    write_labels,
)
from keras_liverseg.metrics import EvaluationInputError
from keras_liverseg.metrics.evaluate import read_geometry, read_labels
from keras_liverseg.metrics.pairing import find_pairs

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
NRRD_GT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcmqi_ct_3slice"


def _ct(shape=(12, 10, 6), seed=0) -> np.ndarray:
    """CT-like int16 HU: air, fat, soft tissue, bone."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1000, -100, 40, 60, 700], np.int16), size=shape)


def _save(path: Path, data: np.ndarray, affine=AFFINE, klass=nib.Nifti1Image) -> Path:
    nib.save(klass(data, affine), str(path))
    return path


def _one_line(error: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(error.value)
    assert "\n" not in message and all(n in message for n in needles), message
    return message


def _patch_nifti(path: Path, **fields) -> Path:
    """Rewrite header fields of an uncompressed NIfTI-1 or -2 file as they are, unchecked."""
    raw = path.read_bytes()
    klass = nib.Nifti2Header if int.from_bytes(raw[:4], "little") == 540 else nib.Nifti1Header
    header = klass(binaryblock=raw[: klass.sizeof_hdr], check=False)
    for key, value in fields.items():
        header[key] = value
    path.write_bytes(header.binaryblock + raw[klass.sizeof_hdr :])
    return path


# --------------------------------------------------------------------------- NIfTI-2


def test_nifti2_in_nifti2_out_with_the_same_geometry(tmp_path):
    image = nib.Nifti2Image(_ct(), None)
    qform = np.array([[-0.7, 0, 0, 10], [0, 0.9, 0, -5], [0, 0, 2.5, 7], [0, 0, 0, 1]])
    sform = qform.copy()
    sform[0, 1] = 0.1
    image.header.set_qform(qform, code=1)
    image.header.set_sform(sform, code=4)
    nib.save(image, str(tmp_path / "in.nii.gz"))
    scan = load_scan(tmp_path / "in.nii.gz")
    assert isinstance(scan.header, nib.Nifti2Header) and scan.volume.shape == (12, 10, 6)
    labels = (scan.volume > 0).astype(np.uint8)
    write_labels(labels, tmp_path / "out.nii.gz", scan.affine, scan.header)
    written = nib.load(str(tmp_path / "out.nii.gz"))
    assert isinstance(written, nib.Nifti2Image) and written.get_data_dtype() == np.uint8
    fields = ("xyzt_units",)
    assert nifti_geometry(written.header, fields) == nifti_geometry(image.header, fields)
    assert np.allclose(written.affine, sform) and np.array_equal(written.dataobj, labels)
    assert load_scan(tmp_path / "out.nii.gz", force=True).header.sizeof_hdr == 540


# --------------------------------------------------------------------------- sizes


def test_large_dims_in_a_small_nii_are_a_truncated_file(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_liverseg.io.memory, "available_memory", lambda: 10**12)
    path = _patch_nifti(_save(tmp_path / "big.nii", _ct()), dim=[3, 1024, 1024, 1024, 1, 1, 1, 1])
    size = path.stat().st_size
    with pytest.raises(InputError) as error:
        load_scan(path)
    _one_line(error, str(path), "file is truncated", "1024x1024x1024 int16", f"{size} bytes")
    with pytest.raises(EvaluationInputError) as error:
        read_labels(path, "ground truth")
    _one_line(error, "file is truncated")
    packed = tmp_path / "big.nii.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(InputError) as error:
        load_scan(packed)
    _one_line(error, str(packed), "file is truncated", "uncompressed")


@pytest.mark.parametrize(
    ("klass", "dims"), [(nib.Nifti1Image, (30000, 30000, 1000)), (nib.Nifti2Image, (10**5,) * 3)]
)
def test_huge_dims_are_refused_before_reading(tmp_path, klass, dims):
    path = _patch_nifti(_save(tmp_path / "a.nii", _ct(), klass=klass), dim=[3, *dims, 1, 1, 1, 1])
    packed = tmp_path / "huge.nii.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    for source in (path, packed):
        with pytest.raises(InputError) as error:
            load_scan(source)
        _one_line(error, str(source), "x".join(map(str, dims)) + " int16", "memory available")


def test_data_larger_than_the_memory_available_are_refused(tmp_path, monkeypatch):
    path = _save(tmp_path / "ct.nii.gz", _ct())
    monkeypatch.setattr(keras_liverseg.io.memory, "available_memory", lambda: 1000)
    with pytest.raises(InputError) as error:
        load_scan(path)
    _one_line(error, "12x10x6 int16", "memory available")
    monkeypatch.setattr(keras_liverseg.io.memory, "available_memory", lambda: 10**6)
    assert load_scan(path).volume.shape == (12, 10, 6)


def test_corrupt_and_truncated_gzip_give_one_line(tmp_path):
    raw = _save(tmp_path / "ct.nii.gz", _ct((40, 40, 20))).read_bytes()
    corrupt = bytearray(raw)
    corrupt[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    (tmp_path / "corrupt.nii.gz").write_bytes(bytes(corrupt))
    (tmp_path / "head.nii.gz").write_bytes(raw[:40])
    longer = bytearray(raw)
    longer[-30:] = bytes(64)
    (tmp_path / "tail.nii.gz").write_bytes(bytes(longer))
    for name in ("corrupt.nii.gz", "head.nii.gz", "tail.nii.gz"):
        with pytest.raises(InputError) as error:
            load_scan(tmp_path / name)
        _one_line(error, name)


@pytest.mark.parametrize("shape", [(0, 4, 4), (4, 4), (4, 4, 4, 3)])
def test_empty_2d_and_4d_images_give_one_line(tmp_path, shape):
    path = _save(tmp_path / "x.nii.gz", np.zeros(shape, np.int16))
    with pytest.raises(InputError) as error:
        load_scan(path)
    _one_line(error, str(path))


def test_one_voxel_volume_is_read(tmp_path):
    scan = load_scan(_save(tmp_path / "one.nii.gz", np.full((1, 1, 1), -1000, np.int16)))
    assert scan.volume.shape == (1, 1, 1) and any("constant" in w for w in scan.warnings)


def test_nan_and_inf_voxels_are_counted(tmp_path):
    data = _ct().astype(np.float32)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    scan = load_scan(_save(tmp_path / "nan.nii.gz", data))
    assert any(w.startswith("3 NaN/infinite voxels") for w in scan.warnings)
    everything = load_scan(_save(tmp_path / "all.nii.gz", np.full((3, 3, 3), np.inf, np.float32)))
    assert any("all NaN/infinite" in w for w in everything.warnings)


# --------------------------------------------------------------------------- content


def test_label_maps_given_as_ct_are_refused_unless_forced(tmp_path):
    labels = np.zeros((12, 10, 6), np.uint8)
    labels[2:8, 2:8, 1:5], labels[4:6, 4:6, 2:4] = 1, 2
    path = _save(tmp_path / "segmentation-3.nii.gz", labels)
    with pytest.raises(InputError) as error:
        load_scan(path)
    _one_line(error, str(path), "looks like a label map (values 0..2 only)", "--force")
    assert any("label map" in w for w in load_scan(path, force=True).warnings)
    as_float = _save(tmp_path / "float.nii.gz", np.arange(6.0).repeat(20).reshape(4, 5, 6))
    with pytest.raises(InputError, match=r"values 0\.\.5 only"):
        load_scan(as_float)
    with pytest.raises(InputError, match="label map"):
        scan_from_array(labels)
    assert scan_from_array(labels, force=True).volume.shape == labels.shape


def test_real_ct_and_fractions_are_not_label_maps(tmp_path):
    assert load_scan(_save(tmp_path / "ct.nii.gz", _ct())).warnings == []
    fractions = scan_from_array(np.linspace(0, 1, 60).reshape(3, 4, 5))  # not whole numbers
    assert any("do not look like Hounsfield units" in w for w in fractions.warnings)


def test_uint8_intensities_are_a_warning(tmp_path):
    data = np.arange(240, dtype=np.uint8).reshape(6, 8, 5)
    scan = load_scan(_save(tmp_path / "png_stack.nii.gz", data))
    assert "intensities 0..239 (uint8) do not look like Hounsfield units" in scan.warnings[0]


def test_zero_pixel_spacing_without_sform_is_a_warning(tmp_path):
    path = _patch_nifti(
        _save(tmp_path / "ct.nii", _ct()), sform_code=0, pixdim=[1, 0.8, 0, 2.5, 1, 1, 1, 1]
    )
    scan = load_scan(path)
    assert scan.spacing[1] == 1.0
    assert "pixel spacing 0 in the header; assumed 1 mm" in scan.warnings
    with_sform = _patch_nifti(
        _save(tmp_path / "s.nii", _ct()), sform_code=2, pixdim=[1, 0.8, 0, 2.5, 1, 1, 1, 1]
    )
    scan = load_scan(with_sform)
    assert scan.spacing == pytest.approx((0.8, 0.8, 2.5)) and scan.warnings == []


# --------------------------------------------------------------------------- layouts, NRRD


def test_lits_layout_label_maps_are_not_scans(tmp_path):
    for n in (1, 2):
        _save(tmp_path / f"volume-{n}.nii", _ct())
        _save(tmp_path / f"segmentation-{n}.nii", np.zeros((12, 10, 6), np.uint8))
    _save(tmp_path / "volume-1_seg.nii.gz", np.zeros((12, 10, 6), np.uint8))
    _save(tmp_path / "segmentation-9.nii", _ct())  # no volume-9: a scan after all
    names = [p.name for p in find_scans(tmp_path)]
    assert names == ["segmentation-9.nii", "volume-1.nii", "volume-2.nii"]
    skipped = [p.name for p in skipped_label_files(tmp_path)]
    assert skipped == ["segmentation-1.nii", "segmentation-2.nii", "volume-1_seg.nii.gz"]


def test_msd_layout_label_folders(tmp_path):
    for folder in ("imagesTr", "labelsTr"):
        (tmp_path / folder).mkdir()
        _save(tmp_path / folder / "liver_4.nii.gz", _ct())
    assert [p.name for p in find_scans(tmp_path / "imagesTr")] == ["liver_4.nii.gz"]
    assert skipped_label_files(tmp_path / "imagesTr") == []
    assert skipped_label_files(tmp_path / "labelsTr") == [tmp_path / "labelsTr/liver_4.nii.gz"]
    with pytest.raises(InputError) as error:
        find_scans(tmp_path / "labelsTr")
    _one_line(error, "only label maps")
    with pytest.raises(InputError) as error:
        scan_kind(tmp_path)
    _one_line(error, "Decathlon layout", "imagesTr")


def test_nrrd_says_how_to_convert(tmp_path):
    path = tmp_path / "liver_seg.nrrd"
    path.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\n\n" + bytes(8))
    with pytest.raises(InputError) as error:
        scan_kind(path)
    _one_line(error, str(path), "NRRD is not read", "sitk.WriteImage", "liver_seg.nii.gz")
    for reader in (read_labels, read_geometry):
        with pytest.raises(EvaluationInputError) as error:
            reader(path, "ground truth")
        _one_line(error, "ground truth", str(path), "convert it to NIfTI")


def test_real_nrrd_ground_truth(shared_data, tmp_path):
    nrrd = shared_data / "dcmqi_ct_3slice" / "liver_seg.nrrd"
    with pytest.raises(EvaluationInputError, match="NRRD is not read; convert"):
        read_labels(nrrd, "ground truth")
    pred = _save(tmp_path / "pred.nii.gz", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(EvaluationInputError, match="ground truth .*liver_seg.nrrd: NRRD is not"):
        find_pairs(pred, nrrd)


# --------------------------------------------------------------------------- DICOM


def _series(write, folder: Path, n: int = 5, **tags) -> list[Path]:
    slices = [np.full((6, 5), 1000 + 40 * k, int) + np.arange(5) * 30 for k in range(n)]
    return write(folder, slices, [(0.0, 0.0, 2.0 * k) for k in range(n)], **tags)


def _edit(path: Path, **values) -> None:
    """Set (or, with None, delete) elements of a DICOM file."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        if value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


def _put_raw(path: Path, keyword: str, text: str) -> None:
    """Store ``text`` as the value of ``keyword`` unchecked (a malformed value)."""
    ds = pydicom.dcmread(path)
    tag, data = Tag(tag_for_keyword(keyword)), text.encode() + b" " * (len(text) % 2)
    ds[tag] = RawDataElement(tag, dictionary_VR(keyword), len(data), data, 0, False, True)
    ds.save_as(path)


@pytest.mark.parametrize("which", [0, -1, 2])
def test_truncated_dicom_slice_is_an_error_naming_it(tmp_path, write_dicom_series, which):
    bad = _series(write_dicom_series, tmp_path)[::-1][which]  # files named in reverse order
    bad.write_bytes(bad.read_bytes()[:400])  # cut inside the header, before the pixels
    with pytest.raises(InputError) as error:
        load_scan(tmp_path)
    _one_line(error, str(bad), "truncated")


def test_truncated_pixel_data_is_an_error_naming_the_file(tmp_path, write_dicom_series):
    bad = _series(write_dicom_series, tmp_path)[0]
    bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(InputError) as error:
        load_scan(tmp_path)
    _one_line(error, str(bad), "pixel data")


def test_skip_unreadable_skips_and_says_so(tmp_path, write_dicom_series):
    paths = _series(write_dicom_series, tmp_path)  # named in reverse slice order
    first, last = paths[-1], paths[0]
    first.write_bytes(first.read_bytes()[:400])
    last.write_bytes(last.read_bytes()[:-20])
    scan = load_scan(tmp_path, skip_unreadable=True)
    assert scan.volume.shape == (5, 6, 3)
    assert sorted(scan.info["skipped_files"]) == sorted([str(first), str(last)])
    assert scan.affine[2, 3] == pytest.approx(2.0)  # the skipped first slice was at z = 0
    assert sum(w.startswith("skipped ") for w in scan.warnings) == 2


def test_skipped_middle_slice_is_named_in_the_spacing_error(tmp_path, write_dicom_series):
    middle = _series(write_dicom_series, tmp_path)[2]
    middle.write_bytes(middle.read_bytes()[:400])
    with pytest.raises(InputError) as error:
        load_scan(tmp_path, skip_unreadable=True)
    _one_line(error, "irregular slice spacing", "missing slices", middle.name)


@pytest.mark.parametrize(
    ("keyword", "text"),
    [("RescaleSlope", "1A"), ("NumberOfFrames", "1A"), ("ImagePositionPatient", "0\\1A\\2")],
)
def test_malformed_values_name_the_file_and_element(tmp_path, write_dicom_series, keyword, text):
    bad = _series(write_dicom_series, tmp_path)[1]
    _put_raw(bad, keyword, text)
    with pytest.raises(InputError) as error:
        load_scan(tmp_path)
    _one_line(error, str(bad), keyword, "malformed")


def test_pydicom_warnings_are_silenced(tmp_path, write_dicom_series):
    paths = _series(write_dicom_series, tmp_path, series_uid="1.2.3")
    for path in paths:
        _put_raw(path, "SeriesInstanceUID", "1.2.abc")  # an invalid UI value
    _put_raw(paths[0], "InstanceNumber", "1A")  # unused: no error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = load_scan(tmp_path)
    assert scan.volume.shape == (5, 6, 5) and scan.info["series_instance_uid"] == "1.2.abc"


@pytest.mark.parametrize("modality", ["MR", "RTDOSE"])
def test_other_modalities_need_force(tmp_path, write_dicom_series, modality):
    for path in _series(write_dicom_series, tmp_path):
        _edit(path, Modality=modality)
    with pytest.raises(InputError) as error:
        load_scan(tmp_path)
    _one_line(error, str(tmp_path), f"DICOM Modality is {modality}, not CT", "--force")
    scan = load_scan(tmp_path, force=True)
    assert any(f"Modality is {modality}" in w for w in scan.warnings)


def test_missing_modality_is_a_warning(tmp_path, write_dicom_series):
    for path in _series(write_dicom_series, tmp_path):
        _edit(path, Modality=None)
    assert any("no Modality" in w for w in load_scan(tmp_path).warnings)


def test_missing_duplicate_and_mixed_slices_name_the_problem(tmp_path, write_dicom_series):
    paths = _series(write_dicom_series, tmp_path / "gap")
    paths[2].unlink()
    with pytest.raises(InputError) as error:
        load_scan(tmp_path / "gap")
    _one_line(error, "irregular slice spacing", "missing slices?")
    paths = _series(write_dicom_series, tmp_path / "dup")
    _edit(paths[1], ImagePositionPatient=[0.0, 0.0, 2.0 * 4])
    with pytest.raises(InputError) as error:
        load_scan(tmp_path / "dup")
    _one_line(error, "same position", paths[1].name, paths[4].name)
    paths = _series(write_dicom_series, tmp_path / "tilt")
    _edit(paths[3], ImageOrientationPatient=[0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    with pytest.raises(InputError) as error:
        load_scan(tmp_path / "tilt")
    _one_line(error, "different orientations", paths[3].name)
    paths = _series(write_dicom_series, tmp_path / "rows")
    _edit(paths[3], Rows=None)
    with pytest.raises(InputError) as error:
        load_scan(tmp_path / "rows")
    _one_line(error, str(paths[3]), "without Rows")


def test_other_objects_in_the_folder_are_still_ignored(tmp_path, write_dicom_series):
    """A secondary capture (a dose report screenshot) has no geometry, and is not broken."""
    paths = _series(write_dicom_series, tmp_path)
    ds = pydicom.dcmread(paths[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    del ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
    ds.save_as(tmp_path / "dose_report.dcm")
    assert load_scan(tmp_path).volume.shape == (5, 6, 5)


def test_dicom_larger_than_the_memory_available_is_refused(
    tmp_path, write_dicom_series, monkeypatch
):
    _series(write_dicom_series, tmp_path)
    monkeypatch.setattr(keras_liverseg.io.memory, "available_memory", lambda: 100)
    with pytest.raises(InputError) as error:
        load_scan(tmp_path)
    _one_line(error, str(tmp_path), "5x6x5 int16", "memory available")


def test_an_error_becomes_one_line_in_one_place():
    from keras_liverseg.io.errors import one_line

    assert one_line(ValueError("bad\n  header\tfield ")) == "bad header field"
    assert one_line(KeyError()) == "KeyError"  # no message: its type
    assert one_line(OSError("x" * 300), limit=160) == "x" * 157 + "..."
    assert one_line("short", limit=160) == "short"


def test_training_and_evaluation_read_label_maps_with_the_same_checks(tmp_path):
    """One reader (keras_liverseg.io.labels) with one set of checks; each caller words
    the error its own way."""
    from keras_liverseg.data.datasets import Case, DatasetError
    from keras_liverseg.data.volumes import load_volume
    from keras_liverseg.io import labels as label_files

    image = _save(tmp_path / "volume-0.nii", _ct())
    almost = np.zeros((12, 10, 6), np.float32)
    almost[2:5, 2:5, 1:3] = 1.0004  # a float32 label map: accepted, rounded
    read = label_files.read_labels(_save(tmp_path / "almost.nii", almost))
    assert read.labels.dtype == np.uint8 and read.labels.max() == 1
    assert load_volume(Case("c0", image, tmp_path / "almost.nii")).labels.max() == 1
    for name, data, needle in [
        ("nan.nii", np.full((12, 10, 6), np.nan, np.float32), "NaN or infinite"),
        ("probabilities.nii", np.full((12, 10, 6), 0.4, np.float32), "non-integer"),
        ("five.nii", np.full((12, 10, 6), 5, np.uint8), "outside {0, 1, 2}: 5"),
        ("four_d.nii", np.zeros((12, 10, 6, 2), np.uint8), "3-D label volume"),
    ]:
        path = _save(tmp_path / name, data)
        with pytest.raises(label_files.LabelError) as error:
            label_files.read_labels(path)
        assert error.value.path == path
        _one_line(error, str(path), needle)
        with pytest.raises(EvaluationInputError) as error:
            read_labels(path, "ground truth")
        _one_line(error, f"ground truth {path}", needle)
        with pytest.raises(DatasetError) as error:
            load_volume(Case("c0", image, path))
        _one_line(error, f"case c0: {name}", needle)

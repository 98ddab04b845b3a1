"""Shared test fixtures: the real-data folder, oracle models, a synthetic DICOM writer."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests never read or fill the user's weights cache, nor follow the user's mirror settings:
# downloads go to a fresh cache folder of this session (the CLI's subprocesses inherit it).
os.environ["LIVERSEG_HOME"] = tempfile.mkdtemp(prefix="liverseg-home-")
os.environ.pop("LIVERSEG_WEIGHTS_URL", None)
os.environ.pop("LIVERSEG_OFFLINE", None)
# float32 whatever the host's CPU, so that results do not depend on it (tests of bfloat16
# ask for it)
os.environ["LIVERSEG_PRECISION"] = "float32"

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``shared/data`` beside the repository (real CT fixtures); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


def build_oracle_model(
    input_size: tuple[int, int] = (32, 32),
    context_slices: int = 1,
    liver_hu: float = 100.0,
    tumor_hu: float | None = 300.0,
    channel: int | None = None,
    num_classes: int = 3,
):
    """A Keras model whose output is a fixed function of each input pixel ("oracle").

    It follows docs/CONTRACTS.md (first layer HUWindow, output named "mask") and puts, per
    pixel of the input channel ``channel`` (default: the middle one):
    background below ``liver_hu``, liver between ``liver_hu`` and ``tumor_hu``, tumor
    above ``tumor_hu`` (each transition 2 HU wide). With ``num_classes=1`` it outputs one
    sigmoid-like channel P(liver) = [HU > liver_hu].
    """
    import keras

    from keras_liverseg.layers import HUWindow

    channel = context_slices // 2 if channel is None else channel
    inputs = keras.Input((*input_size, context_slices), name="ct")
    windows = [HUWindow((liver_hu - 1.0, liver_hu + 1.0), name="hu_window")(inputs)]
    if tumor_hu is not None and num_classes == 3:
        windows.append(HUWindow((tumor_hu - 1.0, tumor_hu + 1.0), name="tumor_window")(inputs))
    x = windows[0] if len(windows) == 1 else keras.layers.Concatenate()(windows)
    mask = keras.layers.Conv2D(num_classes, 1, name="mask")
    outputs = mask(x)
    kernel = np.zeros((1, 1, context_slices * len(windows), num_classes), np.float32)
    bias = np.zeros(num_classes, np.float32)
    if num_classes == 1:
        kernel[0, 0, channel, 0] = 1.0
    elif len(windows) == 1:  # background / liver (/ never tumor)
        kernel[0, 0, channel, :2] = [-1.0, 1.0]
        bias[0] = 1.0
    else:
        kernel[0, 0, channel] = [-1.0, 1.0, 0.0]
        kernel[0, 0, context_slices + channel] = [0.0, -1.0, 1.0]
        bias[0] = 1.0
    mask.set_weights([kernel, bias])
    return keras.Model(inputs, outputs, name="oracle")


@pytest.fixture(scope="session")
def oracle_model():
    """Factory fixture: ``oracle_model(**kwargs)`` builds :func:`build_oracle_model`."""
    return build_oracle_model


@pytest.fixture(scope="session")
def oracle_model_file(tmp_path_factory) -> Path:
    """A saved ``.keras`` oracle (32x32, 1 slice, liver > 100 HU, tumor > 300 HU)."""
    path = tmp_path_factory.mktemp("oracle") / "oracle.keras"
    build_oracle_model().save(path)
    return path


def _write_dicom_series(
    folder: Path,
    slices: Sequence[np.ndarray],
    positions: Sequence[Sequence[float]],
    *,
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write CT slices (stored values, ``(rows, columns)`` int16 arrays) as DICOM files.

    ``positions`` are the ImagePositionPatient (LPS mm) of each slice; ``pixel_spacing``
    is DICOM's (row spacing, column spacing). Files are named ``names`` (default: in
    reverse slice order, so that readers must sort by position).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    names = names or [f"{len(slices) - i:03d}.dcm" for i in range(len(slices))]
    paths = []
    for number, (pixels, position, name) in enumerate(zip(slices, positions, names, strict=True)):
        pixels = np.asarray(pixels, dtype=np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.SeriesDescription = "synthetic"
        ds.SeriesNumber = 1
        ds.InstanceNumber = number + 1
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.SliceThickness = 1.0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelData = pixels.tobytes()
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def write_dicom_series() -> Callable[..., list[Path]]:
    """Factory fixture: ``write_dicom_series(folder, slices, positions, **tags)``."""
    return _write_dicom_series

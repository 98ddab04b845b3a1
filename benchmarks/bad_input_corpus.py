"""A corpus of bad and odd inputs run through the ``liverseg`` CLI, one case at a time.

Each case builds its inputs in a fresh folder (NIfTI-1/2 files, gzip, DICOM series, label
volumes, NRRD, JSON configs, dataset folders), runs one or more ``liverseg`` commands there
as child processes (``python -m keras_liverseg.cli.main ...``, optionally sending SIGINT or
SIGTERM, or running two writers at once), and judges the outcome by one rule:

* **ok**: exit code 0, no traceback, every expected output present and correct (a label
  volume with the input's shape and affine, uint8 labels in {0, 1, 2}, the phantom's liver
  found), and no other file left behind;
* **error**: a non-zero exit code, stderr reduced to ONE line starting with ``Error:`` (or
  ``Interrupted`` / ``Terminated`` after a signal), no traceback, no file left behind, and
  no existing file changed.

TensorFlow's C++ start-up chatter and the progress label a non-terminal progress bar prints
are not counted as stderr lines. A case may also expect **either** outcome (the rule allows
both; the case only forbids anything else) or a **race** (two writers: exactly one succeeds,
the other fails cleanly, and the output is good; with ``--overwrite`` both may succeed).

Usage::

    python benchmarks/bad_input_corpus.py                      # all cases, table on stdout
    python benchmarks/bad_input_corpus.py --out-md docs/BAD_INPUTS.md --jobs 2
    python benchmarks/bad_input_corpus.py --only 'dicom_*' --only nifti2 --keep
    python benchmarks/bad_input_corpus.py --list               # the cases, nothing run

It prints a markdown table (case, command, expected, exit code, stderr lines, last stderr
line, files left behind, verdict) and ends with ``N passed, M failed``; the exit code is 1
when a case failed (0 with ``--no-fail``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_liverseg.metrics.overlap import dice

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "keras_liverseg.cli.main"]

# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One ``liverseg`` process of a case.

    Attributes:
        args: the arguments after ``liverseg`` (paths relative to the case folder).
        signal: a signal to send (``signal.SIGINT`` / ``SIGTERM``), or None.
        trigger: a regular expression awaited in the process's output before the signal
            (None: count ``delay`` from the start).
        delay: seconds between the trigger (or the start) and the signal.
        progress: regular expressions of stderr lines that are progress, not messages.
        timeout: seconds before the process is killed and the case fails.
    """

    args: list[str]
    signal: int | None = None
    trigger: str | None = None
    delay: float = 0.0
    progress: tuple[str, ...] = ()
    timeout: float = 300.0


@dataclasses.dataclass
class Setup:
    """What a built case runs and how its result is checked.

    Attributes:
        runs: the processes, started together.
        outputs: files (relative) an ok outcome must create.
        check: returns a problem with the outputs (None: correct); called on an ok outcome.
        allowed: glob patterns of other new files an outcome may leave (a training run
            folder); temporary files (``*.partial*``, ``*.tmp``) are never allowed.
        max_ok: for a ``"race"``, how many runs may succeed (at least one must).
    """

    runs: list[Run]
    outputs: list[str] = dataclasses.field(default_factory=list)
    check: Callable[[Path], str | None] | None = None
    allowed: tuple[str, ...] = ()
    max_ok: int = 1


@dataclasses.dataclass(frozen=True)
class Case:
    """A named bad or odd input and the outcome the CLI owes it.

    ``expect`` is ``"ok"``, ``"error"``, ``"either"`` or ``"race"`` (see the module
    docstring); ``build(folder, assets)`` writes the inputs into ``folder`` and returns the
    :class:`Setup`.
    """

    id: str
    category: str
    command: str
    expect: str
    about: str
    build: Callable[[Path, Assets], Setup]


CASES: list[Case] = []
EXPECTATIONS = ("ok", "error", "either", "race")


def case(id: str, category: str, command: str, expect: str, about: str):
    """Decorator: register ``build`` as a :class:`Case`."""
    assert expect in EXPECTATIONS, expect

    def register(build: Callable[[Path, Assets], Setup]):
        CASES.append(Case(id, category, command, expect, about, build))
        return build

    return register


class Assets:
    """Files shared by the cases (a tiny model), made once per corpus run in ``folder``."""

    def __init__(self, folder: Path, create: bool = True):
        self.folder = Path(folder)
        self.create = create
        self._oracle: Path | None = None

    @property
    def oracle(self) -> str:
        """A saved ``.keras`` model (32x32, one slice) whose labels are a function of HU:
        liver above 100 HU, tumor above 300 HU. Cheap, and exact on the phantoms."""
        if self._oracle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._oracle = self.folder / "oracle.keras"
            if self._oracle.exists():
                return str(self._oracle)
            if self.create:
                subprocess.run([sys.executable, "-c", _ORACLE, str(self._oracle)], check=True,
                               cwd=REPO, env=_child_env(), capture_output=True)
            else:  # building inputs only: a stand-in file that nothing loads
                self._oracle.write_bytes(b"not a model: the corpus was only built")
        return str(self._oracle)


_ORACLE = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, numpy as np
from keras_liverseg.layers import HUWindow
inputs = keras.Input((32, 32, 1), name="ct")
liver = HUWindow((99.0, 101.0), name="hu_window")(inputs)
tumor = HUWindow((299.0, 301.0), name="tumor_window")(inputs)
mask = keras.layers.Conv2D(3, 1, name="mask")
outputs = mask(keras.layers.Concatenate()([liver, tumor]))
kernel = np.zeros((1, 1, 2, 3), np.float32)
kernel[0, 0, 0] = [-1.0, 1.0, 0.0]
kernel[0, 0, 1] = [0.0, -1.0, 1.0]
mask.set_weights([kernel, np.array([1.0, 0.0, 0.0], np.float32)])
keras.Model(inputs, outputs, name="oracle").save(sys.argv[1])
"""

# --------------------------------------------------------------------------------------
# Input builders
# --------------------------------------------------------------------------------------

SHAPE = (64, 64, 8)
AFFINE = np.array(
    [[-0.75, 0.0, 0.0, 40.0], [0.0, -0.75, 0.0, 30.0], [0.0, 0.0, 2.5, -100.0], [0, 0, 0, 1]]
)


def phantom(shape: Sequence[int] = SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small CT-like int16 HU volume and its truth labels.

    Air, a body ellipse of fat (-100 HU), a liver ellipsoid (150 HU) through every slice and
    a bright lesion (350 HU) in it: what the oracle model segments exactly.
    """
    shape = tuple(int(v) for v in shape)
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) if n > 1 else np.zeros(1) for n in shape),
                          indexing="ij")
    body = (x / 0.95) ** 2 + (y / 0.8) ** 2 < 1
    liver = ((x + 0.25) / 0.5) ** 2 + (y / 0.45) ** 2 + (z / 1.5) ** 2 < 1
    lesion = liver & ((x + 0.25) ** 2 + y**2 + (z / 3) ** 2 < 0.15**2)
    hu = np.full(shape, -1000.0)
    hu[body] = -100.0
    hu[liver] = 150.0
    hu[lesion] = 350.0
    hu += rng.normal(0.0, 5.0, shape)
    labels = np.zeros(shape, np.uint8)
    labels[liver] = 1
    labels[lesion] = 2
    return np.round(hu).astype(np.int16), labels


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE, version: int = 1,
               **header: object) -> Path:
    """Save ``data`` as NIfTI-1 or -2 (format from the suffix), header fields set first."""
    klass = nib.Nifti2Image if version == 2 else nib.Nifti1Image
    image = klass(data, affine)
    for key, value in header.items():
        image.header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def raw_nifti(path: Path, header: nib.Nifti1Header, data: bytes) -> Path:
    """Write a header's bytes and ``data`` as they are (no validation), gzipped for .gz."""
    blob = header.binaryblock + b"\0\0\0\0" + data
    header_size = len(header.binaryblock) + 4
    if int(header["vox_offset"]) != header_size:
        raise ValueError(f"vox_offset {header['vox_offset']} != {header_size}")
    path.write_bytes(gzip.compress(blob) if path.name.endswith(".gz") else blob)
    return path


def header_for(shape, dtype=np.int16, version: int = 1) -> nib.Nifti1Header:
    """A NIfTI header of ``shape`` and ``dtype`` with the default affine and vox_offset."""
    header = (nib.Nifti2Header if version == 2 else nib.Nifti1Header)()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(AFFINE, code=1)
    header.set_sform(AFFINE, code=1)
    header["vox_offset"] = len(header.binaryblock) + 4
    return header


def patched_nifti(path: Path, data: np.ndarray, **fields: object) -> Path:
    """A valid header for ``data`` with raw ``fields`` overwritten afterwards (``dim``,
    ``datatype``, ...), then the data bytes: a file nibabel would refuse to write."""
    header = header_for(data.shape, data.dtype)
    for key, value in fields.items():
        header[key] = value
    return raw_nifti(path, header, np.asarray(data).tobytes(order="F"))


def truncate(path: Path, keep: float | int) -> Path:
    """Cut ``path`` to ``keep`` bytes (an int) or to that fraction of its size (a float)."""
    blob = path.read_bytes()
    size = keep if isinstance(keep, int) else int(len(blob) * keep)
    path.write_bytes(blob[:size])
    return path


def flip_bytes(path: Path, at: float, count: int = 16) -> Path:
    """Invert ``count`` bytes from fraction ``at`` of the file."""
    blob = bytearray(path.read_bytes())
    start = int(len(blob) * at)
    for i in range(start, min(start + count, len(blob))):
        blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    return path


# DICOM: an axial series of ROWS x COLS slices; volume[i, j, k] = column i, row j, slice k.
ROWS, COLS, SLICES = 56, 48, 8
PIXEL_SPACING = (0.8, 0.7)  # DICOM order: row spacing (between rows), column spacing
SLICE_STEP = 2.5
ORIGIN = (-20.0, -30.0, -50.0)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def dicom_positions(count: int = SLICES, tilt: float = 0.0) -> list[tuple[float, float, float]]:
    """ImagePositionPatient of an axial series, ``tilt`` mm of y shift per slice."""
    x, y, z = ORIGIN
    return [(x, y + tilt * k, z + SLICE_STEP * k) for k in range(count)]


def dicom_expected_affine(count: int = SLICES, tilt: float = 0.0) -> np.ndarray:
    """The RAS+ affine the series of :func:`write_series` should get."""
    lps = np.eye(4)
    lps[:3, 0] = np.array(AXIAL[:3]) * PIXEL_SPACING[1]
    lps[:3, 1] = np.array(AXIAL[3:]) * PIXEL_SPACING[0]
    lps[:3, 2] = (0.0, tilt, SLICE_STEP)
    lps[:3, 3] = ORIGIN
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_series(
    folder: Path,
    count: int = SLICES,
    *,
    positions: Sequence[Sequence[float]] | None = None,
    orientation: Sequence[float] = AXIAL,
    modality: str | None = "CT",
    series_uid: str | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    volume: np.ndarray | None = None,
    tweak: Callable[[object, int], None] | None = None,
) -> list[Path]:
    """Write a CT series (stored value = HU + 1024, intercept -1024) of the phantom.

    Files are named in reverse slice order (readers must sort by position); ``tweak(ds, k)``
    may change slice k's dataset before it is saved.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    if volume is None:
        volume = phantom((COLS, ROWS, count), seed)[0]
    positions = positions or dicom_positions(count)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    names = names or [f"IM{count - k:04d}.dcm" for k in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
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
        if modality is not None:
            ds.Modality = modality
        ds.SeriesDescription = "corpus"
        ds.SeriesNumber = 1
        ds.InstanceNumber = 10 + k
        ds.Rows, ds.Columns = ROWS, COLS
        ds.PixelSpacing = list(PIXEL_SPACING)
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = [float(v) for v in positions[k]]
        ds.SliceThickness = SLICE_STEP
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelData = (volume[:, :, k].T.astype(np.int32) + 1024).astype(np.int16).tobytes()
        path = folder / names[k]
        with _pydicom_lenient(pydicom):
            if tweak is not None:
                tweak(ds, k)
            ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _raw(tag: int, vr: str, value: bytes):
    """A DICOM element written byte for byte (pydicom would refuse the malformed value)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


@contextlib.contextmanager
def _pydicom_lenient(pydicom):
    settings = pydicom.config.settings
    saved = settings.writing_validation_mode
    settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the malformed values are the point
            yield
    finally:
        settings.writing_validation_mode = saved


def write_nrrd(path: Path, data: np.ndarray, spacing=(0.75, 0.75, 2.5)) -> Path:
    """A minimal raw NRRD volume (what 3D Slicer saves for a segmentation)."""
    head = (
        "NRRD0004\n"
        f"type: {data.dtype.name}\n"
        "dimension: 3\n"
        "space: left-posterior-superior\n"
        f"sizes: {' '.join(str(n) for n in data.shape)}\n"
        "space directions: "
        + " ".join(
            "(" + ",".join(str(spacing[i] if i == j else 0.0) for j in range(3)) + ")"
            for i in range(3)
        )
        + "\nkinds: domain domain domain\nendian: little\nencoding: raw\n"
        "space origin: (0,0,0)\n\n"
    )
    path.write_bytes(head.encode() + np.asfortranarray(data).tobytes(order="F"))
    return path


# --------------------------------------------------------------------------------------
# Output checks
# --------------------------------------------------------------------------------------


def seg_problem(
    output: Path,
    shape: Sequence[int],
    affine: np.ndarray,
    truth: np.ndarray | None = None,
    min_dice: float = 0.9,
    empty: bool = False,
) -> str | None:
    """Why the label volume ``output`` is wrong, or None.

    Right: loads as NIfTI, uint8, ``shape``, ``affine`` (NaN-equal), labels in {0, 1, 2};
    with ``truth``, liver (label >= 1) Dice >= ``min_dice``; with ``empty``, all background.
    """
    try:
        image = nib.load(str(output))
        data = np.asarray(image.dataobj)
    except Exception as error:  # noqa: BLE001 - any reading problem is the answer
        return f"{output.name} unreadable: {error}"
    if tuple(image.shape) != tuple(shape):
        return f"{output.name} shape {image.shape}, input {tuple(shape)}"
    if not np.allclose(image.affine, affine, atol=1e-4, equal_nan=True):
        return f"{output.name} affine differs from the input's"
    if image.get_data_dtype() != np.uint8:
        return f"{output.name} holds {image.get_data_dtype()}, not uint8"
    values = set(np.unique(data).tolist())
    if not values <= {0, 1, 2}:
        return f"{output.name} labels {sorted(values)[:6]} outside 0, 1, 2"
    if empty and values != {0}:
        return f"{output.name}: labels {sorted(values)} where the input has no liver"
    if truth is not None:
        score = dice(data.reshape(truth.shape) >= 1, truth >= 1)
        if score < min_dice:
            return f"{output.name}: liver Dice {score:.3f} < {min_dice} against the phantom"
    return None


def nifti_geometry(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of a NIfTI file as nibabel reads them, whatever its suffix says."""
    blob = path.read_bytes()
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder, "image.nii")
        copy.write_bytes(blob)
        image = nib.load(str(copy))
        return tuple(image.shape), image.affine


def like_input(output: str, source: str, truth: np.ndarray | None = None, **kw):
    """A check: ``output`` has the geometry nibabel reads from the NIfTI ``source``."""

    def check(folder: Path) -> str | None:
        shape, affine = nifti_geometry(folder / source)
        return seg_problem(folder / output, shape, affine, truth, **kw)

    return check


def like_dicom(output: str, count: int = SLICES, tilt: float = 0.0, truth=None, **kw):
    """A check: ``output`` has the DICOM series' grid, ``(COLS, ROWS, count)``."""

    def check(folder: Path) -> str | None:
        return seg_problem(folder / output, (COLS, ROWS, count), dicom_expected_affine(count, tilt),
                           truth, **kw)

    return check


def all_of(*checks):
    def check(folder: Path) -> str | None:
        for one in checks:
            problem = one(folder)
            if problem:
                return problem
        return None

    return check


def json_check(name: str, test: Callable[[object], str | None] | None = None):
    """A check: ``name`` is a JSON file (and ``test(data)`` finds nothing wrong)."""

    def check(folder: Path) -> str | None:
        try:
            data = json.loads((folder / name).read_text())
        except Exception as error:  # noqa: BLE001
            return f"{name} is not JSON: {error}"
        return test(data) if test else None

    return check


# --------------------------------------------------------------------------------------
# Case definitions
# --------------------------------------------------------------------------------------

PREDICT_PROGRESS = (r"^\[\d+/\d+\] \S+$",)


def predict(source: str, *args: str, output: str = "seg.nii.gz", signal_: int | None = None,
            trigger: str | None = None, delay: float = 0.0, timeout: float = 300.0) -> Run:
    """A ``predict`` run of ``source``; its progress label is not counted as a message."""
    label = re.escape(Path(source).name)
    return Run(["predict", source, "-o", output, *args], signal_, trigger, delay,
               (f"^{label}$", *PREDICT_PROGRESS), timeout)


def oracle_predict(a: Assets, source: str, *args: str, output: str = "seg.nii.gz") -> Run:
    return predict(source, "--weights", a.oracle, *args, output=output)


def ok_nifti(source: str, a: Assets, truth=None, *args: str, **kw) -> Setup:
    """Setup: predict ``source`` with the oracle; ok when seg.nii.gz matches its grid."""
    return Setup([oracle_predict(a, source, *args)], ["seg.nii.gz"],
                 like_input("seg.nii.gz", source, truth, **kw))


def error_predict(source: str, a: Assets, *args: str, output: str = "seg.nii.gz") -> Setup:
    return Setup([oracle_predict(a, source, *args, output=output)], [output])


# ---- NIfTI files that are fine (the controls) --------------------------------------------

def _good(version: int, suffix: str):
    def build(d: Path, a: Assets) -> Setup:
        hu, truth = phantom()
        save_nifti(d / f"ct{suffix}", hu, version=version)
        return ok_nifti(f"ct{suffix}", a, truth)

    return build


for _v in (1, 2):
    for _suffix in (".nii", ".nii.gz"):
        case(f"nifti{_v}_{'niigz' if _suffix.endswith('gz') else 'nii'}_good", "nifti",
             "predict", "ok", f"a valid NIfTI-{_v} {_suffix} phantom (control)")(
            _good(_v, _suffix))


@case("nifti_bundled_model", "nifti", "predict", "ok",
      "a valid .nii.gz with the bundled unet_sharp_fast weights (the real network)")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", phantom()[0])
    return Setup([predict("ct.nii.gz", "--fast")], ["seg.nii.gz"],
                 like_input("seg.nii.gz", "ct.nii.gz"))


@case("nifti_upper_case_suffix", "nifti", "predict", "ok", "CT.NII.GZ: upper-case suffix")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    save_nifti(d / "CT.NII.GZ", hu)
    return ok_nifti("CT.NII.GZ", a, truth)


# ---- truncated and corrupt files -------------------------------------------------------

@case("truncated_nii_data", "gzip", "predict", "error", ".nii cut in the middle of its data")
def _(d: Path, a: Assets) -> Setup:
    truncate(save_nifti(d / "ct.nii", phantom()[0]), 0.6)
    return error_predict("ct.nii", a)


@case("truncated_nii_header", "gzip", "predict", "error", ".nii cut inside its 348-byte header")
def _(d: Path, a: Assets) -> Setup:
    truncate(save_nifti(d / "ct.nii", phantom()[0]), 200)
    return error_predict("ct.nii", a)


@case("truncated_niigz", "gzip", "predict", "error", ".nii.gz cut in the middle of the stream")
def _(d: Path, a: Assets) -> Setup:
    truncate(save_nifti(d / "ct.nii.gz", phantom()[0]), 0.5)
    return error_predict("ct.nii.gz", a)


@case("truncated_niigz_header", "gzip", "predict", "error", ".nii.gz cut to its first 40 bytes")
def _(d: Path, a: Assets) -> Setup:
    truncate(save_nifti(d / "ct.nii.gz", phantom()[0]), 40)
    return error_predict("ct.nii.gz", a)


@case("corrupt_gzip_stream", "gzip", "predict", "error",
      ".nii.gz with 16 inverted bytes in the deflate stream")
def _(d: Path, a: Assets) -> Setup:
    flip_bytes(save_nifti(d / "ct.nii.gz", phantom()[0]), 0.5)
    return error_predict("ct.nii.gz", a)


@case("corrupt_gzip_crc", "gzip", "predict", "error",
      ".nii.gz whose CRC-32 trailer is wrong (data intact)")
def _(d: Path, a: Assets) -> Setup:
    path = save_nifti(d / "ct.nii.gz", phantom()[0])
    blob = bytearray(path.read_bytes())
    blob[-8] ^= 0xFF
    path.write_bytes(bytes(blob))
    return error_predict("ct.nii.gz", a)


@case("gzip_of_garbage", "gzip", "predict", "error", "valid gzip of random bytes, named .nii.gz")
def _(d: Path, a: Assets) -> Setup:
    (d / "ct.nii.gz").write_bytes(gzip.compress(np.random.default_rng(1).bytes(5000)))
    return error_predict("ct.nii.gz", a)


@case("garbage_niigz", "gzip", "predict", "error", "random bytes named .nii.gz (not gzip)")
def _(d: Path, a: Assets) -> Setup:
    (d / "ct.nii.gz").write_bytes(np.random.default_rng(2).bytes(5000))
    return error_predict("ct.nii.gz", a)


@case("zero_byte_nii", "gzip", "predict", "error", "an empty ct.nii")
def _(d: Path, a: Assets) -> Setup:
    (d / "ct.nii").write_bytes(b"")
    return error_predict("ct.nii", a)


@case("zero_byte_niigz", "gzip", "predict", "error", "an empty ct.nii.gz")
def _(d: Path, a: Assets) -> Setup:
    (d / "ct.nii.gz").write_bytes(b"")
    return error_predict("ct.nii.gz", a)


@case("text_named_nii", "gzip", "predict", "error", "a text file named ct.nii")
def _(d: Path, a: Assets) -> Setup:
    (d / "ct.nii").write_text("patient: anonymous\nthis is not an image\n" * 20)
    return error_predict("ct.nii", a)


@case("gzip_named_nii", "gzip", "predict", "either", "a gzipped NIfTI named .nii (wrong suffix)")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "tmp.nii.gz", phantom()[0])
    (d / "tmp.nii.gz").rename(d / "ct.nii")
    return ok_nifti("ct.nii", a)


@case("plain_named_niigz", "gzip", "predict", "either",
      "an uncompressed NIfTI named .nii.gz (wrong suffix)")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "tmp.nii", phantom()[0])
    (d / "tmp.nii").rename(d / "ct.nii.gz")
    return ok_nifti("ct.nii.gz", a)


@case("bad_magic", "gzip", "predict", "error", "a NIfTI-1 header whose magic is 'xyz\\0'")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], magic=b"xyz")
    return error_predict("ct.nii", a)


@case("vox_offset_past_end", "gzip", "predict", "error",
      "vox_offset points past the end of the file")
def _(d: Path, a: Assets) -> Setup:
    path = save_nifti(d / "ct.nii", phantom()[0])
    blob = bytearray(path.read_bytes())
    blob[108:112] = np.float32(10_000_000).tobytes()
    path.write_bytes(bytes(blob))
    return error_predict("ct.nii", a)


# ---- dimensions ------------------------------------------------------------------------

@case("dims_2d", "dims", "predict", "error", "a 2D image (64x64)")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", phantom()[0][:, :, 4])
    return error_predict("ct.nii.gz", a)


@case("dims_4d_one_volume", "dims", "predict", "ok",
      "4D 64x64x8x1: one volume; output keeps the 4D shape")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    save_nifti(d / "ct.nii.gz", hu[..., None])
    return ok_nifti("ct.nii.gz", a, truth)


@case("dims_4d_three_volumes", "dims", "predict", "error", "4D 64x64x8x3: a time series")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", np.stack([phantom()[0]] * 3, axis=-1))
    return error_predict("ct.nii.gz", a)


@case("dims_5d_singletons", "dims", "predict", "ok", "5D 64x64x8x1x1")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    save_nifti(d / "ct.nii.gz", hu[..., None, None])
    return ok_nifti("ct.nii.gz", a, truth)


@case("dim0_is_7", "dims", "predict", "ok",
      "dim[0]=7 with dims 4..7 equal to 1 (valid NIfTI, effectively 3D)")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    patched_nifti(d / "ct.nii", hu, dim=[7, *SHAPE, 1, 1, 1, 1])
    return ok_nifti("ct.nii", a, truth)


@case("dim0_is_9", "dims", "predict", "error", "dim[0]=9 (more than NIfTI's 7 dimensions)")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], dim=[9, *SHAPE, 1, 1, 1, 1])
    return error_predict("ct.nii", a)


@case("dim0_is_0", "dims", "predict", "error", "dim[0]=0 (no dimensions)")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], dim=[0, *SHAPE, 1, 1, 1, 1])
    return error_predict("ct.nii", a)


@case("dims_negative", "dims", "predict", "error", "dim = [3, 64, -64, 8]")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], dim=[3, 64, -64, 8, 1, 1, 1, 1])
    return error_predict("ct.nii", a)


@case("dims_zero_length", "dims", "predict", "error", "a 64x64x0 volume (zero-length axis)")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", np.zeros((64, 64, 0), np.int16))
    return error_predict("ct.nii.gz", a)


@case("one_voxel", "dims", "predict", "either", "a 1x1x1 volume")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", np.full((1, 1, 1), 150, np.int16))
    return ok_nifti("ct.nii.gz", a)


@case("one_slice", "dims", "predict", "ok", "a 64x64x1 volume (one axial slice)")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom((64, 64, 1))
    save_nifti(d / "ct.nii.gz", hu)
    return ok_nifti("ct.nii.gz", a, truth)


@case("one_row", "dims", "predict", "either", "a 64x1x8 volume (slices of one row)")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", phantom((64, 1, 8))[0])
    return ok_nifti("ct.nii.gz", a)


@case("huge_declared_nifti2", "size", "predict", "error",
      "NIfTI-2 header declaring 100000x100000x1000 int16 (20 TB), 4 kB of data")
def _(d: Path, a: Assets) -> Setup:
    raw_nifti(d / "ct.nii", header_for((100_000, 100_000, 1000), version=2), bytes(4096))
    return error_predict("ct.nii", a)


@case("huge_declared_nifti2_gz", "size", "predict", "error",
      "the same 20 TB NIfTI-2 header, gzipped")
def _(d: Path, a: Assets) -> Setup:
    raw_nifti(d / "ct.nii.gz", header_for((100_000, 100_000, 1000), version=2), bytes(4096))
    return error_predict("ct.nii.gz", a)


@case("huge_declared_1024cubed", "size", "predict", "error",
      "NIfTI-1 header declaring 1024^3 int16 (2 GiB), 4 kB of data")
def _(d: Path, a: Assets) -> Setup:
    raw_nifti(d / "ct.nii", header_for((1024, 1024, 1024)), bytes(4096))
    return error_predict("ct.nii", a)


@case("huge_declared_1024cubed_gz", "size", "predict", "error",
      "the 1024^3 header with 4 kB of data, gzipped")
def _(d: Path, a: Assets) -> Setup:
    raw_nifti(d / "ct.nii.gz", header_for((1024, 1024, 1024)), bytes(4096))
    return error_predict("ct.nii.gz", a)


# ---- values ----------------------------------------------------------------------------

@case("values_all_nan", "values", "predict", "ok",
      "float32 all NaN: a warning, all background")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", np.full(SHAPE, np.nan, np.float32))
    return ok_nifti("ct.nii.gz", a, empty=True)


@case("values_some_nan", "values", "predict", "ok", "a phantom with 5% NaN voxels")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    data = hu.astype(np.float32)
    data[np.random.default_rng(3).random(SHAPE) < 0.05] = np.nan
    save_nifti(d / "ct.nii.gz", data)
    return ok_nifti("ct.nii.gz", a, truth, min_dice=0.8)


@case("values_inf", "values", "predict", "ok", "a phantom with +Inf and -Inf voxels")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    data = hu.astype(np.float32)
    data[0, 0, :] = np.inf
    data[-1, -1, :] = -np.inf
    save_nifti(d / "ct.nii.gz", data)
    return ok_nifti("ct.nii.gz", a, truth)


@case("values_constant_zero", "values", "predict", "ok",
      "an all-zero (empty) volume: a warning, all background")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", np.zeros(SHAPE, np.int16))
    return ok_nifti("ct.nii.gz", a, empty=True)


@case("values_scaled_int16", "values", "predict", "ok",
      "int16 stored values with scl_slope 0.5, scl_inter -1024")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    save_nifti(d / "ct.nii.gz", ((hu.astype(np.int32) + 1024) * 2).astype(np.int16),
               scl_slope=0.5, scl_inter=-1024)
    return ok_nifti("ct.nii.gz", a, truth)


@case("values_nan_slope", "values", "predict", "ok", "scl_slope NaN (NIfTI: no scaling)")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    patched_nifti(d / "ct.nii", hu, scl_slope=np.nan, scl_inter=np.nan)
    return ok_nifti("ct.nii", a, truth)


@case("values_uint8_0_255", "values", "predict", "ok",
      "uint8 data 0..255 (a screenshot, not HU): a warning, exit 0")
def _(d: Path, a: Assets) -> Setup:
    data = np.random.default_rng(4).integers(0, 256, SHAPE).astype(np.uint8)
    save_nifti(d / "ct.nii.gz", data)
    return ok_nifti("ct.nii.gz", a)


# ---- voxel types -----------------------------------------------------------------------

def _dtype_case(name: str, convert: Callable[[np.ndarray], np.ndarray], exact: bool, about: str):
    @case(f"dtype_{name}", "dtype", "predict", "ok", about)
    def build(d: Path, a: Assets) -> Setup:
        hu, truth = phantom()
        save_nifti(d / "ct.nii.gz", convert(hu))
        return ok_nifti("ct.nii.gz", a, truth if exact else None)


_dtype_case("int8", lambda hu: np.clip(hu, -128, 127).astype(np.int8), False,
            "int8 HU clipped to -128..127")
_dtype_case("float64", lambda hu: hu.astype(np.float64), True, "float64 HU")
_dtype_case("int32", lambda hu: hu.astype(np.int32), True, "int32 HU")
_dtype_case("uint16", lambda hu: (hu.astype(np.int32) + 1024).astype(np.uint16), False,
            "uint16 stored values HU + 1024 without scaling (not HU)")


@case("dtype_bool", "dtype", "predict", "error", "NIfTI datatype 1 (DT_BINARY, 1 bit)")
def _(d: Path, a: Assets) -> Setup:
    packed = np.packbits((phantom()[1] > 0).ravel(order="F")).tobytes()
    header = header_for(SHAPE, np.uint8)
    header["datatype"], header["bitpix"] = 1, 1
    raw_nifti(d / "ct.nii", header, packed)
    return error_predict("ct.nii", a)


@case("dtype_complex64", "dtype", "predict", "error", "complex64 voxels")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", phantom()[0].astype(np.complex64))
    return error_predict("ct.nii.gz", a)


@case("dtype_rgb24", "dtype", "predict", "error", "RGB24 voxels (a colour image)")
def _(d: Path, a: Assets) -> Setup:
    header = header_for(SHAPE, np.uint8)
    header["datatype"], header["bitpix"] = 128, 24
    raw_nifti(d / "ct.nii", header, bytes(3 * int(np.prod(SHAPE))))
    return error_predict("ct.nii", a)


# ---- geometry --------------------------------------------------------------------------

@case("zero_spacing", "geometry", "predict", "ok",
      "pixdim 0,0,0 and no qform/sform: a warning (1 mm assumed), exit 0")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    patched_nifti(d / "ct.nii", hu, pixdim=[1, 0, 0, 0, 0, 0, 0, 0], qform_code=0, sform_code=0)
    return ok_nifti("ct.nii", a, truth)


@case("singular_sform", "geometry", "predict", "either",
      "sform all zeros (sform_code 1), qform unset")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], qform_code=0, srow_x=[0] * 4, srow_y=[0] * 4,
                  srow_z=[0] * 4)
    return ok_nifti("ct.nii", a)


@case("singular_sform_valid_qform", "geometry", "predict", "either",
      "sform all zeros (sform_code 1) beside a valid qform")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], srow_x=[0] * 4, srow_y=[0] * 4, srow_z=[0] * 4)
    return ok_nifti("ct.nii", a)


@case("nan_in_affine", "geometry", "predict", "either", "a NaN in the sform, qform unset")
def _(d: Path, a: Assets) -> Setup:
    patched_nifti(d / "ct.nii", phantom()[0], qform_code=0, srow_x=[np.nan, 0, 0, 0])
    return ok_nifti("ct.nii", a)


@case("oblique_sheared_affine", "geometry", "predict", "ok",
      "an oblique, sheared affine (kept exactly in the output)")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom()
    affine = AFFINE.copy()
    affine[:3, :3] = affine[:3, :3] @ np.array([[1, 0.1, 0], [0, 1, 0.2], [0, 0, 1]])
    save_nifti(d / "ct.nii.gz", hu, affine)
    return ok_nifti("ct.nii.gz", a, truth)


# ---- label maps given as CT ------------------------------------------------------------

@case("label_map_0_2", "labels-as-ct", "predict", "error",
      "a LiTS segmentation (uint8 0..2) given as the CT")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "segmentation-0.nii.gz", phantom()[1])
    return error_predict("segmentation-0.nii.gz", a)


@case("label_map_0_5", "labels-as-ct", "predict", "error",
      "a multi-organ label map (int16 0..5) given as the CT")
def _(d: Path, a: Assets) -> Setup:
    labels = phantom()[1].astype(np.int16) * 2
    labels[:4] = 5
    labels[-4:] = 3
    save_nifti(d / "labels.nii.gz", labels)
    return error_predict("labels.nii.gz", a)


@case("label_map_force", "labels-as-ct", "predict", "ok",
      "a LiTS segmentation as the CT with --force: segmented anyway")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "segmentation-0.nii.gz", phantom()[1])
    return ok_nifti("segmentation-0.nii.gz", a, None, "--force")


# ---- DICOM -----------------------------------------------------------------------------

def dicom_ok(folder: str, a: Assets, *args: str, count: int = SLICES, tilt: float = 0.0,
             truth=None) -> Setup:
    return Setup([oracle_predict(a, folder, *args)], ["seg.nii.gz"],
                 like_dicom("seg.nii.gz", count, tilt, truth))


@case("dicom_good", "dicom", "predict", "ok", "a valid 8-slice axial CT series (control)")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series")
    return dicom_ok("series", a, truth=phantom((COLS, ROWS, SLICES))[1])


@case("dicom_gantry_tilt", "dicom", "predict", "ok",
      "a series with gantry tilt (kept as shear in the affine)")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", positions=dicom_positions(tilt=0.5))
    return dicom_ok("series", a, tilt=0.5, truth=phantom((COLS, ROWS, SLICES))[1])


@case("dicom_float_rescale", "dicom", "predict", "ok",
      "RescaleSlope 0.5 (float HU), stored values doubled")
def _(d: Path, a: Assets) -> Setup:
    def tweak(ds, k):
        pixels = np.frombuffer(ds.PixelData, np.int16).astype(np.int32) * 2 - 1024
        ds.PixelData = pixels.astype(np.int16).tobytes()
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -512

    write_series(d / "series", tweak=tweak)
    return dicom_ok("series", a, truth=phantom((COLS, ROWS, SLICES))[1])


@case("dicom_missing_slice", "dicom", "predict", "error",
      "the middle slice of 8 deleted (a gap in the positions)")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series")[SLICES // 2].unlink()
    return error_predict("series", a)


@case("dicom_duplicate_file", "dicom", "predict", "either",
      "one slice's file copied under another name (same SOP instance)")
def _(d: Path, a: Assets) -> Setup:
    paths = write_series(d / "series")
    shutil.copy(paths[3], d / "series" / "copy.dcm")
    return dicom_ok("series", a)


@case("dicom_duplicate_position", "dicom", "predict", "error",
      "two different slices at the same position")
def _(d: Path, a: Assets) -> Setup:
    positions = dicom_positions()
    positions[5] = positions[4]
    write_series(d / "series", positions=positions)
    return error_predict("series", a)


for _which, _index in (("first", 0), ("middle", SLICES // 2), ("last", SLICES - 1)):
    def _truncated(d: Path, a: Assets, index=_index) -> Setup:
        truncate(write_series(d / "series")[index], 0.5)
        return error_predict("series", a)

    case(f"dicom_truncated_{_which}", "dicom", "predict", "error",
         f"the {_which} slice's file cut in half (pixel data short)")(_truncated)


@case("dicom_truncated_last_skip", "dicom", "predict", "ok",
      "the last slice's file cut in half, --skip-unreadable: 7 slices segmented")
def _(d: Path, a: Assets) -> Setup:
    truncate(write_series(d / "series")[SLICES - 1], 0.5)
    return dicom_ok("series", a, "--skip-unreadable", count=SLICES - 1)


@case("dicom_truncated_middle_skip", "dicom", "predict", "error",
      "the middle slice's file cut in half, --skip-unreadable: skipping it leaves a gap")
def _(d: Path, a: Assets) -> Setup:
    truncate(write_series(d / "series")[SLICES // 2], 0.5)
    return error_predict("series", a, "--skip-unreadable")


@case("dicom_truncated_header", "dicom", "predict", "error",
      "one file cut to 300 bytes (inside its header)")
def _(d: Path, a: Assets) -> Setup:
    truncate(write_series(d / "series")[2], 300)
    return error_predict("series", a)


@case("dicom_mixed_series", "dicom", "predict", "error",
      "two series (two SeriesInstanceUIDs) in one folder")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", 4, names=[f"a{k}.dcm" for k in range(4)])
    write_series(d / "series", 4, names=[f"b{k}.dcm" for k in range(4)],
                 positions=dicom_positions(4)[::-1])
    return error_predict("series", a)


@case("dicom_mixed_orientation", "dicom", "predict", "error",
      "one series whose last 4 slices are coronal")
def _(d: Path, a: Assets) -> Setup:
    def tweak(ds, k):
        if k >= 4:
            ds.ImageOrientationPatient = list(CORONAL)

    write_series(d / "series", tweak=tweak)
    return error_predict("series", a)


@case("dicom_mixed_sizes", "dicom", "predict", "error", "one slice of 28x24 in a 56x48 series")
def _(d: Path, a: Assets) -> Setup:
    def tweak(ds, k):
        if k == 3:
            ds.Rows, ds.Columns = ROWS // 2, COLS // 2
            ds.PixelData = bytes(ROWS * COLS // 2)

    write_series(d / "series", tweak=tweak)
    return error_predict("series", a)


@case("dicom_single_slice_folder", "dicom", "predict", "ok", "a folder holding one slice")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", 1)
    return dicom_ok("series", a, count=1)


@case("dicom_single_file_arg", "dicom", "predict", "error",
      "one .dcm file given as INPUT (not its folder)")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", 3)
    return error_predict("series/IM0001.dcm", a)


@case("dicom_bad_is_value", "dicom", "predict", "ok",
      "InstanceNumber (IS) '1A' in every file: an unused tag, not an error")
def _(d: Path, a: Assets) -> Setup:
    def tweak(ds, k):
        ds[0x00200013] = _raw(0x00200013, "IS", b"1A")

    write_series(d / "series", tweak=tweak)
    return dicom_ok("series", a)


@case("dicom_bad_ds_position", "dicom", "predict", "error",
      "ImagePositionPatient (DS) '1A' in one file")
def _(d: Path, a: Assets) -> Setup:
    def tweak(ds, k):
        if k == 2:
            ds[0x00200032] = _raw(0x00200032, "DS", b"0\\1A\\5")

    write_series(d / "series", tweak=tweak)
    return error_predict("series", a)


@case("dicom_missing_position", "dicom", "predict", "error",
      "no ImagePositionPatient in any file")
def _(d: Path, a: Assets) -> Setup:
    def tweak(ds, k):
        del ds.ImagePositionPatient

    write_series(d / "series", tweak=tweak)
    return error_predict("series", a)


@case("dicom_mr", "dicom", "predict", "error", "an MR series (Modality MR): refused, not HU")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", modality="MR")
    return error_predict("series", a)


@case("dicom_mr_force", "dicom", "predict", "ok", "the MR series with --force")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", modality="MR")
    return dicom_ok("series", a, "--force")


@case("dicom_rtdose", "dicom", "predict", "error", "Modality RTDOSE (a dose grid, not CT)")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", modality="RTDOSE")
    return error_predict("series", a)


@case("dicom_no_modality", "dicom", "predict", "ok",
      "no Modality tag (anonymised): read as CT, maybe with a warning")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series", modality=None)
    return dicom_ok("series", a)


@case("dicom_undecodable_pixels", "dicom", "predict", "error",
      "JPEG 2000 transfer syntax whose fragments are random bytes (cannot decode)")
def _(d: Path, a: Assets) -> Setup:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    def tweak(ds, k):
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.PixelData = encapsulate([np.random.default_rng(k).bytes(500)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True

    write_series(d / "series", tweak=tweak)
    return error_predict("series", a)


@case("dicom_empty_folder", "dicom", "predict", "error", "an empty folder")
def _(d: Path, a: Assets) -> Setup:
    (d / "series").mkdir()
    return error_predict("series", a)


@case("dicom_non_dicom_files", "dicom", "predict", "error",
      "a folder of a .txt, a .png-named random file and a .json")
def _(d: Path, a: Assets) -> Setup:
    (d / "series").mkdir()
    (d / "series" / "notes.txt").write_text("not an image")
    (d / "series" / "scan.png").write_bytes(np.random.default_rng(5).bytes(2000))
    (d / "series" / "meta.json").write_text("{}")
    return error_predict("series", a)


@case("dicom_fake_dcm", "dicom", "predict", "error", "text files named *.dcm")
def _(d: Path, a: Assets) -> Setup:
    (d / "series").mkdir()
    for k in range(3):
        (d / "series" / f"IM{k}.dcm").write_text("this is not DICOM\n" * 30)
    return error_predict("series", a)


@case("dicom_with_nifti", "dicom", "predict", "error",
      "a DICOM series and a NIfTI file in one folder")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "series")
    save_nifti(d / "series" / "ct.nii.gz", phantom()[0])
    return error_predict("series", a)


# ---- folders: LiTS / MSD layouts and batches ----------------------------------------------

def _lits(folder: Path, count: int = 2) -> None:
    for i in range(count):
        hu, labels = phantom(seed=i)
        save_nifti(folder / f"volume-{i}.nii.gz", hu)
        save_nifti(folder / f"segmentation-{i}.nii.gz", labels)


def _batch_check(outputs: Sequence[str], sources: Sequence[str]):
    return all_of(*(like_input(o, s) for o, s in zip(outputs, sources, strict=True)))


@case("lits_folder", "folders", "predict", "either",
      "a LiTS folder: volume-N beside segmentation-N; only the volumes are segmented")
def _(d: Path, a: Assets) -> Setup:
    _lits(d / "lits")
    outs = ["out/volume-0.nii.gz", "out/volume-1.nii.gz"]
    run = predict("lits", "--weights", a.oracle, output="out")
    return Setup([run], outs, _batch_check(outs, ["lits/volume-0.nii.gz",
                                                   "lits/volume-1.nii.gz"]))


@case("lits_folder_skip_unreadable", "folders", "predict", "ok",
      "the LiTS folder with --skip-unreadable: the label maps are skipped")
def _(d: Path, a: Assets) -> Setup:
    _lits(d / "lits")
    outs = ["out/volume-0.nii.gz", "out/volume-1.nii.gz"]
    run = predict("lits", "--weights", a.oracle, "--skip-unreadable", output="out")
    return Setup([run], outs, _batch_check(outs, ["lits/volume-0.nii.gz",
                                                   "lits/volume-1.nii.gz"]))


@case("msd_root", "folders", "predict", "error",
      "an MSD task folder (imagesTr/ labelsTr/) given as INPUT: no scan at its top")
def _(d: Path, a: Assets) -> Setup:
    for i in range(2):
        hu, labels = phantom(seed=i)
        save_nifti(d / "Task03_Liver" / "imagesTr" / f"liver_{i}.nii.gz", hu)
        save_nifti(d / "Task03_Liver" / "labelsTr" / f"liver_{i}.nii.gz", labels)
    return Setup([predict("Task03_Liver", "--weights", a.oracle, output="out")], ["out"])


@case("msd_images_folder", "folders", "predict", "ok", "MSD imagesTr/ as a folder of scans")
def _(d: Path, a: Assets) -> Setup:
    for i in range(2):
        hu, labels = phantom(seed=i)
        save_nifti(d / "Task03_Liver" / "imagesTr" / f"liver_{i}.nii.gz", hu)
        save_nifti(d / "Task03_Liver" / "labelsTr" / f"liver_{i}.nii.gz", labels)
    outs = ["out/liver_0.nii.gz", "out/liver_1.nii.gz"]
    srcs = [f"Task03_Liver/imagesTr/liver_{i}.nii.gz" for i in range(2)]
    return Setup([predict("Task03_Liver/imagesTr", "--weights", a.oracle, output="out")], outs,
                 _batch_check(outs, srcs))


def _mixed_batch(d: Path) -> None:
    for i in range(2):
        save_nifti(d / "scans" / f"ct{i}.nii.gz", phantom(seed=i)[0])
    truncate(save_nifti(d / "scans" / "broken.nii.gz", phantom()[0]), 0.5)


@case("batch_with_corrupt_file", "folders", "predict", "error",
      "a folder of 2 good scans and 1 truncated: fails, and writes nothing")
def _(d: Path, a: Assets) -> Setup:
    _mixed_batch(d)
    return Setup([predict("scans", "--weights", a.oracle, output="out")], ["out"])


@case("batch_skip_unreadable", "folders", "predict", "ok",
      "the same folder with --skip-unreadable: 2 outputs, the bad file named")
def _(d: Path, a: Assets) -> Setup:
    _mixed_batch(d)
    outs = ["out/ct0.nii.gz", "out/ct1.nii.gz"]
    return Setup([predict("scans", "--weights", a.oracle, "--skip-unreadable", output="out")],
                 outs, _batch_check(outs, ["scans/ct0.nii.gz", "scans/ct1.nii.gz"]))


@case("batch_dicom_subfolders", "folders", "predict", "ok",
      "a folder of two DICOM series sub-folders")
def _(d: Path, a: Assets) -> Setup:
    write_series(d / "scans" / "a")
    write_series(d / "scans" / "b", seed=1)
    outs = ["out/a.nii.gz", "out/b.nii.gz"]
    return Setup([predict("scans", "--weights", a.oracle, output="out")], outs,
                 all_of(like_dicom(outs[0]), like_dicom(outs[1])))


@case("batch_output_is_file", "folders", "predict", "error",
      "a folder of scans with -o naming an existing regular file")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "scans" / "ct0.nii.gz", phantom()[0])
    (d / "out.txt").write_text("keep me")
    return Setup([predict("scans", "--weights", a.oracle, output="out.txt")])


# ---- predict outputs and options ---------------------------------------------------------

def _ct(d: Path) -> None:
    save_nifti(d / "ct.nii.gz", phantom()[0])


@case("predict_missing_input", "outputs", "predict", "error", "INPUT does not exist")
def _(d: Path, a: Assets) -> Setup:
    return error_predict("nothing.nii.gz", a)


@case("predict_folder_named_nii", "outputs", "predict", "error",
      "INPUT is an empty folder named ct.nii.gz")
def _(d: Path, a: Assets) -> Setup:
    (d / "ct.nii.gz").mkdir()
    return error_predict("ct.nii.gz", a)


@case("predict_output_is_input", "outputs", "predict", "error",
      "-o names the input file (with --overwrite): the input must survive")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return Setup([oracle_predict(a, "ct.nii.gz", "--overwrite", output="ct.nii.gz")])


@case("predict_output_is_input_alias", "outputs", "predict", "error",
      "-o names the input through ./sub/../ (with --overwrite)")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    (d / "sub").mkdir()
    return Setup([oracle_predict(a, "ct.nii.gz", "--overwrite", output="./sub/../ct.nii.gz")])


@case("predict_output_parent_is_file", "outputs", "predict", "error",
      "-o blocker/seg.nii.gz where blocker is a regular file")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    (d / "blocker").write_text("a file, not a folder")
    return error_predict("ct.nii.gz", a, output="blocker/seg.nii.gz")


@case("predict_output_exists", "outputs", "predict", "error",
      "-o exists, no --overwrite: refused, file untouched")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    (d / "seg.nii.gz").write_bytes(b"previous result")
    return error_predict("ct.nii.gz", a)


@case("predict_output_exists_overwrite", "outputs", "predict", "ok",
      "-o exists, --overwrite: replaced")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    (d / "seg.nii.gz").write_bytes(b"previous result")
    return ok_nifti("ct.nii.gz", a, None, "--overwrite")


@case("predict_output_bad_suffix", "outputs", "predict", "error", "-o seg.png")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return error_predict("ct.nii.gz", a, output="seg.png")


@case("predict_report_is_input", "outputs", "predict", "error",
      "--report names the input (with --overwrite)")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return error_predict("ct.nii.gz", a, "--report", "ct.nii.gz", "--overwrite")


@case("predict_report_parent_is_file", "outputs", "predict", "error",
      "--report blocker/r.json where blocker is a file: no segmentation either")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    (d / "blocker").write_text("a file")
    return error_predict("ct.nii.gz", a, "--report", "blocker/r.json")


@case("predict_batch_size_0", "options", "predict", "error", "--batch-size 0")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return error_predict("ct.nii.gz", a, "--batch-size", "0")


@case("predict_unknown_option", "options", "predict", "error", "--bogus")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return error_predict("ct.nii.gz", a, "--bogus")


@case("predict_no_output_option", "options", "predict", "error", "no -o")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return Setup([Run(["predict", "ct.nii.gz"])])


@case("predict_weights_missing", "options", "predict", "error", "--weights missing.keras")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    return Setup([predict("ct.nii.gz", "--weights", "missing.keras")], ["seg.nii.gz"])


@case("predict_weights_corrupt", "options", "predict", "error",
      "--weights is random bytes named .weights.h5")
def _(d: Path, a: Assets) -> Setup:
    _ct(d)
    (d / "w.weights.h5").write_bytes(np.random.default_rng(6).bytes(4000))
    return Setup([predict("ct.nii.gz", "--weights", "w.weights.h5")], ["seg.nii.gz"])


# ---- evaluate ---------------------------------------------------------------------------

def _eval_pair(d: Path, gt_labels: np.ndarray | None = None, pred_labels=None) -> None:
    truth = phantom()[1]
    gt_labels = truth if gt_labels is None else gt_labels
    if pred_labels is None:
        pred_labels = truth.copy()
        pred_labels[:, :, 0] = 0  # a small, real difference
    save_nifti(d / "gt.nii.gz", gt_labels)
    save_nifti(d / "pred.nii.gz", pred_labels)


def evaluate(*args: str) -> Run:
    return Run(["evaluate", *args])


def _dice_in_json(data) -> str | None:
    text = json.dumps(data)
    return None if "dice" in text.lower() else "no Dice in the JSON report"


@case("eval_good", "evaluate", "evaluate", "ok", "a valid pair with --csv and --json (control)")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--csv", "m.csv",
                           "--json", "m.json")], ["m.csv", "m.json"],
                 json_check("m.json", _dice_in_json))


@case("eval_missing_gt", "evaluate", "evaluate", "error", "--gt does not exist")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "none.nii.gz", "--csv", "m.csv")],
                 ["m.csv"])


@case("eval_gt_folder_no_pairs", "evaluate", "evaluate", "error",
      "--gt folder whose names pair with nothing in --pred")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "gt" / "segmentation-1.nii.gz", phantom()[1])
    save_nifti(d / "pred" / "case-two.nii.gz", phantom()[1])
    return Setup([evaluate("--pred", "pred", "--gt", "gt", "--json", "m.json")], ["m.json"])


@case("eval_shape_mismatch", "evaluate", "evaluate", "error",
      "prediction 64x64x7 against ground truth 64x64x8")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d, pred_labels=phantom()[1][:, :, :7])
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--csv", "m.csv")],
                 ["m.csv"])


@case("eval_csv_is_gt", "evaluate", "evaluate", "error",
      "--csv names the ground truth, with --overwrite: the GT must survive")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--csv", "gt.nii.gz",
                           "--overwrite")])


@case("eval_json_is_pred", "evaluate", "evaluate", "error",
      "--json names the prediction, with --overwrite")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--json", "pred.nii.gz",
                           "--overwrite")])


@case("eval_csv_is_json", "evaluate", "evaluate", "error", "--csv and --json the same file")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--csv", "m.txt",
                           "--json", "m.txt")], ["m.txt"])


@case("eval_csv_parent_is_file", "evaluate", "evaluate", "error",
      "--csv blocker/m.csv where blocker is a file")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    (d / "blocker").write_text("a file")
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--csv",
                           "blocker/m.csv")])


@case("eval_nrrd_gt", "evaluate", "evaluate", "error", "ground truth in NRRD (3D Slicer)")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    write_nrrd(d / "gt.nrrd", phantom()[1])
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nrrd", "--csv", "m.csv")],
                 ["m.csv"])


def _multilabel() -> np.ndarray:
    truth = phantom()[1]
    labels = np.where(truth >= 1, 5, 0).astype(np.uint8)  # TotalSegmentator: liver = 5
    labels[:6, :, :] = 1  # spleen
    labels[-6:, :, :] = 3  # a kidney
    return labels


@case("eval_multilabel_gt", "evaluate", "evaluate", "error",
      "a TotalSegmentator-style ground truth (liver = 5, other organs)")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d, gt_labels=_multilabel())
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--json", "m.json")],
                 ["m.json"])


@case("eval_multilabel_gt_liver5", "evaluate", "evaluate", "ok",
      "the same ground truth with --gt-liver 5")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d, gt_labels=_multilabel())
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--gt-liver", "5",
                           "--json", "m.json")], ["m.json"], json_check("m.json", _dice_in_json))


@case("eval_both_empty", "evaluate", "evaluate", "ok", "empty prediction and empty ground truth")
def _(d: Path, a: Assets) -> Setup:
    empty = np.zeros(SHAPE, np.uint8)
    _eval_pair(d, gt_labels=empty, pred_labels=empty)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--json", "m.json")],
                 ["m.json"], json_check("m.json"))


@case("eval_pred_empty", "evaluate", "evaluate", "ok",
      "empty prediction against a liver (Dice 0, distances null)")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d, pred_labels=np.zeros(SHAPE, np.uint8))
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--json", "m.json")],
                 ["m.json"], json_check("m.json"))


@case("eval_pred_is_ct", "evaluate", "evaluate", "error", "--pred is a CT volume (HU), not labels")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    save_nifti(d / "ct.nii.gz", phantom()[0])
    return Setup([evaluate("--pred", "ct.nii.gz", "--gt", "gt.nii.gz", "--csv", "m.csv")],
                 ["m.csv"])


@case("eval_gt_truncated", "evaluate", "evaluate", "error", "a truncated ground truth .nii.gz")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    truncate(d / "gt.nii.gz", 0.5)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--csv", "m.csv")],
                 ["m.csv"])


@case("eval_tolerance_nan", "evaluate", "evaluate", "error", "--tolerance nan")
def _(d: Path, a: Assets) -> Setup:
    _eval_pair(d)
    return Setup([evaluate("--pred", "pred.nii.gz", "--gt", "gt.nii.gz", "--tolerance", "nan")])


# ---- train ------------------------------------------------------------------------------

def _train(d: Path, config: str | None = None, *args: str) -> Setup:
    _lits(d / "data", 3)
    extra = []
    if config is not None:
        (d / "config.json").write_text(config)
        extra = ["--config", "config.json"]
    return Setup([Run(["train", "--data", "data", "-o", "run", *extra, "--epochs", "1",
                       "--steps-per-epoch", "2", "--batch-size", "2", *args])])


for _name, _text in (
    ("list", "[1, 2, 3]"),
    ("string", '"unet_sharp"'),
    ("wrong_type", '{"seed": "ten"}'),
    ("null_value", '{"learning_rate": null}'),
    ("unknown_key", '{"epochz": 3}'),
    ("not_json", "epochs = 3\n"),
    ("empty_file", ""),
):
    case(f"train_config_{_name}", "train", "train", "error",
         f"--config holding {_text.strip() or 'nothing'!r}")(
        lambda d, a, text=_text: _train(d, text))


@case("train_config_folder", "train", "train", "error", "--config names a folder")
def _(d: Path, a: Assets) -> Setup:
    setup = _train(d)
    (d / "cfg").mkdir()
    setup.runs[0].args += ["--config", "cfg"]
    return setup


@case("train_data_missing", "train", "train", "error", "--data does not exist")
def _(d: Path, a: Assets) -> Setup:
    return Setup([Run(["train", "--data", "nowhere", "-o", "run", "--epochs", "1"])])


@case("train_data_empty", "train", "train", "error", "--data is an empty folder")
def _(d: Path, a: Assets) -> Setup:
    (d / "data").mkdir()
    return Setup([Run(["train", "--data", "data", "-o", "run", "--epochs", "1"])])


@case("train_label_shape_mismatch", "train", "train", "error",
      "segmentation-1 has another shape than volume-1")
def _(d: Path, a: Assets) -> Setup:
    setup = _train(d)
    save_nifti(d / "data" / "segmentation-1.nii.gz", phantom((64, 64, 6))[1])
    return setup


@case("train_output_is_file", "train", "train", "error", "-o names an existing regular file")
def _(d: Path, a: Assets) -> Setup:
    setup = _train(d)
    (d / "run").write_text("a file")
    return setup


@case("train_batch_size_0", "train", "train", "error", "--batch-size 0")
def _(d: Path, a: Assets) -> Setup:
    setup = _train(d)
    setup.runs[0].args += ["--batch-size", "0"]
    return setup


@case("train_epochs_negative", "train", "train", "error", "--epochs -1")
def _(d: Path, a: Assets) -> Setup:
    setup = _train(d)
    setup.runs[0].args += ["--epochs", "-1"]
    return setup


@case("train_tiny_ok", "train", "train", "ok",
      "one epoch of 2 steps on 3 tiny cases (control)")
def _(d: Path, a: Assets) -> Setup:
    setup = _train(d, None, "--quiet")
    setup.runs[0].timeout = 600
    setup.outputs = ["run/model.keras", "run/model_card.json"]
    setup.allowed = ("run/*",)
    setup.check = json_check("run/model_card.json")
    return setup


# ---- export and sample-data -------------------------------------------------------------

@case("export_existing_output", "export", "export", "error",
      "-o names an existing .onnx, no --overwrite")
def _(d: Path, a: Assets) -> Setup:
    (d / "m.onnx").write_bytes(b"previous export")
    return Setup([Run(["export", "--weights", "none", "-o", "m.onnx"])])


@case("export_output_is_weights", "export", "export", "error",
      "-o names the --weights file itself, with --overwrite")
def _(d: Path, a: Assets) -> Setup:
    shutil.copy(a.oracle, d / "model.keras")
    return Setup([Run(["export", "--weights", "model.keras", "-o", "model.keras",
                       "--overwrite"])])


@case("export_output_not_onnx", "export", "export", "error", "-o m.txt")
def _(d: Path, a: Assets) -> Setup:
    return Setup([Run(["export", "--weights", "none", "-o", "m.txt"])])


@case("export_output_parent_is_file", "export", "export", "error",
      "-o blocker/m.onnx where blocker is a file")
def _(d: Path, a: Assets) -> Setup:
    (d / "blocker").write_text("a file")
    return Setup([Run(["export", "--weights", "none", "-o", "blocker/m.onnx"])])


@case("export_weights_corrupt", "export", "export", "error",
      "--weights is random bytes named .weights.h5: no .onnx and no .partial left")
def _(d: Path, a: Assets) -> Setup:
    (d / "w.weights.h5").write_bytes(np.random.default_rng(7).bytes(4000))
    return Setup([Run(["export", "--weights", "w.weights.h5", "-o", "m.onnx"])], ["m.onnx"])


@case("sample_data_tiny_ok", "sample-data", "sample-data", "ok",
      "one 48x48x16 phantom (control)")
def _(d: Path, a: Assets) -> Setup:
    outs = ["ph/volume-0.nii.gz", "ph/segmentation-0.nii.gz", "ph/phantoms.json"]
    check = all_of(
        json_check("ph/phantoms.json"),
        lambda f: None if nib.load(str(f / outs[0])).shape == nib.load(str(f / outs[1])).shape
        else "volume and segmentation shapes differ",
    )
    return Setup([Run(["sample-data", "-o", "ph", "--cases", "1", "--size", "48", "48", "16"])],
                  outs, check)


@case("sample_data_output_is_file", "sample-data", "sample-data", "error",
      "-o names an existing regular file")
def _(d: Path, a: Assets) -> Setup:
    (d / "ph").write_text("a file")
    return Setup([Run(["sample-data", "-o", "ph", "--cases", "1", "--size", "32", "32", "16"])])


@case("sample_data_size_too_small", "sample-data", "sample-data", "error", "--size 8 8 8")
def _(d: Path, a: Assets) -> Setup:
    return Setup([Run(["sample-data", "-o", "ph", "--size", "8", "8", "8"])])


@case("sample_data_cases_zero", "sample-data", "sample-data", "error", "--cases 0")
def _(d: Path, a: Assets) -> Setup:
    return Setup([Run(["sample-data", "-o", "ph", "--cases", "0"])])


@case("sample_data_parent_is_file", "sample-data", "sample-data", "error",
      "-o blocker/ph where blocker is a file")
def _(d: Path, a: Assets) -> Setup:
    (d / "blocker").write_text("a file")
    return Setup([Run(["sample-data", "-o", "blocker/ph", "--cases", "1", "--size", "32", "32",
                       "16"])])


# ---- interruptions and concurrent writers -----------------------------------------------

BIG = (256, 256, 160)


def _big_ct(d: Path) -> None:
    save_nifti(d / "big.nii.gz", phantom(BIG)[0], np.diag([1.2, 1.2, 2.0, 1.0]))


@case("sigint_predict", "signals", "predict", "error",
      "SIGINT 2 s after segmentation starts (bundled model, 256x256x160)")
def _(d: Path, a: Assets) -> Setup:
    _big_ct(d)
    run = predict("big.nii.gz", "--report", "r.json", "--overlay", "o.png",
                  signal_=signal.SIGINT, trigger=r"(?m)^big\.nii\.gz$", delay=2.0)
    return Setup([run], ["seg.nii.gz", "r.json", "o.png"])


@case("sigterm_predict", "signals", "predict", "error",
      "SIGTERM 2 s after segmentation starts (bundled model, 256x256x160)")
def _(d: Path, a: Assets) -> Setup:
    _big_ct(d)
    run = predict("big.nii.gz", "--report", "r.json", signal_=signal.SIGTERM,
                  trigger=r"(?m)^big\.nii\.gz$", delay=2.0)
    return Setup([run], ["seg.nii.gz", "r.json"])


@case("sigint_predict_startup", "signals", "predict", "error",
      "SIGINT 1.5 s after start (while the backend loads)")
def _(d: Path, a: Assets) -> Setup:
    _big_ct(d)
    return Setup([predict("big.nii.gz", signal_=signal.SIGINT, delay=1.5)], ["seg.nii.gz"])


@case("sigterm_train", "signals", "train", "error",
      "SIGTERM 8 s after training starts; the run folder may stay (resumable), no temp files")
def _(d: Path, a: Assets) -> Setup:
    _lits(d / "data", 3)
    run = Run(["train", "--data", "data", "-o", "run", "--epochs", "5", "--steps-per-epoch",
               "200", "--batch-size", "2"], signal.SIGTERM, r"(?m)^data: ", 8.0,
              (r"^data: ", r"^epoch="), 600)
    return Setup([run], allowed=("run/*",))


@case("two_writers", "concurrency", "predict", "race",
      "two predict runs of one output at once, no --overwrite: one wins, one fails cleanly")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom((128, 128, 48))
    save_nifti(d / "ct.nii.gz", hu)
    runs = [oracle_predict(a, "ct.nii.gz") for _ in range(2)]
    return Setup(runs, ["seg.nii.gz"], like_input("seg.nii.gz", "ct.nii.gz", truth))


@case("two_writers_overwrite", "concurrency", "predict", "race",
      "two predict runs of one output at once with --overwrite: one or both succeed, "
      "a loser fails cleanly, the output is intact")
def _(d: Path, a: Assets) -> Setup:
    hu, truth = phantom((128, 128, 48))
    save_nifti(d / "ct.nii.gz", hu)
    runs = [oracle_predict(a, "ct.nii.gz", "--overwrite") for _ in range(2)]
    return Setup(runs, ["seg.nii.gz"], like_input("seg.nii.gz", "ct.nii.gz", truth), max_ok=2)


@case("two_writers_report", "concurrency", "predict", "race",
      "two runs with different -o but one shared --report, no --overwrite")
def _(d: Path, a: Assets) -> Setup:
    save_nifti(d / "ct.nii.gz", phantom((128, 128, 48))[0])
    runs = [oracle_predict(a, "ct.nii.gz", "--report", "r.json", output=f"seg{i}.nii.gz")
            for i in range(2)]
    # the winner leaves its seg*.nii.gz and r.json; either segmentation name is fine

    def one_segmentation(folder: Path) -> str | None:
        segs = sorted(p.name for p in folder.glob("seg*.nii.gz"))
        return None if len(segs) == 1 else f"{len(segs)} segmentations for one report"

    return Setup(runs, ["r.json"], all_of(json_check("r.json"), one_segmentation),
                 allowed=("seg0.nii.gz", "seg1.nii.gz"))


# --------------------------------------------------------------------------------------
# Running and judging
# --------------------------------------------------------------------------------------

_NOISE = [
    re.compile(p)
    for p in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
        r"STDERR$",
        r"^[IWEF]\d{4} [\d:.]+\s+\d+\s+\S+:\d+\] ",  # absl: I0000 00:00:1796.61 6078 port.cc:153]
        r"^To enable the following instructions: .*compiler flags\.$",
    )
]
MESSAGE_PREFIXES = ("Error: ", "Interrupted", "Terminated")
TEMPORARY = ("*.partial*", "*.tmp", "*.tmp.*", "*~", ".*.tmp*")


@dataclasses.dataclass
class Outcome:
    """What one process did."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    progress: tuple[str, ...] = ()
    signalled: bool | None = None  # None: no signal planned

    def lines(self) -> list[str]:
        """stderr's message lines: TensorFlow's C++ noise and progress labels left out."""
        progress = [re.compile(p) for p in self.progress]
        kept = []
        for line in self.stderr.splitlines():
            line = line.rstrip()
            if not line.strip() or any(p.search(line) for p in _NOISE):
                continue
            if any(p.search(line) for p in progress):
                continue
            kept.append(line)
        return kept


def ok_problem(outcome: Outcome) -> str | None:
    """Why ``outcome`` is not a clean success, or None."""
    if outcome.timed_out:
        return f"timed out after {outcome.seconds:.0f} s"
    if outcome.signalled is False:
        return "ended before the signal was sent"
    if outcome.returncode != 0:
        return f"exit {outcome.returncode}"
    if "Traceback (most recent call last)" in outcome.stderr:
        return "traceback on stderr"
    return None


def error_problem(outcome: Outcome) -> str | None:
    """Why ``outcome`` is not a clean failure (one message line, non-zero exit), or None."""
    if outcome.timed_out:
        return f"timed out after {outcome.seconds:.0f} s"
    if outcome.signalled is False:
        return "ended before the signal was sent"
    if outcome.returncode == 0:
        return "exit 0"
    if outcome.returncode is not None and outcome.returncode < 0:
        return f"killed by {signal.Signals(-outcome.returncode).name} (no handler)"
    if "Traceback (most recent call last)" in outcome.stderr:
        return "traceback on stderr"
    lines = outcome.lines()
    if len(lines) != 1:
        return f"{len(lines)} stderr lines, not 1"
    if not lines[0].startswith(MESSAGE_PREFIXES):
        return "the stderr line is not 'Error: ...' / 'Interrupted' / 'Terminated'"
    return None


def _matches(path: str, patterns: Sequence[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


def judge(
    expect: str,
    outcomes: Sequence[Outcome],
    new: Sequence[str],
    changed: Sequence[str],
    outputs: Sequence[str],
    missing: Sequence[str],
    allowed: Sequence[str] = (),
    output_problem: str | None = None,
    max_ok: int = 1,
) -> tuple[bool, str, list[str]]:
    """The verdict of a case: ``(passed, reason, files left behind)``.

    Args:
        expect: ``"ok"``, ``"error"``, ``"either"`` or ``"race"``.
        outcomes: the case's processes.
        new: paths (relative, ``/``-separated) that exist after the run and not before.
        changed: paths that existed before and were changed or removed.
        outputs: the outputs an ok outcome must create; ``missing``: those absent.
        allowed: globs of other new paths that may remain (never temporary files).
        output_problem: what the output check found wrong (None: right, or not checked).
        max_ok: for a race, how many runs may succeed (at least one must; the others must
            fail cleanly).
    """
    def left(extra: Sequence[str]) -> list[str]:
        return [p for p in new if _matches(p, TEMPORARY)
                or (p not in extra and not _matches(p, allowed))]

    if expect == "either":
        expect = "ok" if outcomes and all(o.returncode == 0 for o in outcomes) else "error"
    if expect == "error":
        leftovers = left(())
        for outcome in outcomes:
            problem = error_problem(outcome)
            if problem:
                return False, problem, leftovers
        if changed:
            return False, f"changed {changed[0]}", leftovers
        if leftovers:
            return False, "files left behind", leftovers
        return True, "", leftovers
    leftovers = left(outputs)
    if expect == "race":
        oks = [o for o in outcomes if ok_problem(o) is None]
        errors = [o for o in outcomes if error_problem(o) is None]
        if not 1 <= len(oks) <= max_ok or len(oks) + len(errors) != len(outcomes):
            codes = ", ".join(str(o.returncode) for o in outcomes)
            wanted = "one success" if max_ok == 1 else f"1 to {max_ok} successes"
            return False, f"exits {codes}: not {wanted} and clean failures", leftovers
    else:
        for outcome in outcomes:
            problem = ok_problem(outcome)
            if problem:
                return False, problem, leftovers
    if missing:
        return False, f"no {missing[0]}", leftovers
    changed = [p for p in changed if p not in outputs]
    if changed:
        return False, f"changed {changed[0]}", leftovers
    if leftovers:
        return False, "files left behind", leftovers
    if output_problem:
        return False, output_problem, leftovers
    return True, "", leftovers


@dataclasses.dataclass
class Result:
    case: Case
    outcomes: list[Outcome]
    passed: bool
    reason: str
    leftovers: list[str]
    seconds: float


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` -> (kind, size, mtime_ns, sha1) for files."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = Path(root, name)
            state[path.relative_to(folder).as_posix() + "/"] = ("dir",)
        for name in files:
            path = Path(root, name)
            rel = path.relative_to(folder).as_posix()
            try:
                stat = path.lstat()
                digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else ""
            except OSError:
                continue
            state[rel] = ("file", stat.st_size, stat.st_mtime_ns, digest)
    return state


def _new_and_changed(before: dict, after: dict) -> tuple[list[str], list[str]]:
    new = sorted(p for p in after if p not in before)
    # a new folder counts only when nothing new is inside it (an empty folder left behind)
    new = [p for p in new if not p.endswith("/") or not any(
        q != p and q.startswith(p) for q in new)]
    new = [p for p in new if not p.endswith("/")] + [p for p in new if p.endswith("/")]
    changed = sorted(p for p in before if p not in after or (
        before[p][0] == "file" and (after[p][1], after[p][3]) != (before[p][1], before[p][3])))
    return new, changed


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_processes(runs: Sequence[Run], cwd: Path, logs: Path) -> list[Outcome]:
    """Start every run at once, signal those that ask for it, wait for all."""
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    procs = []
    for i, run in enumerate(runs):
        out = open(logs / f"{i}.stdout", "w+b")  # noqa: SIM115 - closed below
        err = open(logs / f"{i}.stderr", "w+b")  # noqa: SIM115
        proc = subprocess.Popen([*CLI, *run.args], cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=_child_env(),
                                start_new_session=True)
        procs.append((run, proc, out, err, None if run.signal is None else False))
    pending_signal = {i for i, (run, *_) in enumerate(procs) if run.signal is not None}
    triggered: dict[int, float] = {}
    while any(p.poll() is None for _, p, *_ in procs):
        now = time.monotonic()
        for i in list(pending_signal):
            run, proc, out, err, _ = procs[i]
            if proc.poll() is not None:
                pending_signal.discard(i)
                continue
            if i not in triggered:
                if run.trigger is None:
                    triggered[i] = started
                else:
                    text = (logs / f"{i}.stderr").read_bytes() + (logs / f"{i}.stdout").read_bytes()
                    if re.search(run.trigger, text.decode("utf-8", "replace")):
                        triggered[i] = now
                    elif now - started > run.timeout / 2:
                        triggered[i] = now  # never seen: signal anyway
            if i in triggered and now - triggered[i] >= run.delay:
                proc.send_signal(run.signal)
                procs[i] = (run, proc, out, err, True)
                pending_signal.discard(i)
        for run, proc, *_rest in procs:
            if proc.poll() is None and now - started > run.timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
    seconds = time.monotonic() - started
    outcomes = []
    for run, proc, out, err, signalled in procs:
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        out.close()
        err.close()
        timed_out = proc.returncode == -signal.SIGKILL and seconds > run.timeout
        outcomes.append(Outcome(proc.returncode, stdout, stderr, seconds, timed_out,
                                run.progress, signalled))
    return outcomes


def run_case(case_: Case, workdir: Path, assets: Assets) -> Result:
    """Build ``case_`` in ``workdir/<id>/``, run it, judge it."""
    folder = workdir / case_.id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.monotonic()
    try:
        setup = case_.build(folder, assets)
    except Exception as error:  # noqa: BLE001 - a broken builder is a failed case
        return Result(case_, [], False, f"build failed: {type(error).__name__}: {error}", [], 0.0)
    before = snapshot(folder)
    outcomes = _run_processes(setup.runs, folder, workdir / "_logs" / case_.id)
    after = snapshot(folder)
    new, changed = _new_and_changed(before, after)
    missing = [o for o in setup.outputs if not (folder / o).exists()]
    output_problem = None
    if setup.check is not None and not missing and any(o.returncode == 0 for o in outcomes):
        try:
            output_problem = setup.check(folder)
        except Exception as error:  # noqa: BLE001
            output_problem = f"output check failed: {type(error).__name__}: {error}"
    passed, reason, leftovers = judge(case_.expect, outcomes, new, changed, setup.outputs,
                                      missing, setup.allowed, output_problem, setup.max_ok)
    return Result(case_, outcomes, passed, reason, leftovers, time.monotonic() - started)


def build_all(workdir: Path, cases: Sequence[Case] | None = None,
              assets: Assets | None = None) -> dict[str, Setup]:
    """Build every case's inputs (nothing is run); returns the setups by case id."""
    assets = assets or Assets(workdir / "_assets", create=False)
    setups = {}
    for case_ in cases or CASES:
        folder = workdir / case_.id
        folder.mkdir(parents=True, exist_ok=True)
        setups[case_.id] = case_.build(folder, assets)
    return setups


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _cell(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("|", "\\|").replace("`", "'") or " "


def table(results: Sequence[Result]) -> str:
    rows = [
        "| case | command | expect | exit | stderr lines | last stderr line | left behind | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        codes = " / ".join(str(o.returncode) for o in r.outcomes) or "-"
        counts = " / ".join(str(len(o.lines())) for o in r.outcomes) or "-"
        last = ""
        for o in reversed(r.outcomes):
            lines = o.lines()
            if lines:
                last = lines[-1]
                break
        left = ", ".join(r.leftovers[:3]) + (f" (+{len(r.leftovers) - 3})"
                                              if len(r.leftovers) > 3 else "")
        verdict = "PASS" if r.passed else f"**FAIL**: {r.reason}"
        rows.append(
            f"| `{r.case.id}` | {r.case.command} | {r.case.expect} | {codes} | {counts} | "
            f"{_cell(last)} | {_cell(left, 60)} | {_cell(verdict, 80)} |"
        )
    return "\n".join(rows)


def summary_line(results: Sequence[Result]) -> str:
    passed = sum(r.passed for r in results)
    return f"{passed} passed, {len(results) - passed} failed"


MD_INTRO = """# Bad and odd inputs

`benchmarks/bad_input_corpus.py` builds {count} bad or odd inputs of every format the package
reads and runs each through the `liverseg` CLI in a fresh folder, as a user would
(`python -m keras_liverseg.cli.main ...`): truncated and corrupt gzip, NIfTI-1 and NIfTI-2,
wrong dimensions, NaN and Inf, 2D and 4D images, huge declared sizes in tiny files, odd voxel
types and affines, label maps given as CT, empty and one-voxel volumes; DICOM series with
missing, duplicate, truncated, mixed-series and mixed-orientation slices, other modalities and
non-DICOM files; LiTS / MSD folders; `evaluate`, `train`, `export` and `sample-data` with bad
inputs and outputs; and interruptions: SIGINT and SIGTERM during `predict` and `train`, and
two writers of one output at once.

```bash
python benchmarks/bad_input_corpus.py --out-md docs/BAD_INPUTS.md   # all cases, this page
python benchmarks/bad_input_corpus.py --only 'dicom_*' --keep       # some cases, keep folders
python benchmarks/bad_input_corpus.py --list                        # the cases, nothing run
```

**The rule.** Every case ends with either

* **exit 0 and a correct result**: the expected outputs exist (a label volume with the input's
  shape and affine, uint8 labels in {{0, 1, 2}}, the phantom's liver found where the case knows
  it) and no other file is left; or
* **one line and a non-zero exit, and nothing left behind**: stderr holds one line starting
  with `Error:` (`Interrupted` / `Terminated` after a signal), no traceback, no new file
  (output, `.partial`, temporary file or empty folder), no existing file changed.

*expect* is the outcome the case asks for: `ok`, `error`, `either` (the rule allows both; the
case forbids anything else) or `race` (two writers at once: one succeeds, the other fails
cleanly, the output is good; with `--overwrite` both may succeed). TensorFlow's C++ start-up
lines and a progress bar's label are not counted in *stderr lines*. `sigterm_train` may leave
its run folder (it is resumable), never temporary files. Predict cases use a tiny oracle model
(`--weights`, liver above 100 HU, tumor above 300 HU) unless they name the bundled weights.
Signals reach `predict` 2 s after its progress label appears (segmentation has begun), `train`
8 s after its `data:` line, and, in `sigint_predict_startup`, `predict` 1.5 s after it starts.
`batch_skip_unreadable` reads `--skip-unreadable` as "skip the scans that cannot be read".

Re-run after a change with `python benchmarks/bad_input_corpus.py --out-md docs/BAD_INPUTS.md`
(about 6 minutes on 2 CPU cores; `--jobs N` runs N cases at once).

Generated {when} on `{commit}`, {seconds:.0f} s with `--jobs {jobs}`: **{summary}**.

"""


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def write_markdown(path: Path, results: Sequence[Result], seconds: float, jobs: int) -> None:
    text = MD_INTRO.format(count=len(results), when=time.strftime("%Y-%m-%d"), commit=_commit(),
                           seconds=seconds, jobs=jobs, summary=summary_line(results))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + table(results) + "\n\n" + summary_line(results) + "\n",
                    encoding="utf-8")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def select(patterns: Sequence[str] | None) -> list[Case]:
    """The cases whose id matches one of ``patterns`` (globs; a plain word: a substring)."""
    if not patterns:
        return list(CASES)
    words = [w for p in patterns for w in p.split(",") if w]
    return [c for c in CASES if any(
        fnmatch.fnmatch(c.id, w) if any(ch in w for ch in "*?[") else w in c.id for w in words)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-md", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--only", action="append", metavar="PATTERN",
                        help="run the cases whose id matches (glob, or a substring; repeatable)")
    parser.add_argument("--workdir", type=Path, help="build the cases here (default: a temp dir)")
    parser.add_argument("--jobs", type=int, default=1, help="cases run in parallel [1]")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when cases fail")
    args = parser.parse_args(argv)

    cases = select(args.only)
    if args.list:
        for c in cases:
            print(f"{c.id:34s} {c.category:13s} {c.command:12s} {c.expect:7s} {c.about}")
        print(f"{len(cases)} cases")
        return 0
    if not cases:
        print(f"no case matches {args.only}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="liverseg-corpus-"))
    workdir.mkdir(parents=True, exist_ok=True)
    assets = Assets(workdir / "_assets")
    started = time.monotonic()
    _ = assets.oracle  # built once, before the cases run in parallel
    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {pool.submit(run_case, c, workdir, assets): c for c in cases}
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results.append(result)
            status = "PASS" if result.passed else f"FAIL ({result.reason})"
            print(f"[{len(results)}/{len(cases)}] {result.case.id}: {status} "
                  f"{result.seconds:.1f} s", file=sys.stderr, flush=True)
    order = {c.id: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order[r.case.id])
    seconds = time.monotonic() - started
    print(table(results))
    print()
    print(f"{len(results)} cases in {seconds:.0f} s (--jobs {args.jobs})")
    print(summary_line(results))
    if args.out_md:
        write_markdown(args.out_md, results, seconds, args.jobs)
    if args.keep or args.workdir:
        print(f"case folders kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = sum(not r.passed for r in results)
    return 0 if args.no_fail or not failed else 1


if __name__ == "__main__":
    sys.exit(main())

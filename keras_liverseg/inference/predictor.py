"""``predict_volume``: segment a CT volume slice by slice and return labels on its grid.

Pipeline (see docs of each step's module):

1. load the scan (NIfTI, DICOM series folder, or array + affine) -> HU volume + affine;
2. bring it to the canonical orientation (:func:`keras_liverseg.io.to_canonical`, an
   exact axis permutation/flip);
3. for each batch of axial slices: stack ``context_slices`` neighbours as channels (edge
   slices replicated, channels ordered from inferior to superior), bring them to the
   model's in-plane geometry (linear): resized to its input size, or, for a model with a
   ``pixel_spacing``, resampled to that spacing and centred on a canvas of at least its
   input size (:mod:`keras_liverseg.io.slices`); predict, take the probabilities back to
   the slice grid (linear), argmax. With ``tta``, the same weights also read the slices resized to a
   7/6 larger input (:func:`tta_input_size`: 224x224 for a 192x192 model), and the two
   predictions' probabilities, each resized back, are averaged;
4. for a cascade (a model with a ``second_stage``, such as the default ``unet_sharp``):
   cut the first stage's liver region (its largest liver component, framed by the second
   stage's :class:`~keras_liverseg.data.roi.LiverROI`) and segment that box again, slice
   by slice as in step 3, with the second model; inside the box its class probabilities,
   averaged with the first stage's (weight ``second_stage_share``), give the labels, and
   everything outside it is background;
   A 3D model (the V-Net family) reads the volume instead: resampled to its voxel
   spacing, window by window (:mod:`keras_liverseg.inference.volumetric`), probabilities
   resampled back; no survey, test-time augmentation or second stage;
5. optionally (``crf``), refine the probabilities slice by slice with a fully connected
   CRF (:mod:`keras_liverseg.inference.crf`) and take the labels again;
6. post-process (:mod:`keras_liverseg.inference.postprocess`);
7. undo the reorientation: labels of exactly the input's shape and affine.

Only a batch of slices is ever resampled at once; the volume-sized arrays are the input,
the uint8 labels, the float16 tumor probability (for the lesions' confidence:
post-processing's ``min_lesion_prob`` and the report's mean and max per lesion) and, on
request or for a cascade that averages its stages, the float16 probabilities of every class
(the tumor probability is then a view of them): also with ``crf``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.affines import voxel_sizes

from keras_liverseg.data.roi import LiverROI
from keras_liverseg.inference import slice_range
from keras_liverseg.inference.crf import CRFOptions, refine_volume
from keras_liverseg.inference.loading import LoadedModel, ModelLoadError, as_loaded
from keras_liverseg.inference.postprocess import PostprocessOptions, postprocess_labels
from keras_liverseg.inference.report import LABELS, ReportFacts, scan_report
from keras_liverseg.inference.threads import one_blas_thread
from keras_liverseg.io.nifti import write_labels
from keras_liverseg.io.orientation import from_canonical, to_canonical
from keras_liverseg.io.scan import Scan, load_scan, scan_from_array
from keras_liverseg.io.slices import (
    canvas_size,
    linear_matrix,
    linear_weights,
    place,
    slice_stack,
    spacing_grid,
    unplace,
)

__all__ = [
    "LABELS",
    "TTA_SCALE",
    "Segmentation",
    "liver_region",
    "predict_slices",
    "predict_volume",
    "prepare_tta",
    "readings",
    "tta_input_size",
]

NAN_FILL_HU = -1024.0
TTA_SCALE = Fraction(7, 6)
"""Test-time augmentation reads the slices a second time at this larger input scale.

A second scale is what the models saw in training (the sampler's random affine scales
slices by 0.85-1.15, and phantoms vary the field of view), unlike a left-right flip: the
liver lies on one side, and a flipped slice is not one the models have seen (``tta`` used
to flip, which lost most of the liver on some validation phantoms; see the CHANGELOG).
"""
Progress = Callable[[int, int], None]


@dataclass
class Segmentation:
    """The result of :func:`predict_volume`.

    Attributes:
        labels: uint8 label map (0 background, 1 liver, 2 tumor) of exactly the input's
            shape, on the input's voxel grid.
        affine: voxel-to-world (RAS+, mm) affine of ``labels`` (the input's).
        report: volumes, lesions, model, versions, timing (see
            :mod:`keras_liverseg.inference.report`); JSON-serialisable.
        probabilities: with ``return_probabilities=True``, float16 array of the input's
            spatial shape plus a class axis (the model's classes, ``report["model"]
            ["classes"]``), before post-processing (for a cascade: inside the liver
            region the second stage's, averaged with the first stage's by
            ``second_stage_share``; outside it the first stage's); else None.
        header: the input NIfTI header whose geometry :meth:`save` copies (None for DICOM
            or array input: then qform and sform are both set from ``affine``).
    """

    labels: np.ndarray
    affine: np.ndarray
    report: dict[str, Any]
    probabilities: np.ndarray | None = None
    header: Any = field(default=None, repr=False)

    @property
    def liver_mask(self) -> np.ndarray:
        """Liver as an organ, tumor included (``labels >= 1``)."""
        return self.labels >= 1

    @property
    def tumor_mask(self) -> np.ndarray:
        """Tumor voxels (``labels == 2``)."""
        return self.labels == 2

    def to_nifti(self):
        """The labels as a ``nibabel.Nifti1Image`` with the input's geometry."""
        import nibabel as nib

        from keras_liverseg.io.nifti import label_header

        header = label_header(self.header, self.affine, self.labels.shape)
        klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        return klass(self.labels, None, header=header)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the labels as ``.nii``/``.nii.gz`` (atomically) with the input's geometry."""
        return write_labels(self.labels, path, self.affine, self.header)

    def save_report(self, path: str | os.PathLike) -> Path:
        """Write :attr:`report` as indented JSON (atomically)."""
        from keras_liverseg.inference.report import write_report

        return write_report(self.report, path)


def _as_scan(path_or_array: Any, affine: np.ndarray | None) -> Scan:
    if isinstance(path_or_array, Scan):
        if affine is not None:
            raise ValueError("pass affine only with an array; a Scan has its own")
        return path_or_array
    if isinstance(path_or_array, str | os.PathLike):
        if affine is not None:
            raise ValueError("pass affine only with an array; a file has its own")
        return load_scan(path_or_array)
    return scan_from_array(path_or_array, affine)




def _predict_batch(model, batch: np.ndarray, batch_size: int) -> np.ndarray:
    count = batch.shape[0]
    if count < batch_size:  # keep one input shape: no retracing for the last batch
        pad = np.zeros((batch_size - count, *batch.shape[1:]), dtype=batch.dtype)
        batch = np.concatenate([batch, pad])
    return np.asarray(model.predict_on_batch(batch), dtype=np.float32)[:count]


def to_slice_grid(
    probs: np.ndarray, grid: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """A batch of the model's probabilities ``(b, H, W, K)`` on its canvas, cut to the
    slice ``grid`` (:func:`~keras_liverseg.io.slices.unplace`) and resized linearly to the
    slice's ``size`` (rows, columns), as float32 (a view of ``(b, rows, K, columns)``
    memory when resized).

    The half-pixel rule of :func:`~keras_liverseg.io.slices.resize_axes`, equal to it to
    float rounding, without the backend (a prediction from a cached ONNX graph never
    starts Keras): the columns of every row and class by one matrix product with
    :func:`~keras_liverseg.io.slices.linear_matrix`, then the rows as a blend of two rows
    each, whole rows at a time. Three times faster than NumPy's gathers along both axes on
    a batch of four 512 x 512 slices, and 1.5 times the time of TensorFlow's resize (7
    against 4 ms; issue 24: the resize back was a sixth of ``timing_s.predict`` before).
    """
    probs = unplace(probs, grid)
    b, h, w, k = probs.shape
    rows, cols = (int(n) for n in size)
    if (h, w) == (rows, cols):
        return np.asarray(probs, dtype=np.float32)
    wide = np.ascontiguousarray(probs.transpose(0, 1, 3, 2), dtype=np.float32)  # b,h,K,w
    if w != cols:
        wide = wide.reshape(-1, w) @ linear_matrix(w, cols).T
    wide = wide.reshape(b, h, k, cols)
    if h != rows:
        i0, i1, weight = linear_weights(h, rows)
        low = wide[:, i0]
        wide = wide[:, i1]
        wide -= low
        wide *= weight[None, :, None, None]
        wide += low
    return wide.transpose(0, 1, 3, 2)


def tta_input_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """The second input size of test-time augmentation: :data:`TTA_SCALE` times
    ``input_size``, rounded up to a multiple of 16 (the models' poolings divide it)."""
    return tuple(math.ceil(n * TTA_SCALE / 16) * 16 for n in input_size)


def prepare_tta(loaded: LoadedModel) -> None:
    """Build the test-time-augmentation twins of ``loaded`` and of its second stage now
    (they are cached), so that a model that cannot read another input size fails before
    any scan is read.

    Raises:
        keras_liverseg.inference.loading.ModelLoadError: the model cannot be rebuilt.
    """
    if loaded.preprocessing.volumetric:
        raise ModelLoadError(f"--tta reads axial slices at a second scale; {loaded.name!r} "
                             "is a 3D model")
    stage: LoadedModel | None = loaded
    while stage is not None:
        stage.runner_at(tta_input_size(stage.preprocessing.input_size))
        stage = stage.second_stage


# The CPU defaults, chosen with benchmarks/bench_predict.py (README, "Other benchmarks"):
# 4 slices of a 2D model per call, one 3D patch per call (as nnU-Net predicts; two patches
# were 1.2 times slower and took 1.5 times the memory for V-Net# on a 2-core host).
PREDICT_BATCH_SLICES = 4
PREDICT_BATCH_PATCHES = 1

FLOAT16_TINY = float(np.finfo(np.float16).tiny)


def _flush_subnormal(probs: np.ndarray) -> np.ndarray:
    """Probabilities below float16's smallest normal number (6.1e-5) set to 0, in place:
    NumPy converts values that would be float16 subnormals about five times slower than
    others, and a softmax's background classes are mostly such values."""
    probs[probs < FLOAT16_TINY] = 0.0
    return probs


def slice_major(shape: tuple[int, int, int], dtype) -> np.ndarray:
    """An empty ``(rows, cols, depth)`` array whose memory holds one axial slice after the
    other (a transposed view of a ``(depth, rows, cols)`` array): the predictor writes a
    batch of whole slices at a time, which is then one contiguous block instead of a
    scatter over the last axis."""
    rows, cols, depth = shape
    return np.empty((depth, rows, cols), dtype).transpose(1, 2, 0)


def _labels_of(probs: np.ndarray) -> np.ndarray:
    """uint8 labels of class probabilities (last axis): argmax, or > 0.5 for one class.
    Three classes (the zoo's) take two comparisons instead of ``np.argmax``, which is
    several times slower over a last axis of 3; ties go to the lower class, as argmax's."""
    if probs.shape[-1] == 1:
        return (probs[..., 0] > 0.5).astype(np.uint8)
    if probs.shape[-1] == 3:
        p0, p1, p2 = probs[..., 0], probs[..., 1], probs[..., 2]
        labels = (p1 > p0).view(np.uint8)
        np.copyto(labels, np.uint8(2), where=p2 > np.maximum(p0, p1))
        return labels
    return np.argmax(probs, axis=-1).astype(np.uint8)


@dataclass(frozen=True)
class Reading:
    """One way of reading a scan's slices: the model, the slice grid it reads a slice on
    (``grid``, rows x columns) and the canvas that grid is centred on (the model's input)."""

    model: Any
    grid: tuple[int, int]
    canvas: tuple[int, int]


def readings(
    loaded: LoadedModel,
    shape: tuple[int, int],
    voxel_spacing: tuple[float, float] | None,
    tta: bool = False,
) -> list[Reading]:
    """How ``loaded`` reads slices of ``shape`` (rows, columns) with ``voxel_spacing`` mm
    pixels: at its input size, and with ``tta`` also at :data:`TTA_SCALE` times it (for a
    model with a ``pixel_spacing``: at that spacing, and at it divided by the scale).

    Raises:
        ValueError: the model has a ``pixel_spacing`` and ``voxel_spacing`` is None.
    """
    pre = loaded.preprocessing
    if pre.pixel_spacing is not None and voxel_spacing is None:
        raise ValueError(f"model {loaded.name!r} reads slices at {pre.pixel_spacing} mm "
                         "pixels: pass the volume's voxel_spacing")
    out = []
    for scale in (1, TTA_SCALE) if tta else (1,):
        size = tuple(pre.input_size) if scale == 1 else tta_input_size(pre.input_size)
        if pre.pixel_spacing is None:
            grid = canvas = size
        else:
            grid = spacing_grid(shape, voxel_spacing, pre.pixel_spacing / float(scale))
            canvas = canvas_size(grid, size)
        out.append(Reading(loaded.runner_at(canvas), grid, canvas))
    return out


def predict_slices(
    loaded: LoadedModel,
    volume_c: np.ndarray,
    *,
    batch_size: int = 4,
    tta: bool = False,
    keep_probabilities: bool = False,
    progress: Progress | None = None,
    tumor_out: np.ndarray | None = None,
    voxel_spacing: tuple[float, float] | None = None,
    survey_step: int = 1,
    read_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predict the axial slices of a canonical volume (``volume_c[:, :, k]``): every one,
    or with ``survey_step`` > 1 only those the liver needs
    (:func:`~keras_liverseg.inference.slice_range.read_liver_slices`: a survey of every
    ``survey_step``-th slice, then the run of slices that has liver); the slices not read
    are background (probability 1).

    ``tumor_out``, an array of ``volume_c``'s shape (a view will do), receives the tumor
    probability (class 2, the same probabilities the argmax reads) without keeping the
    other classes. ``voxel_spacing``: the in-plane voxel sizes (mm) of ``volume_c``'s
    rows and columns, needed by a model with a ``pixel_spacing`` (:func:`readings`).
    ``read_out``, a bool array of the volume's depth, receives which slices were read.

    Returns:
        ``(labels, probabilities)``: uint8 argmax labels of ``volume_c``'s shape, and
        float16 probabilities (``volume_c.shape + (num_classes,)``) or None.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pre = loaded.preprocessing
    rows, cols, depth = volume_c.shape
    labels = slice_major((rows, cols, depth), np.uint8)
    labels[...] = 0
    probabilities = None
    if keep_probabilities:
        probabilities = np.empty((rows, cols, depth, pre.num_classes), dtype=np.float16)
    readers = readings(loaded, (rows, cols), voxel_spacing, tta)

    def read(ks: np.ndarray) -> np.ndarray:
        probs = None  # the mean of the readers' (b, X, Y, K) probabilities
        for reader in readers:
            batch = slice_stack(volume_c, ks, pre.context_slices, reader.grid, NAN_FILL_HU)
            batch = place(batch, reader.canvas, NAN_FILL_HU)
            out = _predict_batch(reader.model, batch, batch_size)  # (b, H, W, K)
            out = to_slice_grid(out, reader.grid, (rows, cols))
            probs = out if probs is None else probs + out
        if len(readers) > 1:
            probs /= len(readers)
        found = _labels_of(probs)
        # a run of slices is written as a slice of the last axis (twice as fast as a list)
        where = slice(ks[0], ks[-1] + 1) if ks[-1] - ks[0] == len(ks) - 1 else ks
        labels[:, :, where] = found.transpose(1, 2, 0)
        # only the classes kept are flushed (in place): the tumor's alone, by default
        if probabilities is not None:
            probabilities[:, :, where] = _flush_subnormal(probs).transpose(1, 2, 0, 3)
        if tumor_out is not None:
            tumor = probs[..., 2] if probabilities is not None else _flush_subnormal(
                probs[..., 2])
            tumor_out[:, :, where] = tumor.transpose(1, 2, 0)
        return found.reshape(len(ks), -1).any(axis=1)

    with one_blas_thread():  # (see keras_liverseg.inference.threads)
        done = slice_range.read_liver_slices(depth, survey_step, read, batch_size, progress)
    if not done.all():  # the slices not read are background
        skipped = ~done
        if probabilities is not None:
            probabilities[:, :, skipped] = 0
            probabilities[:, :, skipped, 0] = 1
        if tumor_out is not None:
            tumor_out[:, :, skipped] = 0
    if read_out is not None:
        read_out[...] = done
    return labels, probabilities


def liver_region(
    labels_c: np.ndarray, roi: LiverROI | None = None
) -> tuple[slice, slice, slice] | None:
    """The box a cascade's second stage reads: the largest liver component of the first
    stage's labels, framed by ``roi`` (default :class:`~keras_liverseg.data.roi.LiverROI`);
    None when there is no liver."""
    liver = postprocess_labels(labels_c, 1.0, PostprocessOptions(True, False, False)) > 0
    return (roi or LiverROI()).box(liver)


def _second_stage(
    loaded: LoadedModel,
    volume_c: np.ndarray,
    labels_c: np.ndarray,
    probs_c: np.ndarray | None,
    *,
    batch_size: int,
    tta: bool,
    progress: Progress | None,
    tumor_c: np.ndarray | None = None,
    voxel_spacing: tuple[float, float] | None = None,
) -> tuple[slice, slice, slice] | None:
    """Re-segment the first stage's liver region with ``loaded.second_stage``, in place
    (step 4). ``probs_c`` holds the first stage's probabilities (needed when
    ``loaded.second_stage_share < 1``); inside the box they become the average.
    ``tumor_c`` (used without ``probs_c``) receives the second stage's tumor probability
    inside the box (outside it, where every label becomes background, it keeps the first
    stage's).

    Returns the box (canonical voxel slices), or None when the first stage found no liver
    (its labels are then kept).
    """
    stage, share = loaded.second_stage, float(loaded.second_stage_share)
    box = liver_region(labels_c, stage.liver_roi)
    if box is None:
        return None
    depth = volume_c.shape[2]

    def shifted(done: int, total: int) -> None:
        progress(depth + done, depth + total)

    labels, probs = predict_slices(
        stage,
        volume_c[box],
        batch_size=batch_size,
        tta=tta,
        keep_probabilities=probs_c is not None,
        progress=shifted if progress is not None else None,
        tumor_out=tumor_c[box] if tumor_c is not None and probs_c is None else None,
        voxel_spacing=voxel_spacing,
    )
    if share < 1.0:
        probs = share * probs.astype(np.float32) + (1.0 - share) * probs_c[box]
        labels = _labels_of(probs)
    labels_c[...] = 0
    labels_c[box] = labels
    if probs_c is not None:
        probs_c[box] = probs
    return box


def _postprocess_options(
    postprocess: bool | PostprocessOptions, loaded: LoadedModel
) -> PostprocessOptions:
    if isinstance(postprocess, PostprocessOptions):
        return postprocess
    if not postprocess:
        return PostprocessOptions.off()
    return loaded.postprocess_options()


def predict_volume(
    model: Any,
    path_or_array: str | os.PathLike | np.ndarray | Scan,
    affine: np.ndarray | None = None,
    *,
    batch_size: int | None = None,
    tta: bool = False,
    postprocess: bool | PostprocessOptions = True,
    return_probabilities: bool = False,
    progress: Progress | None = None,
    report_facts: ReportFacts | None = None,
    all_slices: bool = False,
    crf: CRFOptions | None = None,
) -> Segmentation:
    """Segment the liver and liver tumors in a CT volume.

    Args:
        model: a Keras model following docs/CONTRACTS.md (first layer HUWindow, output
            ``"mask"``), a zoo name (loaded with its default weights), or a
            :class:`~keras_liverseg.inference.loading.LoadedModel`.
        path_or_array: a ``.nii``/``.nii.gz`` file, a folder holding one DICOM series, a
            :class:`keras_liverseg.io.Scan`, or an array of raw HU (3D, or 4D with a
            trailing axis of length 1).
        affine: voxel-to-world (RAS+, mm) affine of an array input; identity if None.
        batch_size: axial slices per model call (for a 3D model, patches per call).
            None: :data:`PREDICT_BATCH_SLICES` for a 2D model,
            :data:`PREDICT_BATCH_PATCHES` for a 3D one.
        tta: also read the slices at a 7/6 larger input size (:func:`tta_input_size`)
            and average the probabilities (about 2.3 times the prediction time).
        postprocess: True (the default steps, with the model's own smallest lesion and
            lesion growth, :meth:`LoadedModel.postprocess_options`: the zoo entry's for
            bundled weights, else none), False (none) or a
            :class:`~keras_liverseg.inference.postprocess.PostprocessOptions`.
        return_probabilities: keep float16 class probabilities on the input grid (costs
            ``2 * num_classes`` bytes per voxel).
        progress: called as ``progress(slices_done, slices_total)`` after every batch.
        report_facts: the caller's facts for the report
            (:class:`~keras_liverseg.inference.report.ReportFacts`: output paths, more
            options, the time it took to read the scan and load the model).
        all_slices: read every axial slice (a 3D model always reads the whole volume,
            :mod:`keras_liverseg.inference.volumetric`). By default the model surveys every slice
            :data:`~keras_liverseg.inference.slice_range.SURVEY_MM` apart and reads only
            the run of slices that has liver, bounded by liver-free ones
            (:mod:`keras_liverseg.inference.slice_range` says why that gives the same
            post-processed labels); the report's ``slices_read`` says how many it read.
        crf: refine the class probabilities with this fully connected CRF before the
            argmax and post-processing (seed 003's section 4.1.4,
            :mod:`keras_liverseg.inference.crf`); the refined probabilities are also the
            lesions' confidence. Keeps the float16 probabilities of every class
            (``2 * num_classes`` bytes per voxel). None (the default): no CRF.

    Returns:
        A :class:`Segmentation` with labels of exactly the input's shape and affine.

    Raises:
        keras_liverseg.io.InputError: unreadable or unusable input.
        keras_liverseg.inference.loading.ModelLoadError: a zoo name without weights; with
            ``tta``, a model that cannot be rebuilt for the second input size (call
            :func:`prepare_tta` first to find out before any work).

    Example:
        >>> seg = keras_liverseg.predict_volume(model, "ct.nii.gz")
        >>> seg.save("ct_seg.nii.gz"); seg.report["liver_volume_ml"]
    """
    started = time.perf_counter()
    scan = _as_scan(path_or_array, affine)
    loaded = as_loaded(model)
    for message in scan.warnings:
        warnings.warn(f"{scan.source}: {message}", UserWarning, stacklevel=2)
    timing = {"load": time.perf_counter() - started}

    tick = time.perf_counter()
    volume_c, affine_c, reorientation = to_canonical(scan.volume, scan.affine)
    spacing_c = tuple(float(v) for v in voxel_sizes(affine_c))
    if not 0.0 <= loaded.second_stage_share <= 1.0:
        raise ValueError(
            f"second_stage_share must be in [0, 1], got {loaded.second_stage_share}"
        )
    averages = loaded.second_stage is not None and loaded.second_stage_share < 1.0
    keep = return_probabilities or averages or crf is not None
    # the tumor probability before the argmax, for the lesion confidence (post-processing's
    # min_lesion_prob, the report's mean/max per lesion): a view of the kept probabilities,
    # else the one class written aside by predict_slices (2 bytes a voxel)
    has_tumor = loaded.preprocessing.num_classes >= 3
    tumor_c = slice_major(volume_c.shape, np.float16) if has_tumor and not keep else None
    depth = volume_c.shape[2]
    read = np.zeros(depth, dtype=bool)
    if batch_size is None:
        volumetric = loaded.preprocessing.volumetric
        batch_size = PREDICT_BATCH_PATCHES if volumetric else PREDICT_BATCH_SLICES
    if loaded.preprocessing.volumetric:  # a 3D model: sliding window over the volume
        if tta:
            raise ValueError(f"tta reads axial slices at a second scale; {loaded.name!r} is "
                             "a 3D model")
        from keras_liverseg.inference.volumetric import predict_volumetric

        step = 1
        with one_blas_thread():
            labels_c, probs_c = predict_volumetric(
                loaded, volume_c, spacing_c, batch_size=batch_size,
                keep_probabilities=keep, tumor_out=tumor_c, progress=progress)
        read[:] = True
    else:
        step = 1 if all_slices else slice_range.survey_step(depth, spacing_c[2])
        labels_c, probs_c = predict_slices(
            loaded,
            volume_c,
            batch_size=batch_size,
            tta=tta,
            keep_probabilities=keep,
            progress=progress,
            tumor_out=tumor_c,
            voxel_spacing=spacing_c[:2],
            survey_step=step,
            read_out=read,
        )
    timing["predict"] = time.perf_counter() - tick
    if loaded.second_stage is not None:
        tick = time.perf_counter()
        _second_stage(loaded, volume_c, labels_c, probs_c,
                      batch_size=batch_size, tta=tta, progress=progress, tumor_c=tumor_c,
                      voxel_spacing=spacing_c[:2])
        timing["predict_second_stage"] = time.perf_counter() - tick
    if crf is not None:
        tick = time.perf_counter()
        for k in refine_volume(probs_c, volume_c, spacing_c[:2], crf,
                               hu_window=loaded.preprocessing.hu_window):
            labels_c[:, :, k] = _labels_of(probs_c[:, :, k])
        timing["crf"] = time.perf_counter() - tick
    if has_tumor and tumor_c is None:
        tumor_c = probs_c[..., 2]
        if not return_probabilities:  # the other classes go
            tumor_c = np.ascontiguousarray(tumor_c)
    if not return_probabilities:
        probs_c = None

    tick = time.perf_counter()
    options = _postprocess_options(postprocess, loaded)
    voxel_mm3 = float(abs(np.linalg.det(affine_c[:3, :3])))
    if options.enabled:
        labels_c = postprocess_labels(labels_c, voxel_mm3, options, inplace=True,
                                      image=volume_c, spacing=spacing_c,
                                      tumor_prob=tumor_c)
    timing["postprocess"] = time.perf_counter() - tick

    # a view: the slice-major labels' memory holds the file's axial slices one after the
    # other, which a NIfTI writer copies ten times faster than a C-ordered copy's (whose
    # making costs as much again)
    labels3d = from_canonical(labels_c, reorientation)
    del labels_c
    probabilities = tumor = None
    if probs_c is not None:
        probabilities = np.ascontiguousarray(from_canonical(probs_c, reorientation))
        del probs_c, tumor_c
        if has_tumor:
            tumor = probabilities[..., 2]
    elif tumor_c is not None:
        tumor = from_canonical(tumor_c, reorientation)  # a view
    slices = {"read": int(read.sum()), "total": depth, "survey_step": step}
    report = scan_report(scan, reorientation, labels3d, model=loaded.describe(),
                         batch_size=batch_size, tta=tta, postprocess=options, timing=timing,
                         started=started, facts=report_facts, tumor_prob=tumor,
                         slices_read=slices,
                         crf=crf.to_dict() if crf is not None else None)
    return Segmentation(
        labels=labels3d.reshape(scan.shape),
        affine=scan.affine.copy(),
        report=report,
        probabilities=probabilities,
        header=scan.header,
    )

"""Sliding-window inference of the 3D models (:mod:`keras_liverseg.inference.sliding_window`).

Fake models with a ``predict_on_batch`` whose output is a known function of the patch make
the expected results exact: a per-voxel model must give the model applied to the whole
volume, and a model that looks at its whole patch must give what a naive full-volume
accumulation (written here) gives.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from keras_liverseg.inference import sliding_window as sw
from keras_liverseg.inference.sliding_window import (
    accumulator_bytes,
    gaussian_importance,
    patch_starts,
    sliding_window_probabilities,
)

RNG = np.random.default_rng(11)
PATCH = (16, 16, 16)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def per_voxel(hu: np.ndarray) -> np.ndarray:
    """Background / liver / tumor probabilities of each voxel's HU alone."""
    hu = hu.astype(np.float64)
    return softmax(np.stack([np.zeros_like(hu), (hu - 100) / 30, (hu - 300) / 15], -1))


class FakeModel:
    """``predict_on_batch`` of a function of the patch; records the batch sizes it saw."""

    def __init__(self, function=None, patch=PATCH, keep_inputs=False):
        self.function = function or (lambda batch: per_voxel(batch[..., 0]))
        self.keep_inputs = keep_inputs
        self.input_shape = (None, *patch, 1)
        self.batch_sizes: list[int] = []
        self.inputs: list[np.ndarray] = []

    def predict_on_batch(self, batch):
        self.batch_sizes.append(len(batch))
        if self.keep_inputs:
            self.inputs.append(batch.copy())
        return self.function(batch).astype(np.float32)


def in_context(batch: np.ndarray) -> np.ndarray:
    """A model whose output at a voxel depends on where it lies in the patch and on the
    whole patch (its mean): overlapping windows disagree, so the weighting shows."""
    hu = batch[..., 0].astype(np.float64)
    d, h, w = (np.arange(n) / n for n in hu.shape[1:])
    ramp = 2.0 * d[:, None, None] - h[None, :, None] + 0.5 * w[None, None, :]
    mean = hu.mean(axis=(1, 2, 3), keepdims=True) / 200
    return softmax(np.stack([np.zeros_like(hu), (hu - 100) / 60 + ramp, mean - ramp], -1))


def ct(shape, low=-300.0, high=500.0):
    return RNG.uniform(low, high, size=shape).astype(np.float32)


def naive(model, volume, patch, overlap=0.5, pad_hu=-1024.0):
    """Full-volume accumulation: pad the (Z, X, Y) volume centred to at least the patch,
    add every window's Gaussian-weighted probabilities, divide, crop, back to (X, Y, Z)."""
    zxy = volume.transpose(2, 0, 1)
    before = [max(0, p - n) // 2 for n, p in zip(zxy.shape, patch, strict=True)]
    after = [max(0, p - n) - b for n, p, b in zip(zxy.shape, patch, before, strict=True)]
    padded = np.pad(zxy, list(zip(before, after, strict=True)), constant_values=pad_hu)
    sums = weights = 0.0
    gauss = gaussian_importance(patch).astype(np.float64)
    starts = [patch_starts(n, p, overlap) for n, p in zip(padded.shape, patch, strict=True)]
    for z in starts[0]:
        for x in starts[1]:
            for y in starts[2]:
                box = tuple(slice(s, s + p) for s, p in zip((z, x, y), patch, strict=True))
                probs = model.function(padded[box][None, ..., None])[0]
                full = np.zeros((*padded.shape, probs.shape[-1]))
                full[box] = probs * gauss[..., None]
                sums = sums + full
                w = np.zeros(padded.shape)
                w[box] = gauss
                weights = weights + w
    probs = sums / weights[..., None]
    crop = tuple(slice(b, b + n) for b, n in zip(before, zxy.shape, strict=True))
    return probs[crop].transpose(1, 2, 0, 3)


def assert_labels_match(labels, probs, atol=1e-4):
    """``labels`` are ``probs``' argmax wherever the top two classes are ``atol`` apart."""
    top2 = np.sort(probs, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > atol
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(labels[clear], np.argmax(probs, -1)[clear])


# --- patch_starts -------------------------------------------------------------------------


def nnunet_steps(size: int, patch: int, overlap: float) -> list[int]:
    """nnU-Net's ``compute_steps_for_sliding_window`` along one axis."""
    target = patch * (1 - overlap)
    count = int(np.ceil((size - patch) / target)) + 1
    actual = (size - patch) / (count - 1) if count > 1 else 0
    return [int(np.round(actual * i)) for i in range(count)]


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.3, 0.75, 0.9])
@pytest.mark.parametrize("patch", [1, 7, 16, 64])
def test_patch_starts_cover_the_axis_with_the_overlap(patch, overlap):
    for size in range(patch, 4 * patch + 9):
        starts = patch_starts(size, patch, overlap)
        assert starts[0] == 0 and starts[-1] == size - patch
        gaps = np.diff(starts)
        assert (gaps >= 1).all()  # sorted, distinct
        wanted = min(patch * overlap, patch - 1)  # a step is at least a voxel
        assert (patch - gaps >= wanted - 1e-9).all()  # at least the overlap
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + patch] = True
        assert covered.all()
        step = max(1, math.floor(patch * (1 - overlap) + 1e-9))
        assert len(starts) == math.ceil((size - patch) / step) + 1  # the fewest windows


@pytest.mark.parametrize(("patch", "overlap"), [(16, 0.5), (64, 0.5), (128, 0.5), (64, 0.25)])
def test_patch_starts_are_nnunets_for_a_whole_step(patch, overlap):
    for size in range(patch, 5 * patch):
        assert patch_starts(size, patch, overlap) == nnunet_steps(size, patch, overlap)
    assert patch_starts(110, 64, 0.5) == [0, 23, 46]  # nnU-Net's own example


def test_patch_starts_of_an_axis_no_longer_than_the_patch():
    assert patch_starts(16, 16, 0.5) == [0]
    assert patch_starts(5, 16, 0.5) == [0]
    assert patch_starts(1, 16, 0.9) == [0]
    for bad in [(0, 16, 0.5), (16, 0, 0.5), (32, 16, 1.0), (32, 16, -0.1)]:
        with pytest.raises(ValueError):
            patch_starts(*bad)


# --- gaussian_importance ------------------------------------------------------------------


@pytest.mark.parametrize("patch", [(16, 16, 16), (8, 32, 24), (15, 9, 7), (1, 4, 5)])
@pytest.mark.parametrize("sigma_scale", [1 / 8, 1 / 20, 1.0])
def test_gaussian_importance(patch, sigma_scale):
    g = gaussian_importance(patch, sigma_scale)
    assert g.shape == patch and g.dtype == np.float32
    assert g.max() == 1.0 and g.min() > 0
    for axis in range(3):  # symmetric, largest at the centre
        np.testing.assert_array_equal(g, np.flip(g, axis))
    centre = tuple(n // 2 for n in patch)
    assert g[centre] == 1.0


def test_gaussian_importance_is_nnunets_for_an_odd_patch():
    """For an odd patch, nnU-Net's centre voxel is the centre: the same map as its
    ``compute_gaussian`` (a filtered delta), zeros beyond the cut-off included."""
    from scipy.ndimage import gaussian_filter

    for patch, scale in [((15, 9, 7), 1 / 8), ((21, 13, 9), 1 / 16)]:
        delta = np.zeros(patch)
        delta[tuple(n // 2 for n in patch)] = 1
        ref = gaussian_filter(delta, [n * scale for n in patch], 0, mode="constant", cval=0)
        ref = ref / ref.max()
        ref[ref == 0] = ref[ref != 0].min()
        np.testing.assert_allclose(gaussian_importance(patch, scale), ref, rtol=1e-5)
    assert (gaussian_importance((21, 13, 9), 1 / 16) == gaussian_importance(
        (21, 13, 9), 1 / 16).min()).sum() > 1  # the cut-off was reached


# --- sliding_window_probabilities ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(37, 29, 23), (40, 10, 50), (12, 20, 7), (16, 16, 16)])
def test_a_per_voxel_model_gives_the_model_on_the_whole_volume(shape):
    """Every window says the same about a voxel, so any correct weighting gives exactly
    the model's per-voxel output, on every voxel of a volume that is not a multiple of
    the patch, or is smaller than it along some axes."""
    volume = ct(shape)
    model = FakeModel()
    tumor = np.empty(shape, np.float16)
    labels, probs = sliding_window_probabilities(model, volume, PATCH, num_classes=3,
                                                 keep_probabilities=True, tumor_out=tumor)
    expected = per_voxel(volume)
    assert labels.shape == shape and labels.dtype == np.uint8
    assert probs.shape == (*shape, 3) and probs.dtype == np.float16
    assert_labels_match(labels, expected)
    np.testing.assert_allclose(probs, expected, atol=1e-3)
    np.testing.assert_array_equal(tumor, probs[..., 2])


@pytest.mark.parametrize(("shape", "patch", "overlap"), [
    ((37, 29, 23), (16, 16, 16), 0.5),
    ((20, 11, 45), (8, 16, 12), 0.5),  # Y shorter than the patch, not a cube
    ((18, 24, 5), (8, 16, 16), 0.25),  # Z shorter than the patch
])
def test_the_slab_walk_equals_a_full_volume_accumulation(shape, patch, overlap):
    volume = ct(shape)
    volume[3, 4, 2] = np.nan  # read as air, as the padding
    model = FakeModel(in_context, patch)
    labels, probs = sliding_window_probabilities(model, volume, patch, num_classes=3,
                                                 overlap=overlap, batch_size=3,
                                                 keep_probabilities=True)
    filled = np.nan_to_num(volume, nan=-1024.0)
    expected = naive(model, filled, patch, overlap)
    np.testing.assert_allclose(probs, expected, atol=2e-3)
    assert_labels_match(labels, expected, atol=5e-3)


def test_the_volume_reaches_the_model_as_z_x_y():
    """The model's (D, H, W) are the volume's (Z, X, Y); a short axis is centred."""
    x, y, z = np.meshgrid(np.arange(16), np.arange(16), np.arange(12), indexing="ij")
    volume = (1000 * x + 100 * y + z).astype(np.float32)  # (X, Y, Z) = (16, 16, 12)
    model = FakeModel(keep_inputs=True)
    sliding_window_probabilities(model, volume, PATCH, num_classes=3)
    (seen,) = model.inputs
    np.testing.assert_array_equal(seen[0, 2:14, :, :, 0], volume.transpose(2, 0, 1))
    assert (seen[0, :2] == -1024).all() and (seen[0, 14:] == -1024).all()


def test_the_last_batch_is_padded_to_the_batch_size():
    model = FakeModel()
    volume = ct((37, 29, 23))
    calls = []
    sliding_window_probabilities(model, volume, PATCH, num_classes=3, batch_size=5,
                                 progress=lambda done, total: calls.append((done, total)))
    total = len(patch_starts(23, 16)) * len(patch_starts(37, 16)) * len(patch_starts(29, 16))
    assert total % 5  # the case tested: a short last batch
    assert model.batch_sizes == [5] * math.ceil(total / 5)
    assert calls[-1] == (total, total) and len(calls) == len(model.batch_sizes)


def test_caller_supplied_outputs_and_one_class():
    volume = ct((20, 18, 30))
    labels = np.full((20, 18, 30), 9, np.uint8)
    probs = np.empty((20, 18, 30, 3), np.float16)
    got, kept = sliding_window_probabilities(FakeModel(), volume, PATCH, num_classes=3,
                                             labels_out=labels, probabilities_out=probs)
    assert got is labels and kept is probs
    assert_labels_match(labels, per_voxel(volume))
    sigmoid = FakeModel(lambda b: (b > 100).astype(np.float32))
    labels, none = sliding_window_probabilities(sigmoid, volume, num_classes=1)
    assert none is None
    np.testing.assert_array_equal(labels, volume > 100)
    with pytest.raises(ValueError, match="tumor"):
        sliding_window_probabilities(sigmoid, volume, num_classes=1,
                                     tumor_out=np.empty(volume.shape, np.float16))
    with pytest.raises(ValueError, match="labels_out"):
        sliding_window_probabilities(FakeModel(), volume, num_classes=3,
                                     labels_out=np.empty((20, 18, 29), np.uint8))
    with pytest.raises(ValueError, match="returned"):
        sliding_window_probabilities(FakeModel(), volume, num_classes=2)


def test_the_accumulators_hold_a_slab_not_the_volume(monkeypatch):
    """A tall scan: the accumulators cover ``patch_D`` slices, and the whole call
    allocates far less than float32 class sums over the volume would take."""
    shape, classes = (48, 40, 400), 3
    slabs = []

    class Spy(sw._Slab):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            slabs.append(self.sums.nbytes + self.weights.nbytes)

    monkeypatch.setattr(sw, "_Slab", Spy)
    volume = ct(shape)
    model = FakeModel(lambda b: np.broadcast_to(np.float32(1 / 3), (*b.shape[:4], 3)))
    tracemalloc.start()
    try:
        labels, _ = sliding_window_probabilities(model, volume, PATCH, num_classes=classes,
                                                 batch_size=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert slabs == [accumulator_bytes(shape, PATCH, classes)]
    assert slabs[0] == 4 * 16 * 48 * 40 * (classes + 1)
    whole = 4 * np.prod(shape) * (classes + 1)  # sums and weights over the volume
    batch = 2 * np.prod(PATCH) * (classes + 1) * 4 * 2  # in and out, a copy each
    assert peak < labels.nbytes + 3 * slabs[0] + batch + 2**20
    assert peak - labels.nbytes < whole / 8
    assert accumulator_bytes((512, 512, 600), (64, 128, 128), 3) < 300 * 2**20


@pytest.mark.slow
def test_a_tiny_vnet_reads_a_volume():
    from keras_liverseg import models

    model = models.build("vnet", input_shape=(16, 32, 32, 1), num_classes=3,
                         filters=(2, 4, 8, 16, 32))
    volume = ct((40, 20, 18))
    tumor = np.empty(volume.shape, np.float16)
    labels, probs = sliding_window_probabilities(model, volume, num_classes=3,
                                                 keep_probabilities=True, tumor_out=tumor)
    assert labels.shape == volume.shape and labels.dtype == np.uint8
    assert probs.shape == (*volume.shape, 3)
    np.testing.assert_allclose(probs.astype(np.float32).sum(-1), 1.0, atol=5e-3)
    np.testing.assert_array_equal(tumor, probs[..., 2])
    assert set(np.unique(labels)) <= {0, 1, 2}
